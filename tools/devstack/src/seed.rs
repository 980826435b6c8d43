//! Persona jobs written straight to the database, as the third answer leaves them: a user, a
//! survey with sealed answers, a `queued` persona and its synthesize message in the outbox
//! (unsent). The tests and the saga soak start from here instead of thousands of HTTP journeys.

use anyhow::Context;
use deadpool_postgres::Pool;
use platform::{
    crypto::Sealer,
    outbox::{self, Queue},
};
use serde_json::Value;
use uuid::Uuid;

/// One seeded job.
#[derive(Debug, Clone, Copy)]
pub struct QueuedPersona {
    pub persona_id: Uuid,
    pub owner_id: Uuid,
    /// Its synthesize message's outbox row (not yet published).
    pub outbox_id: Uuid,
}

/// Personas per transaction.
const CHUNK: usize = 50;

/// Seeds `n` queued personas, each from a survey with `submitted` as its answers (each valid
/// for the current question bank), sealed with `cipher`.
pub async fn queued_personas(
    db: &Pool,
    cipher: &Sealer,
    submitted: &[Value],
    n: usize,
) -> anyhow::Result<Vec<QueuedPersona>> {
    let bank = domain::surveys::question_bank(domain::surveys::CURRENT_VERSION)
        .context("the current question bank")?;
    let answers = submitted
        .iter()
        .map(|submitted| {
            let object = submitted.as_object().context("answers are an object")?;
            let answers = domain::surveys::validate_answers(bank, object)
                .map_err(|invalid| anyhow::anyhow!("invalid answers: {:?}", invalid.fields))?;
            Ok(serde_json::to_vec(&answers)?)
        })
        .collect::<anyhow::Result<Vec<Vec<u8>>>>()?;
    let count = i32::try_from(answers.len())?;
    let mut client = db.get().await.context("connecting to PostgreSQL")?;
    let mut seeded = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(CHUNK) {
        let tx = client.transaction().await?;
        for _ in chunk {
            let (owner_id, survey, persona_id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
            tx.execute(
                "INSERT INTO users (id, subject, display_name) VALUES ($1, $2, 'Mira')",
                &[&owner_id, &format!("seed:{owner_id}")],
            )
            .await
            .context("seeding a user")?;
            tx.execute(
                "INSERT INTO surveys (id, owner_id, title, question_bank_version, status, response_count, created_at, expires_at)
                 VALUES ($1, $2, 't', 1, 'collecting', $3, now(), now() + interval '30 days')",
                &[&survey, &owner_id, &count],
            )
            .await
            .context("seeding a survey")?;
            for plaintext in &answers {
                let response = Uuid::new_v4();
                let sealed = cipher.seal(survey, response, plaintext)?;
                tx.execute(
                    "INSERT INTO survey_responses (id, survey_id, key_id, nonce, ciphertext) VALUES ($1, $2, $3, $4, $5)",
                    &[&response, &survey, &sealed.key_id, &sealed.nonce, &sealed.ciphertext],
                )
                .await
                .context("seeding an answer")?;
            }
            tx.execute(
                "INSERT INTO personas (id, owner_id, survey_id, version, state, state_version, response_count)
                 VALUES ($1, $2, $3, 1, 'queued', 1, $4)",
                &[&persona_id, &owner_id, &survey, &count],
            )
            .await
            .context("seeding a persona job")?;
            let job = domain::personas::SynthesizeJob {
                persona_id,
                generation: Some(1),
            };
            let outbox_id = outbox::enqueue(&tx, Queue::Synthesize, &job, None).await?;
            seeded.push(QueuedPersona {
                persona_id,
                owner_id,
                outbox_id,
            });
        }
        tx.commit().await.context("committing the seed")?;
    }
    Ok(seeded)
}
