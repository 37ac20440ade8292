//! The words of SPICE's file formats as types. On disk (Parquet columns, manifests, `run.toml`)
//! each is its `snake_case` name, exactly as [`as_str`](Role::as_str) writes it; in code it is
//! an enum, so a misspelt role or setting is a compile error rather than a silent mismatch.
//!
//! Shard rows keep these as strings (their Arrow schema is the file format); code reads them
//! with `FromStr` and writes them with `as_str`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A name that is not one of an enumeration's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    pub name: String,
    /// The accepted names, for the message.
    pub expected: &'static [&'static str],
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown name {:?} (expected one of {})", self.name, self.expected.join(", "))
    }
}

impl std::error::Error for UnknownName {}

/// An enum whose on-disk form is one `snake_case` word per variant: `as_str`, `Display`, a
/// strict `FromStr` and serde all use the same names.
macro_rules! words {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub const NAMES: &'static [&'static str] = &[$($word),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }

            /// Strictly one of [`Self::NAMES`].
            pub fn from_name(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(UnknownName { name: s.to_string(), expected: Self::NAMES }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// `FromStr` that accepts exactly the on-disk names.
macro_rules! strict_from_str {
    ($($name:ident),+) => {$(
        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::from_name(s)
            }
        }
    )+};
}

words! {
    /// Who produced a trajectory: the `role` column of `scored/`.
    Role {
        Challenger = "challenger",
        Reasoner = "reasoner",
    }
}

words! {
    /// The format of a task. `Any` is only a request ("whatever the completion contains").
    TaskKind {
        Mcq = "mcq",
        FreeForm = "free_form",
        Any = "any",
    }
}

words! {
    /// The declared type of a free-form answer.
    AnswerType {
        Integer = "integer",
        Float = "float",
        Expression = "expression",
        String = "string",
        Boolean = "boolean",
        List = "list",
    }
}

words! {
    /// Why generation of a completion stopped: the `finish_reason` column.
    FinishReason {
        /// An EOS token or a stop string.
        Stop = "stop",
        /// The length limit was reached.
        Length = "length",
    }
}

words! {
    /// `challenger.grounding`: whether the Challenger sees a document.
    Grounding {
        /// SPICE: each task is grounded in a corpus passage.
        Corpus = "corpus",
        /// The ungrounded ablation: no document in the prompt.
        None = "none",
    }
}

words! {
    /// `challenger.training`: whether the Challenger role learns.
    ChallengerTraining {
        /// SPICE: one model plays and trains both roles.
        SelfPlay = "self",
        /// A fixed Challenger (`challenger.frozen_model`); only the Reasoner learns.
        Frozen = "frozen",
    }
}

words! {
    /// `challenger.task_types`: the task formats the Challenger may write.
    TaskTypes {
        Both = "both",
        Mcq = "mcq",
        FreeForm = "free_form",
    }
}

words! {
    /// `reward.challenger_reward`: how a task's pass rate becomes the Challenger's reward.
    ChallengerReward {
        /// SPICE: a Gaussian of the variance p̂(1−p̂), peaking at p̂ = ½.
        Variance = "variance",
        /// Absolute Zero: 1 − p̂ for 0 < p̂ < 1, else 0.
        AbsoluteZero = "absolute_zero",
        /// 1 when 0 < p̂ < 1, else 0.
        Threshold = "threshold",
        /// R-Zero: 1 − 2·|p̂ − ½|.
        RZero = "r_zero",
    }
}

words! {
    /// `reward.scale_rewards`: whether group advantages are divided by the group's std.
    ScaleRewards {
        /// Dr. GRPO: no scaling.
        None = "none",
        /// GRPO: divide by the group's (population) standard deviation, when it is not zero.
        Group = "group",
    }
}

words! {
    /// `update.loss_type`: the policy-gradient objective.
    LossType {
        /// Dr. GRPO: token sums divided by a constant, no length or std normalisation.
        DrGrpo = "dr_grpo",
    }
}

words! {
    /// `update.lr_scheduler_type`: the learning rate over iterations.
    LrSchedulerType {
        Constant = "constant",
    }
}

words! {
    /// `run.dtype`: the compute dtype of generation and training (master weights stay f32).
    Dtype {
        Bf16 = "bf16",
        F32 = "f32",
    }
}

strict_from_str!(
    Role,
    Dtype,
    FinishReason,
    Grounding,
    ChallengerTraining,
    TaskTypes,
    ChallengerReward,
    ScaleRewards,
    LossType,
    LrSchedulerType
);

/// Model output is parsed leniently: a Challenger that writes `"multiple choice"` or `"open"`
/// still names a kind.
impl FromStr for TaskKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace(['-', ' '], "_").as_str() {
            "mcq" | "multiple_choice" => Ok(TaskKind::Mcq),
            "free_form" | "freeform" | "open" => Ok(TaskKind::FreeForm),
            "any" | "both" => Ok(TaskKind::Any),
            _ => Err(UnknownName { name: s.to_string(), expected: TaskKind::NAMES }),
        }
    }
}

/// Lenient like [`TaskKind`]'s: the synonyms models write for each type.
impl FromStr for AnswerType {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "integer" | "int" => AnswerType::Integer,
            "float" | "decimal" | "real" | "number" | "numeric" => AnswerType::Float,
            "expression" | "expr" | "formula" | "math" | "latex" => AnswerType::Expression,
            "string" | "str" | "text" => AnswerType::String,
            "boolean" | "bool" => AnswerType::Boolean,
            "list" | "array" | "set" | "tuple" => AnswerType::List,
            _ => return Err(UnknownName { name: s.to_string(), expected: AnswerType::NAMES }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_str_and_serde() {
        for r in ChallengerReward::ALL {
            assert_eq!(r.as_str().parse::<ChallengerReward>(), Ok(*r));
            let json = format!("\"{}\"", r.as_str());
            assert_eq!(serde_json::to_string(r).unwrap(), json);
            assert_eq!(serde_json::from_str::<ChallengerReward>(&json).unwrap(), *r);
        }
        assert_eq!(ChallengerTraining::SelfPlay.as_str(), "self");
        assert_eq!("self".parse::<ChallengerTraining>(), Ok(ChallengerTraining::SelfPlay));
        assert_eq!(TaskKind::FreeForm.to_string(), "free_form");
    }

    #[test]
    fn strict_and_lenient_parsing() {
        let err = "Variance".parse::<ChallengerReward>().unwrap_err();
        assert!(err.to_string().contains("r_zero"), "{err}");
        assert_eq!("Multiple choice".parse::<TaskKind>(), Ok(TaskKind::Mcq));
        assert_eq!("numeric".parse::<AnswerType>(), Ok(AnswerType::Float));
        assert!("essay".parse::<AnswerType>().is_err());
    }
}
