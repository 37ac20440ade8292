//! Reading the format the Challenger chose in the paper's first prompt.

use spice_verify::json_extract::{find_objects, Found};
use spice_verify::{AnswerType, TaskKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatChoice {
    pub kind: TaskKind,
    pub answer_type: Option<AnswerType>,
}

/// The format in a completion of the format prompt, if it names one of `allowed` kinds
/// (JSON `format`/`question_type`/`type`, else the first kind word in the text). The answer
/// type is kept only when it is one of `allowed_types`.
pub fn parse_format_choice(
    completion: &str,
    allowed: &[TaskKind],
    allowed_types: &[AnswerType],
) -> Option<FormatChoice> {
    let mut kind_text: Option<String> = None;
    let mut type_text: Option<String> = None;
    if let Found::Objects(objs) = find_objects(completion) {
        for o in objs.iter().rev() {
            let Some(map) = o.as_object() else { continue };
            for (k, v) in map {
                let key = k.to_ascii_lowercase();
                let Some(s) = v.as_str() else { continue };
                if kind_text.is_none()
                    && matches!(key.as_str(), "format" | "question_type" | "task_type" | "type")
                {
                    kind_text = Some(s.to_string());
                }
                if type_text.is_none() && key == "answer_type" {
                    type_text = Some(s.to_string());
                }
            }
            if kind_text.is_some() {
                break;
            }
        }
    }
    let kind = match kind_text.as_deref().and_then(|s| s.parse::<TaskKind>().ok()) {
        Some(k) if k != TaskKind::Any => k,
        _ => first_kind_word(completion)?,
    };
    if !allowed.contains(&kind) {
        return None;
    }
    let answer_type = match kind {
        TaskKind::FreeForm => type_text
            .and_then(|s| s.parse::<AnswerType>().ok())
            .filter(|t| allowed_types.contains(t)),
        _ => None,
    };
    Some(FormatChoice { kind, answer_type })
}

fn first_kind_word(text: &str) -> Option<TaskKind> {
    let lower = text.to_ascii_lowercase();
    let mcq =
        ["mcq", "multiple choice", "multiple-choice"].iter().filter_map(|w| lower.find(w)).min();
    let free = ["free_form", "free-form", "free form"].iter().filter_map(|w| lower.find(w)).min();
    match (mcq, free) {
        (Some(a), Some(b)) => Some(if a <= b { TaskKind::Mcq } else { TaskKind::FreeForm }),
        (Some(_), None) => Some(TaskKind::Mcq),
        (None, Some(_)) => Some(TaskKind::FreeForm),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const BOTH: &[TaskKind] = &[TaskKind::Mcq, TaskKind::FreeForm];

    #[test]
    fn reads_json_then_words() {
        let c = parse_format_choice(
            r#"{"format": "free_form", "answer_type": "integer"}"#,
            BOTH,
            AnswerType::ALL,
        );
        assert_eq!(
            c,
            Some(FormatChoice { kind: TaskKind::FreeForm, answer_type: Some(AnswerType::Integer) })
        );
        let c =
            parse_format_choice("I would ask a multiple choice question.", BOTH, AnswerType::ALL);
        assert_eq!(c, Some(FormatChoice { kind: TaskKind::Mcq, answer_type: None }));
        assert_eq!(parse_format_choice("no idea", BOTH, AnswerType::ALL), None);
    }

    #[test]
    fn respects_what_is_allowed() {
        let c = parse_format_choice(r#"{"format": "mcq"}"#, &[TaskKind::FreeForm], AnswerType::ALL);
        assert_eq!(c, None);
        let c = parse_format_choice(
            r#"{"format": "free_form", "answer_type": "list"}"#,
            BOTH,
            &[AnswerType::Integer],
        );
        assert_eq!(c, Some(FormatChoice { kind: TaskKind::FreeForm, answer_type: None }));
    }
}
