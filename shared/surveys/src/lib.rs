//! Surveys (F-001): an owner creates one, friends answer it anonymously, the third answer starts
//! the persona saga. The use cases here are what every entry point calls; their SQL is in
//! [`repo`], the anonymity mechanics (day keys, duplicate markers, the reservation transaction)
//! in [`anonymity`].
//!
//! From `POST /v1/surveys/{id}/responses` to the outbox row: [`Surveys::prepare_answer`] checks
//! the survey and the answers, [`Surveys::store_answer`] reserves the duplicate marker, seals the
//! answers and calls [`repo::submit`], whose PL/pgSQL function stores the answer and, for the
//! third one, creates the persona job and its outbox row in the same transaction.

pub mod anonymity;
pub mod repo;

use std::{collections::BTreeMap, sync::Arc};

use chrono::{DateTime, Duration, Utc};
use deadpool_postgres::Pool;
use domain::surveys::{
    question_bank, validate_answers, Answers, QuestionBank, SurveyStatus, CURRENT_VERSION,
    DEFAULT_TITLE, MAX_TITLE_CHARS, RESPONSE_THRESHOLD, SURVEY_LIFETIME_DAYS,
};
use platform::{
    clock::Clock,
    crypto::Sealer,
    cursor::{Cursor, InvalidPage, Page, PageRequest},
    rate_limit::{self, LimitError, Limited, RateLimiter},
};
use uuid::Uuid;

use anonymity::DayKeys;
pub use repo::Survey;
use repo::{Created, Submitted};

