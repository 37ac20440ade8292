//! Confidence intervals of a proportion.

/// z of a two-sided 95% interval: the 0.975 quantile of the standard normal.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The Wilson score interval of a proportion of `successes` out of `n` trials:
///
/// ```text
///            p̂ + z²/2n ± z·√(p̂(1 − p̂)/n + z²/4n²)
///   lo, hi = ─────────────────────────────────────,   p̂ = successes / n
///                        1 + z²/n
/// ```
///
/// `None` when `n` is 0 (or `successes > n`). Unlike p̂ ± z·√(p̂(1 − p̂)/n) it stays inside
/// [0, 1] and is not empty at p̂ = 0 or 1: 0 of 10 gives [0, 0.278]. The bound at p̂ = 0 (1)
/// is exactly 0 (1). Use [`Z95`] for a 95% interval.
pub fn wilson(successes: u64, n: u64, z: f64) -> Option<(f64, f64)> {
    if n == 0 || successes > n {
        return None;
    }
    let (k, n) = (successes as f64, n as f64);
    let p = k / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    let lo = if successes == 0 { 0.0 } else { (centre - half).max(0.0) };
    let hi = if k == n { 1.0 } else { (centre + half).min(1.0) };
    Some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: Option<(f64, f64)>, lo: f64, hi: f64) {
        let (l, h) = got.expect("an interval");
        assert!((l - lo).abs() < 5e-5 && (h - hi).abs() < 5e-5, "[{l}, {h}] vs [{lo}, {hi}]");
    }

    #[test]
    fn known_values() {
        // Published 95% Wilson intervals (4 decimals).
        close(wilson(8, 10, Z95), 0.4902, 0.9433);
        close(wilson(50, 100, Z95), 0.4038, 0.5962);
        close(wilson(0, 10, Z95), 0.0, 0.2775);
        close(wilson(10, 10, Z95), 0.7225, 1.0);
        close(wilson(1, 1, Z95), 0.2065, 1.0);
        // z = 1 (a 68% interval) is narrower around the same centre.
        close(wilson(8, 10, 1.0), 0.6491, 0.8964);
    }

    #[test]
    fn edges_are_exact_and_inside_the_unit_interval() {
        assert_eq!(wilson(0, 7, Z95).unwrap().0, 0.0);
        assert_eq!(wilson(7, 7, Z95).unwrap().1, 1.0);
        for n in 1..60u64 {
            for k in 0..=n {
                let (lo, hi) = wilson(k, n, Z95).unwrap();
                let p = k as f64 / n as f64;
                assert!(0.0 <= lo && lo <= p && p <= hi && hi <= 1.0, "{k}/{n}: [{lo}, {hi}]");
                // Symmetric: k successes bound what n − k failures do.
                let (flo, fhi) = wilson(n - k, n, Z95).unwrap();
                assert!((lo - (1.0 - fhi)).abs() < 1e-12 && (hi - (1.0 - flo)).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn no_trials_no_interval() {
        assert_eq!(wilson(0, 0, Z95), None);
        assert_eq!(wilson(3, 2, Z95), None);
    }

    #[test]
    fn narrows_with_more_trials() {
        let width = |k, n| wilson(k, n, Z95).map(|(l, h)| h - l).unwrap();
        assert!(width(80, 100) < width(8, 10));
        assert!(width(800, 1000) < width(80, 100));
    }
}
