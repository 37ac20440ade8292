//! Continuous batching with shared prefill: the scheduler under [`Policy::generate`].
//!
//! Requests with the same prompt form one group (the Challenger's G attempts at a document,
//! the Reasoner's K answers to a task, avg@k in evaluation). Each group's prompt is prefilled
//! once; its keys and values and its last logits are then shared by every sample of the
//! group. Distinct prompts are prefilled together, right-padded under the causal kernel (a
//! real token never sees the padding after it), up to [`PREFILL_TOKENS`] at a time. Distinct
//! prompts that begin with one long prefix (a [`Family`]: the Challenger's attempts at one
//! document differ only in the task format written after it) prefill that prefix once and
//! then only their own rests, which attend to it ([`AttnMode::Extend`]).
//!
//! A fixed number of slots decode together, one token per slot per step;
//! when a sample finishes, the next waiting sample takes its slot before the next step, so no
//! sample waits for the slowest of a batch. Only when nothing waits do finished slots leave
//! the cache, so the tail shrinks instead of running empty rows.
//!
//! A sample's tokens depend only on its prompt and seed: every sample draws one number per
//! token from its own stream, padding never enters its prefill, and masked cache columns add
//! exact zeros — so neither the number of slots nor the order of arrival changes what it
//! generates, up to rounding. Where the policy is batch-invariant (f32 on a CPU,
//! [`Policy::batch_invariant`]) not even the rounding changes, bit for bit: each distinct
//! prompt is prefilled alone (padding to a longer prompt changes how the attention GEMMs sum)
//! and each slot attends over exactly its own columns ([`KvCache::set_per_slot`]); the
//! projections of a decode step are oneDNN GEMMs of at most
//! [`crate::generate::INVARIANT_DECODE_ROWS`] rows, within which a row's sums do not change
//! with the number of rows; and no prefix is shared between distinct prompts (whether one is
//! depends on the other requests). Elsewhere (bf16, GPUs) a sample's log-probs, and rarely its
//! tokens, can change with its batch.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use anyhow::Result;
use indicatif::ProgressBar;
use tch::{Kind, Tensor};

use crate::generate::{FinishReason, GenRequest, StepWeights};
use crate::kv_cache::{KvCache, PrefixKv};
use crate::model::{extend_mask, AttnMode};
use crate::policy::Policy;
use crate::sample::{sample_batch, stream_counter, stream_key, SamplingParams};

/// One sample being generated.
pub(crate) struct Row {
    pub index: usize,
    /// The sample's random stream ([`stream_key`] of its seed); draw t picks token t.
    key: u64,
    prompt_len: i64,
    pub tokens: Vec<u32>,
    pub logprobs: Vec<f32>,
    pub finish: Option<FinishReason>,
}

impl Row {
    fn new(index: usize, request: &GenRequest) -> Row {
        Row {
            index,
            key: stream_key(request.seed),
            prompt_len: request.prompt_ids.len() as i64,
            tokens: Vec::new(),
            logprobs: Vec::new(),
            finish: None,
        }
    }
}

/// The samples of one distinct prompt, in request order.
struct Group<'a> {
    prompt: &'a [u32],
    members: Vec<usize>,
    /// The family whose shared prefix this prompt continues, if any.
    family: Option<usize>,
}

/// Distinct prompts that begin with one long prefix — the Challenger's attempts at one
/// document, whose prompts differ only in the task format after it. The prefix is prefilled
/// once; each prompt's rest then attends to it ([`AttnMode::Extend`]).
struct Family {
    prefix_len: usize,
    /// The prefix's keys and values, from its first prefill until its last prompt's.
    kv: Option<PrefixKv>,
    /// Prompts not yet prefilled.
    waiting: usize,
}

/// The shortest prefix worth sharing between distinct prompts, in tokens: below it an
/// extra pass costs more than it saves (the chat template's header alone is about 30).
pub const MIN_SHARED_PREFIX: usize = 64;