/// Why a survey use case refused.
#[derive(Debug, thiserror::Error)]
pub enum SurveyError {
    #[error("no such survey")]
    NotFound,
    #[error("the survey is closed")]
    Closed,
    #[error("the survey has expired")]
    Expired,
    #[error("the owner already has a collecting survey")]
    AlreadyCollecting { survey_id: Uuid },
    #[error("invalid title")]
    InvalidTitle,
    #[error("the owner cannot answer their own survey")]
    OwnSurvey,
    /// By question id: the reason only, never the submitted value.
    #[error("invalid answers")]
    InvalidAnswers(BTreeMap<String, String>),
    #[error("already answered from this device")]
    AlreadyAnswered,
    #[error(transparent)]
    InvalidPage(#[from] InvalidPage),
    #[error(transparent)]
    RateLimited(#[from] Limited),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<LimitError> for SurveyError {
    fn from(error: LimitError) -> Self {
        match error {
            LimitError::Limited(limited) => Self::RateLimited(limited),
            LimitError::Unexpected(error) => Self::Unexpected(error),
        }
    }
}

/// How far an owner's survey is.
#[derive(Debug, Clone)]
pub struct Progress {
    pub response_count: i32,
    pub threshold: i32,
    pub unlocked: bool,
    /// The survey's latest persona job state, `awaiting_responses` before the third answer.
    pub persona_status: String,
    /// Answers no persona version has seen.
    pub new_responses: i32,
    /// Answers still needed before a (new) persona version can be made.
    pub responses_needed: i32,
}

/// A checked answer, ready to store: the survey is open and the answers are valid.
pub struct Submission {
    survey_id: Uuid,
    answers: Answers,
    now: DateTime<Utc>,
    day_key: [u8; 32],
}

impl Submission {
    /// Today's anonymity key: anonymous idempotency records are keyed with it too.
    pub fn day_key(&self) -> &[u8; 32] {
        &self.day_key
    }
}

/// The survey use cases and the handles they need.
#[derive(Clone)]
pub struct Surveys {
    pub db: Pool,
    pub cipher: Arc<Sealer>,
    pub day_keys: Arc<DayKeys>,
    pub limits: RateLimiter,
    pub clock: Arc<dyn Clock>,
    /// The persona lifecycle the third answer starts.
    pub personas: personas::Personas,
}

impl Surveys {
    /// Creates the owner's survey (one collecting survey at a time, 5 an hour).
    pub async fn create(&self, owner_id: Uuid, title: Option<&str>) -> Result<Survey, SurveyError> {
        let title = title.map(str::trim).filter(|t| !t.is_empty());
        if title.is_some_and(|t| {
            t.chars().count() > MAX_TITLE_CHARS || !domain::text::is_clean(t, false)
        }) {
            return Err(SurveyError::InvalidTitle);
        }
        self.limits
            .check(rate_limit::SURVEY_CREATE, &owner_id.to_string())
            .await?;
        let now = self.clock.now();
        let expires_at = now + Duration::days(SURVEY_LIFETIME_DAYS);
        let title = title.unwrap_or(DEFAULT_TITLE);
        match repo::create(&self.db, owner_id, title, CURRENT_VERSION, now, expires_at).await? {
            Created::AlreadyCollecting(survey_id) => {
                Err(SurveyError::AlreadyCollecting { survey_id })
            }
            Created::Survey(survey) => {
                self.personas.survey_created(owner_id).await;
                tracing::info!(survey_id = %survey.id, "survey created");
                Ok(survey)
            }
        }
    }

    /// The owner's surveys, newest first, a page at a time.
    pub async fn list_mine(
        &self,
        owner_id: Uuid,
        cursor: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Page<Survey>, SurveyError> {
        let request = PageRequest::parse(cursor, limit)?;
        let surveys = repo::list_mine(&self.db, owner_id, request.after, request.fetch()).await?;
        Ok(request.page(surveys, |survey| Cursor {
            at: survey.created_at,
            id: survey.id,
        }))
    }

    /// What a friend sees before answering: the open survey and its questions.
    pub async fn public_view(
        &self,
        id: Uuid,
    ) -> Result<(Survey, &'static QuestionBank), SurveyError> {
        let survey = self.open_survey(id, self.clock.now()).await?;
        let bank = bank_of(&survey)?;
        Ok((survey, bank))
    }

    /// How far the owner's survey is; another owner's survey is [`SurveyError::NotFound`].
    pub async fn progress(&self, owner_id: Uuid, id: Uuid) -> Result<Progress, SurveyError> {
        let survey = repo::find(&self.db, id)
            .await?
            .filter(|survey| survey.owner_id == owner_id)
            .ok_or(SurveyError::NotFound)?;
        let (persona_status, seen) = repo::persona_state(&self.db, id)
            .await?
            .unwrap_or_else(|| ("awaiting_responses".to_owned(), 0));
        let new_responses = survey.response_count - seen;
        Ok(Progress {
            response_count: survey.response_count,
            threshold: RESPONSE_THRESHOLD,
            unlocked: survey.response_count >= RESPONSE_THRESHOLD,
            persona_status,
            new_responses,
            responses_needed: (RESPONSE_THRESHOLD - new_responses).max(0),
        })
    }

    /// Closes the owner's survey (answers are kept); closing twice is fine.
    pub async fn close(&self, owner_id: Uuid, id: Uuid) -> Result<(), SurveyError> {
        if repo::close(&self.db, owner_id, id, self.clock.now()).await? {
            tracing::info!(survey_id = %id, "survey closed");
            Ok(())
        } else {
            Err(SurveyError::NotFound)
        }
    }

    /// Checks a friend's answers before anything is written: the survey is open, the friend is
    /// not its owner, every answer fits the survey's question bank.
    pub async fn prepare_answer(
        &self,
        survey_id: Uuid,
        answerer: Option<Uuid>,
        submitted: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Submission, SurveyError> {
        let now = self.clock.now();
        let survey = self.open_survey(survey_id, now).await?;
        if answerer == Some(survey.owner_id) {
            return Err(SurveyError::OwnSurvey);
        }
        let bank = bank_of(&survey)?;
        let answers = validate_answers(bank, submitted)
            .map_err(|invalid| SurveyError::InvalidAnswers(invalid.fields))?;
        Ok(Submission {
            survey_id,
            answers,
            now,
            day_key: self.day_keys.today(now).await?,
        })
    }

    /// Stores a checked answer, sealed; nothing about the sender is kept but a day-keyed
    /// duplicate marker. The third answer queues the persona job (published after commit).
    pub async fn store_answer(
        &self,
        submission: Submission,
        address_hash: &str,
        fingerprint: Option<&str>,
        request_id: Option<&str>,
    ) -> Result<(), SurveyError> {
        let Submission {
            survey_id,
            answers,
            now,
            day_key,
        } = submission;
        let first_version = personas::threshold::FirstVersion::prepare()?;
        let marker = self
            .day_keys
            .reserve(
                &self.limits,
                &day_key,
                now,
                survey_id,
                address_hash,
                fingerprint,
            )
            .await?;
        let response_id = Uuid::new_v4();
        let stored = async {
            let plaintext = serde_json::to_vec(&answers).map_err(anyhow::Error::from)?;
            let sealed = self
                .cipher
                .seal(survey_id, response_id, &plaintext)
                .map_err(anyhow::Error::from)?;
            repo::submit(
                &self.db,
                survey_id,
                response_id,
                &sealed,
                &first_version,
                request_id,
                now,
            )
            .await
        }
        .await;
        let outcome = match stored {
            Ok(Submitted::Accepted {
                owner_id,
                new_responses,
            }) => {
                tracing::info!(%survey_id, "answer stored");
                self.personas.answer_counted(owner_id, new_responses).await;
                return Ok(());
            }
            Ok(Submitted::Started { version, owner_id }) => {
                tracing::info!(%survey_id, persona_id = %first_version.persona_id, "third answer stored; persona job queued");
                self.personas
                    .first_version_made(owner_id, &first_version, version)
                    .await;
                return Ok(());
            }
            Ok(Submitted::NotFound) => SurveyError::NotFound,
            Ok(Submitted::Gone) => SurveyError::Closed,
            Err(error) => SurveyError::Unexpected(error),
        };
        // Not stored after all: the friend may try again.
        self.day_keys.release(marker).await;
        Err(outcome)
    }

    async fn open_survey(&self, id: Uuid, now: DateTime<Utc>) -> Result<Survey, SurveyError> {
        let survey = repo::find(&self.db, id)
            .await?
            .ok_or(SurveyError::NotFound)?;
        match survey.status_at(now) {
            SurveyStatus::Collecting => Ok(survey),
            SurveyStatus::Expired => Err(SurveyError::Expired),
            SurveyStatus::Closed => Err(SurveyError::Closed),
        }
    }
}

/// The question bank a survey was created with.
pub fn bank_of(survey: &Survey) -> Result<&'static QuestionBank, SurveyError> {
    question_bank(survey.question_bank_version)
        .ok_or_else(|| anyhow::anyhow!("survey with unknown question bank version").into())
}
