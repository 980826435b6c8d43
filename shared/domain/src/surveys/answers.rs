//! Validating a respondent's answers against the survey's question bank.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, Object, ObjectBuilder, Schema, SchemaType, Type,
};

use super::question_bank::{QuestionBank, QuestionKind};

/// A validated answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AnswerValue {
    Scale(u8),
    Text(String),
}

/// Validated answers by question id: scale values as numbers, choices as option ids, text as
/// trimmed strings. Unanswered optional questions are absent.
pub type Answers = BTreeMap<String, AnswerValue>;

/// Every problem, by question id: the reason only, never the submitted value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid answers: {fields:?}")]
pub struct InvalidAnswers {
    pub fields: BTreeMap<String, String>,
}

/// Checks `submitted` (question id → JSON value) against `bank`.
pub fn validate_answers(
    bank: &QuestionBank,
    submitted: &serde_json::Map<String, serde_json::Value>,
) -> Result<Answers, InvalidAnswers> {
    let mut fields = BTreeMap::new();
    let mut answers = Answers::new();
    for id in submitted.keys() {
        if bank.question(id).is_none() {
            fields.insert(id.clone(), "is not a question of this survey".to_owned());
        }
    }
    for question in &bank.questions {
        let value = submitted.get(question.id).filter(|v| !v.is_null());
        let Some(value) = value else {
            if question.required {
                fields.insert(question.id.to_owned(), "is required".to_owned());
            }
            continue;
        };
        let outcome = match &question.kind {
            // JSON Schema counts `4.0` as an integer, so it is one here too.
            QuestionKind::Scale { min, max, .. } => match value.as_u64().or_else(|| {
                value
                    .as_f64()
                    .filter(|n| n.fract() == 0.0)
                    .map(|n| n as u64)
            }) {
                Some(n) if (u64::from(*min)..=u64::from(*max)).contains(&n) => {
                    Ok(AnswerValue::Scale(n as u8))
                }
                _ => Err(format!("must be an integer from {min} to {max}")),
            },
            QuestionKind::Choice { options } => match value.as_str() {
                Some(choice) if options.iter().any(|o| o.id == choice) => {
                    Ok(AnswerValue::Text(choice.to_owned()))
                }
                _ => Err("must be one of the option ids".to_owned()),
            },
            QuestionKind::Text { max_length } => match value.as_str().map(str::trim) {
                Some(text) if text.is_empty() && question.required => Err("is required".to_owned()),
                Some(text) if text.chars().count() > *max_length => {
                    Err(format!("must be at most {max_length} characters"))
                }
                Some(text) if !crate::text::is_clean(text, true) => {
                    Err("must not contain control, bidi or zero-width characters".to_owned())
                }
                Some("") => continue,
                Some(text) => Ok(AnswerValue::Text(text.to_owned())),
                None => Err("must be a string".to_owned()),
            },
        };
        match outcome {
            Ok(answer) => {
                answers.insert(question.id.to_owned(), answer);
            }
            Err(reason) => {
                fields.insert(question.id.to_owned(), reason);
            }
        }
    }
    if fields.is_empty() {
        Ok(answers)
    } else {
        Err(InvalidAnswers { fields })
    }
}

/// What [`validate_answers`] accepts, as a JSON Schema for the OpenAPI document: one property
/// per question (scale: an integer in its range, choice: one of its option ids, text: at most its
/// length, no hidden characters, not blank if required), the required ones required, no others;
/// an optional question may be `null`. Several bank versions: any of them (a survey is checked
/// against its own).
pub fn answers_schema(banks: &[&QuestionBank]) -> Schema {
    match banks {
        [only] => bank_schema(only).into(),
        _ => banks
            .iter()
            .fold(AnyOfBuilder::new(), |any, bank| any.item(bank_schema(bank)))
            .into(),
    }
}