/// Families of distinct prompts (`prompts[g]` of group g) that share at least
/// [`MIN_SHARED_PREFIX`] leading tokens: each family's groups and prefix length, which leaves
/// every prompt at least one token of its own (its first logits come from its rest).
fn families(prompts: &[&[u32]]) -> Vec<(Vec<usize>, usize)> {
    let mut by_head: HashMap<&[u32], Vec<usize>> = HashMap::new();
    let mut order: Vec<&[u32]> = Vec::new();
    for (g, p) in prompts.iter().enumerate() {
        if p.len() > MIN_SHARED_PREFIX {
            let head = &p[..MIN_SHARED_PREFIX];
            by_head.entry(head).or_insert_with(|| {
                order.push(head);
                Vec::new()
            });
            by_head.get_mut(head).unwrap().push(g);
        }
    }
    order
        .into_iter()
        .filter_map(|head| {
            let members = by_head.remove(head).unwrap();
            if members.len() < 2 {
                return None;
            }
            let first = prompts[members[0]];
            let mut len = members.iter().map(|&g| prompts[g].len() - 1).min().unwrap();
            for &g in &members[1..] {
                len = len.min(first.iter().zip(prompts[g]).take_while(|(a, b)| a == b).count());
            }
            (len >= MIN_SHARED_PREFIX).then_some((members, len))
        })
        .collect()
}

/// Prompt tokens (padding included) one prefill pass may hold: bounds its activations
/// (about 15 KB per token for a 135M model in f32) while keeping its GEMMs large. One prompt
/// longer than this is prefilled alone.
pub const PREFILL_TOKENS: usize = 16_384;

/// A prefilled group whose samples are still being placed into slots.
struct Prefilled {
    group: usize,
    placed: usize,
    kv: PrefixKv,
    /// [1, vocab]: the distribution of every sample's first token.
    logits: Tensor,
}

/// How many slots decode together and how long each may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub slots: usize,
    /// Tokens per slot: the longest prompt plus `max_new_tokens`.
    pub capacity: usize,
    /// The KV budget the slots were sized to, in tokens.
    pub budget_tokens: usize,
}

impl Plan {
    /// At most `batch_size` slots, no more than there are samples, and no more than fit in
    /// `budget_tokens` — but always one, so a stage never dies of its batch size.
    pub fn new(batch_size: usize, samples: usize, capacity: usize, budget_tokens: usize) -> Plan {
        let fit = budget_tokens / capacity.max(1);
        let slots = batch_size.min(samples).min(fit).max(1);
        if fit == 0 {
            tracing::warn!(
                capacity,
                budget_tokens,
                "one sample needs more KV cache than the budget allows; generating one at a time"
            );
        }
        Plan { slots, capacity, budget_tokens }
    }
}

/// What one `generate` call did, beyond its generations.
#[derive(Debug, Clone, Copy, Default)]
pub struct EngineStats {
    pub new_tokens: usize,
    /// Prompt tokens of all samples, and those actually run through a prefill (once per
    /// distinct prompt).
    pub prompt_tokens: usize,
    pub prefill_tokens: usize,
    /// Wall time of the prefills (a share of the call's time).
    pub prefill_seconds: f64,
    /// Distinct prompts that continued a shared prefix instead of prefilling it again.
    pub prefix_shared_prompts: usize,
    pub slots: usize,
}

pub(crate) struct Engine<'a> {
    policy: &'a Policy,
    weights: &'a StepWeights<'a>,
    requests: &'a [GenRequest],
    params: &'a SamplingParams,
    groups: Vec<Group<'a>>,
    families: Vec<Family>,
    waiting: VecDeque<usize>,
    /// Prefilled groups with samples still to place, in order.
    prefilled: VecDeque<Prefilled>,
    cache: KvCache,
    slots: Vec<Option<Row>>,
    done: Vec<Row>,
    stop_window: usize,
    /// Batch-invariant generation: prompts prefilled one at a time, slots attending alone.
    invariant: bool,
    progress: Option<&'a ProgressBar>,
    pub stats: EngineStats,
}

