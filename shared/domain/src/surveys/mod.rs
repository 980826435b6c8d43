//! Surveys: the versioned question bank and answer validation.

mod answers;
mod question_bank;

pub use answers::{answers_schema, validate_answers, AnswerValue, Answers, InvalidAnswers};
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

mod fixture;
pub use fixture::sample_answers;

/// Where a survey is in its life at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SurveyStatus {
    Collecting,
    Closed,
    /// Still marked collecting, but past `expires_at`.
    Expired,
}

impl SurveyStatus {
    /// The status at `now` of a survey stored as `stored` (`collecting` or `closed`) that
    /// expires at `expires_at`.
    pub fn at(
        stored: &str,
        expires_at: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        match stored {
            "collecting" if expires_at <= now => Self::Expired,
            "collecting" => Self::Collecting,
            _ => Self::Closed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Collecting => "collecting",
            Self::Closed => "closed",
            Self::Expired => "expired",
        }
    }
}

#[cfg(test)]
mod status_tests {
    use chrono::{Duration, TimeZone, Utc};

    use super::SurveyStatus;

    #[test]
    fn a_collecting_survey_expires_at_its_instant_and_a_closed_one_stays_closed() {
        let expires = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let before = expires - Duration::seconds(1);
        assert_eq!(
            SurveyStatus::at("collecting", expires, before),
            SurveyStatus::Collecting
        );
        assert_eq!(
            SurveyStatus::at("collecting", expires, expires),
            SurveyStatus::Expired
        );
        assert_eq!(
            SurveyStatus::at("closed", expires, before),
            SurveyStatus::Closed
        );
    }
}
