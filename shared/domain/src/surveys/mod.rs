//! Surveys: the versioned question bank and answer validation.

mod answers;
mod question_bank;

pub use answers::{validate_answers, AnswerValue, Answers, InvalidAnswers};
pub use question_bank::{
    question_bank, Question, QuestionBank, QuestionKind, Stat, CURRENT_VERSION,
};

/// Answers needed before a persona can be synthesized.
pub const RESPONSE_THRESHOLD: i32 = 3;
/// How long a survey collects answers.
pub const SURVEY_LIFETIME_DAYS: i64 = 30;
/// Longest survey title.
pub const MAX_TITLE_CHARS: usize = 80;
/// The title when the owner gives none.
pub const DEFAULT_TITLE: &str = "How do my friends see me?";
