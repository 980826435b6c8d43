//! The one answers fixture: valid answers to every question of a bank, deterministic and
//! different per friend. Tests, the demo and the benchmarks all answer surveys with it.

use serde_json::{Map, Value};

use super::question_bank::{QuestionBank, QuestionKind};

/// Scale answers after the first one, in question order (1–5 scale; clamped to the question's).
const SCALE_CYCLE: [u8; 7] = [4, 5, 4, 5, 4, 2, 3];
const WORDS: [&str; 3] = [
    "bright, loyal, funny",
    "calm, kind, sharp",
    "wild, warm, brave",
];

/// Answers of friend number `friend` to every required question of `bank`: the first scale
/// question varies with `friend` (`min + friend mod span`), the other scale questions follow a
/// fixed cycle, each choice question takes a fixed option, and required text questions get
/// three words. Optional questions are left out.
pub fn sample_answers(bank: &QuestionBank, friend: u32) -> Value {
    let mut answers = Map::new();
    let mut scale_index = 0usize;
    let mut choice_index = 0usize;
    for question in bank.questions.iter().filter(|q| q.required) {
        let value = match &question.kind {
            QuestionKind::Scale { min, max, .. } => {
                let value = if scale_index == 0 {
                    let span = u32::from(max - min) + 1;
                    min + (friend % span) as u8
                } else {
                    SCALE_CYCLE[(scale_index - 1) % SCALE_CYCLE.len()].clamp(*min, *max)
                };
                scale_index += 1;
                Value::from(value)
            }
            QuestionKind::Choice { options } => {
                let option = &options[(3 * (choice_index + 1)) % options.len()];
                choice_index += 1;
                Value::from(option.id)
            }
            QuestionKind::Text { .. } => Value::from(WORDS[friend as usize % WORDS.len()]),
        };
        answers.insert(question.id.to_owned(), value);
    }
    Value::Object(answers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::surveys::{question_bank, validate_answers, CURRENT_VERSION};

    #[test]
    fn the_fixture_is_valid_for_every_friend_and_deterministic() {
        let bank = question_bank(CURRENT_VERSION).unwrap();
        for friend in 0..20 {
            let answers = sample_answers(bank, friend);
            validate_answers(bank, answers.as_object().unwrap()).unwrap();
            assert_eq!(answers, sample_answers(bank, friend));
        }
        assert_ne!(sample_answers(bank, 0), sample_answers(bank, 1));
        let answers = sample_answers(bank, 3);
        assert_eq!(answers["charisma_room"], 4);
        assert_eq!(answers["intellect_curious"], 5);
        assert_eq!(answers["intellect_advice"], 4);
        assert_eq!(answers["first_impression"], "warm_open");
    }
}
