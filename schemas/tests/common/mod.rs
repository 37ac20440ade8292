//! Sample rows of every shard type, with values that exercise every column (nulls, empty and
//! non-ASCII strings, long lists).
#![allow(dead_code)]

use spice_schemas::rows::*;

pub fn chunks() -> Vec<ChunkRow> {
    (0..3)
        .map(|i| ChunkRow {
            chunk_id: format!("c-{i:016x}"),
            source: "python-docs/library/math.rst".into(),
            doc_index: i,
            chunk_index: i as u32,
            byte_start: 100 * i,
            byte_end: 100 * i + 99,
            n_tokens: 42 + i as u32,
            text: format!("Passage {i}: ∑ x² — naïve café"),
        })
        .collect()
}

pub fn challenger() -> Vec<ChallengerRow> {
    (0..4)
        .map(|i| ChallengerRow {
            iteration: 3,
            doc_slot: i / 2,
            chunk_id: format!("c-{i:016x}"),
            attempt: i % 2,
            task_kind: if i % 2 == 0 { "mcq" } else { "free_form" }.into(),
            answer_type: (i % 2 == 1).then(|| "integer".to_string()),
            format_completion: None,
            prompt_set: "compact".into(),
            prompt: "<|im_start|>user\nWrite a task<|im_end|>".into(),
            prompt_ids: vec![1, 4093, 198, 2],
            response_prefix: String::new(),
            completion: "{\"question\": \"…\"}".into(),
            completion_ids: vec![90, 1, 2, 3, u32::MAX - i],
            logprobs: vec![-0.5, -1.25, -0.0, -3.5, -7.0],
            finish_reason: "stop".into(),
            seed: u64::MAX - i as u64,
            policy_id: "smollm2-135m-instruct@0123456789ab".into(),
            parsed_valid: i % 3 == 0,
            selected: i < 3,
        })
        .collect()
}

pub fn tasks() -> Vec<TaskRow> {
    vec![
        TaskRow {
            task_id: "i0003-d000-a0000".into(),
            iteration: 3,
            doc_slot: 0,
            chunk_id: "c-0".into(),
            attempt: 0,
            selected: true,
            valid: true,
            invalid_reason: None,
            invalid_detail: None,
            task_kind: "mcq".into(),
            question: Some("Which function returns the GCD?".into()),
            options: vec![
                "math.gcd".into(),
                "math.lcm".into(),
                "math.fsum".into(),
                "math.isqrt".into(),
            ],
            answer: Some("A".into()),
            answer_type: None,
            raw_json: Some("{\"question\":\"…\"}".into()),
            policy_id: "p@0".into(),
        },
        TaskRow {
            task_id: "i0003-d000-a0001".into(),
            iteration: 3,
            doc_slot: 0,
            chunk_id: "c-0".into(),
            attempt: 1,
            selected: false,
            valid: false,
            invalid_reason: Some("no_json".into()),
            invalid_detail: Some("no JSON object in the completion".into()),
            task_kind: "free_form".into(),
            question: None,
            options: vec![],
            answer: None,
            answer_type: Some("integer".into()),
            raw_json: None,
            policy_id: "p@0".into(),
        },
    ]
}

pub fn rollouts() -> Vec<RolloutRow> {
    (0..8)
        .map(|k| RolloutRow {
            task_id: "i0003-d000-a0000".into(),
            iteration: 3,
            doc_slot: 0,
            sample: k,
            prompt: "Answer with \\boxed{}".into(),
            prompt_ids: vec![1, 2, 3],
            completion: format!("The answer is \\boxed{{{k}}}"),
            completion_ids: (0..k).collect(),
            logprobs: (0..k).map(|t| -(t as f32) / 10.0).collect(),
            finish_reason: if k == 7 { "length" } else { "stop" }.into(),
            seed: 1000 + k as u64,
            policy_id: "p@0".into(),
        })
        .collect()
}

pub fn scored() -> Vec<ScoredRow> {
    vec![
        ScoredRow {
            iteration: 3,
            role: "challenger".into(),
            group_id: "d000".into(),
            task_id: "i0003-d000-a0000".into(),
            doc_slot: 0,
            sample: 0,
            in_batch: true,
            valid: true,
            extracted: None,
            correct: None,
            pass_rate: Some(0.375),
            reward: 0.988,
            advantage: 0.5,
            prompt_ids: vec![1, 2],
            completion_ids: vec![3, 4],
            logprobs: vec![-0.1, -0.2],
            finish_reason: "stop".into(),
            policy_id: "p@0".into(),
        },
        ScoredRow {
            iteration: 3,
            role: "reasoner".into(),
            group_id: "i0003-d000-a0000".into(),
            task_id: "i0003-d000-a0000".into(),
            doc_slot: 0,
            sample: 5,
            in_batch: false,
            valid: true,
            extracted: Some("\\frac{1}{2}".into()),
            correct: Some(false),
            pass_rate: Some(0.375),
            reward: 0.0,
            advantage: -0.375,
            prompt_ids: vec![],
            completion_ids: vec![9; 100],
            logprobs: vec![-1.0; 100],
            finish_reason: "length".into(),
            policy_id: "p@0".into(),
        },
    ]
}

pub fn update() -> Vec<UpdateMetricsRow> {
    vec![UpdateMetricsRow {
        iteration: 3,
        epoch: 0,
        step: 0,
        loss: -0.0123,
        pg_loss: -0.0123,
        kl: 0.0,
        grad_norm: 0.75,
        clip_fraction: 0.01,
        learning_rate: 1e-6,
        sequences: 16,
        tokens: 4096,
        challenger_sequences: 8,
        reasoner_sequences: 8,
        challenger_mean_reward: 0.4,
        challenger_mean_advantage: 0.0,
        reasoner_mean_reward: 0.5,
        reasoner_mean_advantage: 0.0,
        seconds: 12.5,
        tokens_per_second: 327.68,
        peak_rss_mib: 1500.0,
    }]
}

pub fn eval() -> Vec<EvalRow> {
    vec![EvalRow {
        benchmark: "arith".into(),
        question_id: "q-0001".into(),
        subject: Some("arithmetic".into()),
        task_kind: "free_form".into(),
        sample: 0,
        prompt: "What is 2+2?".into(),
        completion: "\\boxed{4}".into(),
        completion_tokens: 5,
        finish_reason: "stop".into(),
        gold: "4".into(),
        extracted: Some("4".into()),
        correct: true,
        seed: 0,
        policy_id: "p@0".into(),
    }]
}