fn bank_schema(bank: &QuestionBank) -> Object {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(format!(
            "Answers to the questions of question bank version {}, by question id.",
            bank.version
        )))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for question in &bank.questions {
        let nullable = |kind: Type| -> SchemaType {
            if question.required {
                kind.into()
            } else {
                SchemaType::from_iter([kind, Type::Null])
            }
        };
        let answer = match &question.kind {
            QuestionKind::Scale { min, max, .. } => ObjectBuilder::new()
                .schema_type(nullable(Type::Integer))
                .minimum(Some(*min))
                .maximum(Some(*max)),
            QuestionKind::Choice { options } => {
                let ids = options.iter().map(|option| Some(option.id));
                let ids = ids.chain((!question.required).then_some(None));
                ObjectBuilder::new()
                    .schema_type(nullable(Type::String))
                    .enum_values(Some(ids))
            }
            QuestionKind::Text { max_length } => ObjectBuilder::new()
                .schema_type(nullable(Type::String))
                .max_length(Some(*max_length))
                .pattern(Some(crate::text::patterns::clean(true, question.required))),
        };
        object = object.property(question.id, answer.description(Some(question.prompt)));
        if question.required {
            object = object.required(question.id);
        }
    }
    object.build()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::surveys::question_bank;

    pub fn complete() -> Value {
        json!({
            "charisma_room": 4, "charisma_story": 5, "intellect_curious": 3, "intellect_advice": 4,
            "kindness_notice": 5, "kindness_help": 5, "energy_plans": 2, "energy_late": 1,
            "first_impression": "warm_open", "in_a_crisis": "has_a_plan",
            "three_words": "kind, sharp, funny",
        })
    }

    fn check(value: Value) -> Result<Answers, InvalidAnswers> {
        validate_answers(question_bank(1).unwrap(), value.as_object().unwrap())
    }

    #[test]
    fn complete_answers_validate_and_optional_ones_may_be_missing() {
        let answers = check(complete()).unwrap();
        assert_eq!(answers["charisma_room"], AnswerValue::Scale(4));
        assert_eq!(
            answers["first_impression"],
            AnswerValue::Text("warm_open".into())
        );
        assert!(!answers.contains_key("best_memory"));
    }

    #[test]
    fn a_whole_number_written_with_a_fraction_is_a_scale_answer() {
        let mut answers = complete();
        answers["charisma_room"] = json!(4.0);
        assert_eq!(
            check(answers).unwrap()["charisma_room"],
            AnswerValue::Scale(4)
        );
    }

    #[test]
    fn the_schema_names_every_question_and_requires_the_required_ones() {
        let bank = question_bank(1).unwrap();
        let schema = serde_json::to_value(answers_schema(std::slice::from_ref(&bank))).unwrap();
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(
            schema["properties"].as_object().unwrap().len(),
            bank.questions.len()
        );
        assert_eq!(schema["properties"]["charisma_room"]["maximum"], 5);
        assert_eq!(
            schema["properties"]["first_impression"]["enum"][0],
            "cold_then_warm"
        );
        assert_eq!(
            schema["properties"]["best_memory"]["type"],
            json!(["string", "null"])
        );
        let required: Vec<&str> = bank
            .questions
            .iter()
            .filter(|q| q.required)
            .map(|q| q.id)
            .collect();
        assert_eq!(schema["required"], json!(required));
    }

    #[test]
    fn every_bad_answer_is_named_with_its_reason() {
        let mut bad = complete();
        bad["charisma_room"] = json!(6);
        bad["charisma_story"] = json!("5");
        bad["intellect_curious"] = json!(2.5);
        bad["first_impression"] = json!("nope");
        bad["three_words"] = json!("x".repeat(281));
        bad["best_memory"] = json!(12);
        bad.as_object_mut().unwrap().remove("energy_late");
        bad["favourite_color"] = json!("blue");
        let error = check(bad).unwrap_err();
        let fields: Vec<&str> = error.fields.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            [
                "best_memory",
                "charisma_room",
                "charisma_story",
                "energy_late",
                "favourite_color",
                "first_impression",
                "intellect_curious",
                "three_words"
            ]
        );
        assert_eq!(error.fields["energy_late"], "is required");
        assert!(
            !format!("{error:?}").contains("blue"),
            "reasons never echo values"
        );
    }

    #[test]
    fn text_limits_count_characters_not_bytes() {
        let mut answers = complete();
        answers["three_words"] = json!("한".repeat(280));
        assert!(check(answers).is_ok());
    }

    #[test]
    fn blank_required_text_is_required() {
        let mut answers = complete();
        answers["three_words"] = json!("   ");
        assert_eq!(
            check(answers).unwrap_err().fields["three_words"],
            "is required"
        );
    }
}
