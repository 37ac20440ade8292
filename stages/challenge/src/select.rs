use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Which of a document's attempts form its G training trajectories, keeping the
/// valid:invalid ratio of all its attempts (METHOD.md step 2). `valid[i]` is attempt i's
/// validity; returns the indices chosen, ascending. With `g` or fewer attempts, all are kept.
/// A document with any valid attempt keeps at least one.
pub fn keep_g(valid: &[bool], g: usize, seed: u64) -> Vec<usize> {
    let n = valid.len();
    if n <= g {
        return (0..n).collect();
    }
    let v: Vec<usize> = (0..n).filter(|&i| valid[i]).collect();
    let inv: Vec<usize> = (0..n).filter(|&i| !valid[i]).collect();
    let mut want_valid = ((g * v.len()) as f64 / n as f64).round() as usize;
    if !v.is_empty() {
        want_valid = want_valid.max(1);
    }
    want_valid = want_valid.min(v.len()).min(g);
    // Not enough invalid attempts to fill the rest: take more valid ones.
    want_valid = want_valid.max(g.saturating_sub(inv.len()));
    let want_invalid = g - want_valid;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pick = |mut from: Vec<usize>, k: usize| {
        from.shuffle(&mut rng);
        from.truncate(k);
        from
    };
    let mut out = pick(v, want_valid);
    out.extend(pick(inv, want_invalid));
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_ratio() {
        // 16 attempts, 4 valid, G = 8: 2 valid and 6 invalid.
        let valid: Vec<bool> = (0..16).map(|i| i % 4 == 0).collect();
        let k = keep_g(&valid, 8, 1);
        assert_eq!(k.len(), 8);
        assert_eq!(k.iter().filter(|&&i| valid[i]).count(), 2);
        assert_eq!(k, keep_g(&valid, 8, 1));
    }

    #[test]
    fn edge_cases() {
        // One valid in 100: still kept.
        let mut valid = vec![false; 100];
        valid[57] = true;
        let k = keep_g(&valid, 8, 3);
        assert!(k.contains(&57) && k.len() == 8);
        // All valid / none valid.
        assert_eq!(keep_g(&[true; 10], 4, 0).len(), 4);
        assert!(keep_g(&[false; 10], 4, 0).iter().all(|&i| i < 10));
        // Fewer attempts than G.
        assert_eq!(keep_g(&[true, false], 8, 0), vec![0, 1]);
        // Too few invalid attempts to fill the invalid share.
        let valid = [true, true, true, true, true, false];
        let k = keep_g(&valid, 5, 9);
        assert_eq!(k.len(), 5);
    }
}
