//! The format of each attempt: multiple choice or free-form with an answer type.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use spice_prompt::FormatChoice;
use spice_schemas::vocab::{AnswerType, TaskKind, TaskTypes};

/// The formats the configuration allows (`challenger.task_types`, `challenger.answer_type`).
#[derive(Debug, Clone, PartialEq)]
pub struct FormatSpace {
    pub kinds: Vec<TaskKind>,
    pub types: Vec<AnswerType>,
}

impl FormatSpace {
    pub fn from_config(task_types: TaskTypes, answer_type: Option<AnswerType>) -> FormatSpace {
        let kinds = match task_types {
            TaskTypes::Mcq => vec![TaskKind::Mcq],
            TaskTypes::FreeForm => vec![TaskKind::FreeForm],
            TaskTypes::Both => vec![TaskKind::Mcq, TaskKind::FreeForm],
        };
        let types = match answer_type {
            Some(t) => vec![t],
            None => AnswerType::ALL.to_vec(),
        };
        FormatSpace { kinds, types }
    }

    /// Whether there is anything for the model to choose.
    pub fn is_open(&self) -> bool {
        self.kinds.len() > 1 || (self.kinds.contains(&TaskKind::FreeForm) && self.types.len() > 1)
    }

    /// A format drawn uniformly with `seed` (kind, then answer type for free-form).
    pub fn draw(&self, seed: u64) -> FormatChoice {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let kind = self.kinds[rng.random_range(0..self.kinds.len())];
        let ty = self.types[rng.random_range(0..self.types.len())];
        FormatChoice { kind, answer_type: (kind == TaskKind::FreeForm).then_some(ty) }
    }

    /// The model's choice where it made a usable one, completed with `seed` where it did
    /// not (a free-form choice without an answer type gets a drawn type).
    pub fn complete(&self, chosen: Option<FormatChoice>, seed: u64) -> FormatChoice {
        let drawn = self.draw(seed);
        match chosen {
            Some(c) if self.kinds.contains(&c.kind) => match c.kind {
                TaskKind::FreeForm => FormatChoice {
                    kind: c.kind,
                    answer_type: c
                        .answer_type
                        .filter(|t| self.types.contains(t))
                        .or(drawn.answer_type)
                        .or(Some(self.types[0])),
                },
                _ => FormatChoice { kind: c.kind, answer_type: None },
            },
            _ => drawn,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_inside_the_space_and_cover_it() {
        let s = FormatSpace::from_config(TaskTypes::Both, None);
        let mut kinds = std::collections::HashSet::new();
        let mut types = std::collections::HashSet::new();
        for seed in 0..200 {
            let c = s.draw(seed);
            kinds.insert(c.kind);
            assert_eq!(c.answer_type.is_some(), c.kind == TaskKind::FreeForm);
            if let Some(t) = c.answer_type {
                types.insert(t);
            }
        }
        assert_eq!(kinds.len(), 2);
        assert_eq!(types.len(), 6);
        let forced = FormatSpace::from_config(TaskTypes::FreeForm, Some(AnswerType::Integer));
        assert!(!forced.is_open());
        assert_eq!(
            forced.draw(5),
            FormatChoice { kind: TaskKind::FreeForm, answer_type: Some(AnswerType::Integer) }
        );
        // An answer type that is not one is refused where the configuration is read.
        let bad = "[challenger]\nanswer_type = \"colour\"\n";
        assert!(spice_schemas::RunConfig::from_toml(bad, "p.toml").is_err());
    }

    #[test]
    fn completes_the_models_choice() {
        let s = FormatSpace::from_config(TaskTypes::Both, Some(AnswerType::Float));
        let c = s.complete(Some(FormatChoice { kind: TaskKind::FreeForm, answer_type: None }), 1);
        assert_eq!(c.answer_type, Some(AnswerType::Float));
        let c = s.complete(
            Some(FormatChoice { kind: TaskKind::FreeForm, answer_type: Some(AnswerType::List) }),
            1,
        );
        assert_eq!(c.answer_type, Some(AnswerType::Float), "the forced type wins");
        let only_mcq = FormatSpace::from_config(TaskTypes::Mcq, None);
        let c = only_mcq
            .complete(Some(FormatChoice { kind: TaskKind::FreeForm, answer_type: None }), 1);
        assert_eq!(c.kind, TaskKind::Mcq);
    }
}