impl<'a> Engine<'a> {
    pub fn new(
        policy: &'a Policy,
        weights: &'a StepWeights<'a>,
        requests: &'a [GenRequest],
        params: &'a SamplingParams,
        plan: Plan,
        progress: Option<&'a ProgressBar>,
    ) -> Engine<'a> {
        // Groups in order of first appearance; a prompt's samples stay together.
        let mut by_prompt: HashMap<&[u32], usize> = HashMap::new();
        let mut groups: Vec<Group<'a>> = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            let g = *by_prompt.entry(r.prompt_ids.as_slice()).or_insert_with(|| {
                groups.push(Group { prompt: &r.prompt_ids, members: Vec::new(), family: None });
                groups.len() - 1
            });
            groups[g].members.push(i);
        }
        let cfg = policy.config();
        let invariant = policy.batch_invariant();
        // A prompt prefilled after a shared prefix rounds differently from one prefilled
        // whole, and whether it shares depends on the other requests: not where the policy
        // promises batch invariance.
        let mut fams = Vec::new();
        let mut waiting: VecDeque<usize> = (0..groups.len()).collect();
        if !invariant {
            let prompts: Vec<&[u32]> = groups.iter().map(|g| g.prompt).collect();
            for (members, prefix_len) in families(&prompts) {
                for &g in &members {
                    groups[g].family = Some(fams.len());
                }
                fams.push(Family { prefix_len, kv: None, waiting: members.len() });
            }
            // A prompt alone that begins with a prefix an earlier call prefilled continues it.
            if let Some(cache) = weights.prefixes {
                let cache = cache.lock().unwrap();
                for (g, group) in groups.iter_mut().enumerate().filter(|(_, g)| g.family.is_none())
                {
                    let p = prompts[g];
                    if let Some((n, _)) = cache.longest(p, p.len() - 1, MIN_SHARED_PREFIX) {
                        group.family = Some(fams.len());
                        fams.push(Family { prefix_len: n, kv: None, waiting: 1 });
                    }
                }
            }
            // A family's prompts wait together, where its first one arrived, so their rests
            // prefill in one pass while the prefix is held.
            let mut placed = vec![false; groups.len()];
            let mut order = VecDeque::with_capacity(groups.len());
            for g in 0..groups.len() {
                if placed[g] {
                    continue;
                }
                match groups[g].family {
                    None => {
                        placed[g] = true;
                        order.push_back(g);
                    }
                    Some(f) => {
                        for h in g..groups.len() {
                            if groups[h].family == Some(f) {
                                placed[h] = true;
                                order.push_back(h);
                            }
                        }
                    }
                }
            }
            waiting = order;
        }
        let mut cache = KvCache::new(
            cfg.num_hidden_layers,
            plan.slots,
            cfg.num_kv_heads() as i64,
            plan.capacity as i64,
            cfg.head_dim() as i64,
            policy.attention_kind(),
            policy.device(),
        );
        cache.set_per_slot(invariant);
        if let Some(pb) = progress {
            pb.set_length((requests.len() * params.max_new_tokens) as u64);
        }
        let stats = EngineStats {
            prompt_tokens: requests.iter().map(|r| r.prompt_ids.len()).sum(),
            slots: plan.slots,
            ..Default::default()
        };
        Engine {
            policy,
            weights,
            requests,
            params,
            waiting,
            groups,
            families: fams,
            prefilled: VecDeque::new(),
            cache,
            slots: (0..plan.slots).map(|_| None).collect(),
            done: Vec::new(),
            stop_window: params.stop_strings.iter().map(|s| s.len()).max().unwrap_or(0) + 8,
            invariant,
            progress,
            stats,
        }
    }

    /// Generate every sample; rows come back in no particular order.
    pub fn run(mut self) -> Result<(Vec<Row>, EngineStats)> {
        if self.params.max_new_tokens == 0 {
            let rows = (0..self.requests.len()).map(|i| Row::new(i, &self.requests[i]));
            return Ok((rows.collect(), self.stats));
        }
        loop {
            self.fill()?;
            self.shrink();
            if self.slots.is_empty() {
                break;
            }
            let logits = self.decode_step();
            let all: Vec<usize> = (0..self.slots.len()).collect();
            self.sample(&all, &logits)?;
        }
        Ok((self.done, self.stats))
    }

    /// Place waiting samples into free slots and draw their first tokens, until no slot is
    /// free or nothing waits.
    fn fill(&mut self) -> Result<()> {
        loop {
            let free: Vec<usize> =
                (0..self.slots.len()).filter(|&s| self.slots[s].is_none()).collect();
            if free.is_empty() {
                return Ok(());
            }
            if self.prefilled.is_empty() && !self.prefill_next(free.len()) {
                return Ok(());
            }
            let cur = self.prefilled.front_mut().expect("a prefilled group");
            let members = &self.groups[cur.group].members;
            let take = free.len().min(members.len() - cur.placed);
            let placed = &free[..take];
            for &slot in placed {
                let index = members[cur.placed];
                cur.placed += 1;
                self.cache.place(slot, &cur.kv);
                self.slots[slot] = Some(Row::new(index, &self.requests[index]));
            }
            let vocab = cur.logits.size()[1];
            let logits = cur.logits.expand([take as i64, vocab], false);
            if cur.placed == members.len() {
                self.prefilled.pop_front();
            }
            self.sample(placed, &logits)?;
        }
    }

    /// Prefill the next waiting groups, no more than `free` of them (the slots they can
    /// fill now) and within [`PREFILL_TOKENS`] — one at a time when batch-invariant; false
    /// when nothing waits. The prompts of one family continue its shared prefix together.
    fn prefill_next(&mut self, free: usize) -> bool {
        let Some(&first) = self.waiting.front() else { return false };
        let family = self.groups[first].family;
        let skip = family.map_or(0, |f| self.families[f].prefix_len);
        let most = if self.invariant { 1 } else { free };
        let mut batch: Vec<usize> = Vec::new();
        let mut width = 0;
        while let Some(&g) = self.waiting.front() {
            let w = width.max(self.groups[g].prompt.len() - skip);
            // Each rest also attends to (a copy of) the shared prefix.
            if self.groups[g].family != family
                || (!batch.is_empty()
                    && (batch.len() == most || (batch.len() + 1) * (w + skip) > PREFILL_TOKENS))
            {
                break;
            }
            batch.push(g);
            width = w;
            self.waiting.pop_front();
        }
        let head: &'a [u32] = &self.groups[first].prompt[..skip];
        let prompts: Vec<&'a [u32]> =
            batch.iter().map(|&g| &self.groups[g].prompt[skip..]).collect();
        let past = family.map(|f| {
            if self.families[f].kv.is_none() {
                let kv = self.prefix(head);
                self.families[f].kv = Some(kv);
            }
            self.families[f].waiting -= batch.len();
            self.stats.prefix_shared_prompts += batch.len();
            let kv = self.families[f].kv.as_ref().unwrap().shallow_clone();
            if self.families[f].waiting == 0 {
                self.families[f].kv = None;
            }
            kv
        });
        let (kv, logits) = self.prefill(past.as_ref(), &prompts);
        for (i, (&group, p)) in batch.iter().zip(&prompts).enumerate() {
            self.stats.prefill_tokens += p.len();
            let len = p.len() as i64;
            let row = |ts: &[Tensor]| {
                ts.iter().map(|t| t.narrow(0, i as i64, 1).narrow(2, 0, len)).collect()
            };
            let rest = PrefixKv { k: row(&kv.k), v: row(&kv.v) };
            let kv = match &past {
                Some(past) => past.join(&rest),
                None => rest,
            };
            let logits = logits.narrow(0, i as i64, 1);
            self.prefilled.push_back(Prefilled { group, placed: 0, kv, logits });
        }
        true
    }

    /// The keys and values of a family's shared prefix: from the policy's prefix cache where
    /// an earlier call left them (or the start of them, then continued), else prefilled; the
    /// cache keeps them for later calls.
    fn prefix(&mut self, head: &[u32]) -> PrefixKv {
        let cached = self
            .weights
            .prefixes
            .and_then(|c| c.lock().unwrap().longest(head, head.len(), MIN_SHARED_PREFIX));
        let kv = match cached {
            Some((n, kv)) if n == head.len() => kv,
            Some((n, kv)) => {
                let (rest, _) = self.prefill(Some(&kv), &[&head[n..]]);
                self.stats.prefill_tokens += head.len() - n;
                kv.join(&rest)
            }
            None => {
                let (kv, _) = self.prefill(None, &[head]);
                self.stats.prefill_tokens += head.len();
                kv
            }
        };
        if let Some(cache) = self.weights.prefixes {
            cache.lock().unwrap().insert(head, &kv);
        }
        kv
    }

    /// Distinct prompts through the model together, right-padded: their keys and values
    /// [prompts, kv_heads, width, head_dim] per layer, and the logits [prompts, vocab] of
    /// each one's last real position only (never the full-vocabulary logits of every
    /// position). With `past`, the prompts are the rests that follow that one prefix.
    fn prefill(&mut self, past: Option<&PrefixKv>, prompts: &[&[u32]]) -> (PrefixKv, Tensor) {
        let device = self.policy.device();
        let (b, width) = (prompts.len(), prompts.iter().map(|p| p.len()).max().unwrap());
        let pad = self.policy.eos_ids().first().copied().unwrap_or(0) as i64;
        let mut ids = vec![pad; b * width];
        for (r, p) in prompts.iter().enumerate() {
            for (j, &t) in p.iter().enumerate() {
                ids[r * width + j] = t as i64;
            }
        }
        let ids = Tensor::from_slice(&ids).view([b as i64, width as i64]).to_device(device);
        let start = past.map_or(0, |p| p.len());
        let pos = Tensor::arange_start(start, start + width as i64, (Kind::Int64, device))
            .view([1, width as i64])
            .expand([b as i64, width as i64], false);
        let t0 = Instant::now();
        let mut kv = PrefixKv::default();
        let w = self.weights.wide;
        let hidden = match past {
            None => w.forward(&ids, &pos, AttnMode::Prefill(&mut kv), None),
            Some(past) => {
                let mask = extend_mask(start, width as i64, self.policy.attention_kind(), device);
                w.forward(&ids, &pos, AttnMode::Extend { past, mask: &mask, out: &mut kv }, None)
            }
        };
        let last: Vec<i64> = prompts.iter().map(|p| p.len() as i64 - 1).collect();
        let last = Tensor::from_slice(&last).to_device(device);
        let rows = Tensor::arange(b as i64, (Kind::Int64, device));
        // [b, 1, hidden]: each prompt's last real position.
        let at_last = hidden.index(&[Some(rows), Some(last)]).unsqueeze(1);
        let logits = w.last_logits(&at_last);
        let seconds = t0.elapsed().as_secs_f64();
        self.stats.prefill_seconds += seconds;
        tracing::trace!(prompts = b, width, past = start, seconds, "prefill");
        (kv, logits)
    }

    /// Drop free slots from the cache; only happens once nothing waits.
    fn shrink(&mut self) {
        if self.slots.iter().all(Option::is_some) {
            return;
        }
        let keep: Vec<usize> = (0..self.slots.len()).filter(|&s| self.slots[s].is_some()).collect();
        if !keep.is_empty() {
            self.cache.keep_slots(&keep);
        }
        self.slots.retain(Option::is_some);
    }

    /// Every slot's newest token at its own position through the model: the next logits
    /// [slots, vocab].
    fn decode_step(&mut self) -> Tensor {
        let device = self.policy.device();
        let rows: Vec<&Row> = self.slots.iter().map(|r| r.as_ref().expect("a live slot")).collect();
        let b = rows.len() as i64;
        let next: Vec<i64> = rows.iter().map(|r| *r.tokens.last().unwrap() as i64).collect();
        let pos: Vec<i64> = rows.iter().map(|r| r.prompt_len + r.tokens.len() as i64 - 1).collect();
        let ids = Tensor::from_slice(&next).view([b, 1]).to_device(device);
        let pos = Tensor::from_slice(&pos).view([b, 1]).to_device(device);
        let t0 = Instant::now();
        let w = self.weights.for_rows(rows.len());
        let hidden = w.forward(&ids, &pos, AttnMode::Decode(&mut self.cache), None);
        let logits = w.last_logits(&hidden);
        tracing::trace!(batch = b, seconds = t0.elapsed().as_secs_f64(), "decode step");
        logits
    }

    /// One token for the samples in `slots` from `logits` (row i for `slots[i]`); finished
    /// samples leave their slots.
    fn sample(&mut self, slots: &[usize], logits: &Tensor) -> Result<()> {
        // Each sample's draw is counted by its own tokens so far; the draw and the choice
        // happen on the logits' device.
        let counters: Vec<u64> = slots
            .iter()
            .map(|&s| {
                let row = self.slots[s].as_ref().expect("a live slot");
                stream_counter(row.key, row.tokens.len() as u64)
            })
            .collect();
        let (tokens, lps) = sample_batch(logits, self.params, &counters);
        let max_new = self.params.max_new_tokens;
        for (&s, (tok, lp)) in slots.iter().zip(tokens.into_iter().zip(lps)) {
            let row = self.slots[s].as_mut().unwrap();
            row.tokens.push(tok);
            row.logprobs.push(lp);
            self.stats.new_tokens += 1;
            if self.policy.eos_ids().contains(&tok)
                || self.params.stop_token_ids.contains(&tok)
                || self.policy.hits_stop(&row.tokens, self.params, self.stop_window)?
            {
                row.finish = Some(FinishReason::Stop);
            } else if row.tokens.len() >= max_new {
                row.finish = Some(FinishReason::Length);
            }
            if row.finish.is_some() {
                let row = self.slots[s].take().unwrap();
                if let Some(pb) = self.progress {
                    // The bar counts tokens; a sample that stops early gives back the rest.
                    let len = pb.length().unwrap_or(0);
                    pb.set_length(len - (max_new - row.tokens.len()) as u64);
                }
                self.done.push(row);
            }
        }
        if let Some(pb) = self.progress {
            pb.inc(slots.len() as u64);
            pb.set_message(format!("{}/{} samples", self.done.len(), self.requests.len()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_share_the_longest_common_prefix_of_long_prompts() {
        let doc = |d: u32| (0..100).map(move |j| d * 1000 + j);
        let with = |d: u32, tail: &[u32]| doc(d).chain(tail.iter().copied()).collect::<Vec<u32>>();
        let prompts = [
            with(1, &[5, 6, 7]),
            with(2, &[5]),
            with(1, &[5, 6, 9, 9]),
            (0..10).collect(),
            with(1, &[8]),
            with(2, &[6, 6]),
            with(3, &[1]),
        ];
        let refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
        // Document 1's three prompts share its 100 tokens; document 2's two as well; a prompt
        // alone or short shares nothing.
        assert_eq!(families(&refs), vec![(vec![0, 2, 4], 100), (vec![1, 5], 100)]);
        // Every prompt keeps a token of its own, even when one is the other's prefix.
        let nested = [with(1, &[]), with(1, &[4, 4])];
        let refs: Vec<&[u32]> = nested.iter().map(Vec::as_slice).collect();
        assert_eq!(families(&refs), vec![(vec![0, 1], 99)]);
        // Below the minimum a common head is not worth a pass of its own.
        let short = [(0..70).collect::<Vec<u32>>(), (0..65).chain([9, 9]).collect()];
        let refs: Vec<&[u32]> = short.iter().map(Vec::as_slice).collect();
        assert_eq!(families(&refs), vec![(vec![0, 1], 65)]);
        let shorter = [(0..70).collect::<Vec<u32>>(), (0..63).chain([9, 9, 9]).collect()];
        let refs: Vec<&[u32]> = shorter.iter().map(Vec::as_slice).collect();
        assert!(families(&refs).is_empty());
    }
}
