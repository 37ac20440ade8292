use anyhow::{bail, Result};
use rand::seq::index;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use spice_schemas::rows::ChunkRow;

/// One document slot of the iteration: the chunk it holds (None without grounding).
#[derive(Debug, Clone, PartialEq)]
pub struct DocSlot {
    pub slot: u32,
    pub chunk_id: String,
    pub text: Option<String>,
}

/// Draw `b` chunks uniformly without replacement (with replacement only when the corpus
/// has fewer than `b` chunks), in a fixed order given the seed.
pub fn sample(chunks: &[ChunkRow], b: u32, seed: u64) -> Result<Vec<DocSlot>> {
    if chunks.is_empty() {
        bail!("the chunked corpus is empty: nothing to ground the Challenger in");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let picks: Vec<usize> = if (b as usize) <= chunks.len() {
        index::sample(&mut rng, chunks.len(), b as usize).into_vec()
    } else {
        tracing::warn!(
            chunks = chunks.len(),
            documents_per_iteration = b,
            "fewer chunks than documents per iteration: drawing with replacement"
        );
        use rand::Rng;
        (0..b).map(|_| rng.random_range(0..chunks.len())).collect()
    };
    Ok(picks
        .into_iter()
        .enumerate()
        .map(|(slot, i)| DocSlot {
            slot: slot as u32,
            chunk_id: chunks[i].chunk_id.clone(),
            text: Some(chunks[i].text.clone()),
        })
        .collect())
}

/// The chunks held out of training for cross-play (`[crossplay]`): `n` chunks drawn by
/// `seed`, as slots in draw order. The draw depends only on the chunk list and the seed, so
/// the Challenger's training draws and cross-play compute the same set.
pub fn heldout(chunks: &[ChunkRow], n: u32, seed: u64) -> Result<Vec<DocSlot>> {
    if n as usize >= chunks.len() {
        bail!(
            "crossplay.heldout_documents = {n}, but the chunked corpus has {} chunks: hold out \
             fewer, so that training has documents left",
            chunks.len()
        );
    }
    sample(chunks, n, seed)
}

/// The chunks training may draw: all but the held-out ones.
pub fn trainable(chunks: Vec<ChunkRow>, heldout: &[DocSlot]) -> Vec<ChunkRow> {
    let out: std::collections::HashSet<&str> =
        heldout.iter().map(|d| d.chunk_id.as_str()).collect();
    chunks.into_iter().filter(|c| !out.contains(c.chunk_id.as_str())).collect()
}

/// Slots with no document (`grounding = "none"`).
pub fn ungrounded(b: u32) -> Vec<DocSlot> {
    (0..b).map(|slot| DocSlot { slot, chunk_id: String::new(), text: None }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(n: usize) -> Vec<ChunkRow> {
        (0..n)
            .map(|i| ChunkRow {
                chunk_id: format!("c{i}"),
                source: "s".into(),
                doc_index: i as u64,
                chunk_index: 0,
                byte_start: 0,
                byte_end: 1,
                n_tokens: 1,
                text: format!("text {i}"),
            })
            .collect()
    }

    #[test]
    fn sampling_is_seeded_distinct_and_uniformish() {
        let c = chunks(50);
        let a = sample(&c, 10, 7).unwrap();
        assert_eq!(a, sample(&c, 10, 7).unwrap());
        assert_ne!(a, sample(&c, 10, 8).unwrap());
        let mut ids: Vec<_> = a.iter().map(|d| d.chunk_id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 10, "without replacement");
        // Over many seeds every chunk gets drawn.
        let mut seen = std::collections::HashSet::new();
        for s in 0..200 {
            for d in sample(&c, 10, s).unwrap() {
                seen.insert(d.chunk_id);
            }
        }
        assert_eq!(seen.len(), 50);
        assert_eq!(sample(&chunks(3), 5, 1).unwrap().len(), 5);
        assert!(sample(&[], 5, 1).is_err());
    }

    #[test]
    fn held_out_chunks_are_never_drawn_for_training() {
        let c = chunks(30);
        let held = heldout(&c, 5, 3).unwrap();
        assert_eq!(held, heldout(&c, 5, 3).unwrap(), "the same set every time");
        let train = trainable(c.clone(), &held);
        assert_eq!(train.len(), 25);
        for s in 0..100 {
            for d in sample(&train, 10, s).unwrap() {
                assert!(held.iter().all(|h| h.chunk_id != d.chunk_id), "{} drawn", d.chunk_id);
            }
        }
        assert!(heldout(&c, 30, 3).is_err(), "nothing left to train on");
    }
}
