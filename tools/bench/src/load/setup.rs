//! The load benchmark's users: signed in through the API (each from its own loopback address,
//! as sign-in is limited per address), each with a survey; then, straight in the database, every
//! survey past its third answer and every user with a ready persona (what the saga would leave),
//! so answers are stored without starting a saga and chat has a persona to speak.

use std::net::{IpAddr, SocketAddr};

use anyhow::{bail, Context};
use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use hyper::{header, Method, Request};
use serde_json::{json, Value};

use super::{
    client::{self, Body},
    USERS,
};

/// One signed-in user.
#[derive(Clone)]
pub struct User {
    /// `Bearer <access token>`.
    pub authorization: String,
    pub survey_id: String,
}

pub struct Fixture {
    pub address: SocketAddr,
    /// The `Host` header.
    pub host: String,
    pub users: Vec<User>,
    /// Valid answer bodies (`{"answers": ...}`).
    pub answers: Vec<Bytes>,
    /// Keeps fingerprints unique across runs against one stack.
    pub run_id: u32,
}

impl Fixture {
    /// The same users, pointed at the stack listening on `address` (stacks share the database
    /// and keys, so tokens stay valid).
    pub fn at(&self, address: SocketAddr) -> Fixture {
        Fixture {
            address,
            host: address.to_string(),
            users: self.users.clone(),
            answers: self.answers.clone(),
            run_id: self.run_id,
        }
    }
}

/// Sends a JSON request from `local` and parses the JSON answer; fails on any status but
/// `expected`.
async fn call(
    sender: &mut hyper::client::conn::http1::SendRequest<Body>,
    host: &str,
    method: Method,
    path: &str,
    authorization: Option<&str>,
    body: Value,
    expected: u16,
) -> anyhow::Result<Value> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, host)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(authorization) = authorization {
        request = request.header(header::AUTHORIZATION, authorization);
    }
    let request = request.body(Body::new(Bytes::from(body.to_string())))?;
    let (status, body) = client::exchange(sender, request).await?;
    if status != expected {
        bail!(
            "{path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(serde_json::from_slice(&body)?)
}

async fn user(address: SocketAddr, host: &str, index: usize) -> anyhow::Result<User> {
    // Sign-in allows 10 a minute per address: each user signs in from its own.
    let local = IpAddr::from([127, 2, (index / 250) as u8, (index % 250) as u8 + 1]);
    let mut sender = client::connect(local, address).await?;
    let tokens = call(
        &mut sender,
        host,
        Method::POST,
        "/v1/auth/dev",
        None,
        json!({"email": format!("load{index}@example.com"), "name": "Mira"}),
        200,
    )
    .await?;
    let authorization = format!(
        "Bearer {}",
        tokens["access_token"].as_str().context("a token")?
    );
    let survey = call(
        &mut sender,
        host,
        Method::POST,
        "/v1/surveys",
        Some(&authorization),
        json!({}),
        201,
    )
    .await?;
    Ok(User {
        authorization,
        survey_id: survey["id"].as_str().context("a survey id")?.to_owned(),
    })
}

/// Signs the users in, then seeds their answers' state and personas.
pub async fn prepare(address: SocketAddr, database_url: &str) -> anyhow::Result<Fixture> {
    let host = address.to_string();
    let users: Vec<User> = stream::iter(0..USERS)
        .map(|index| user(address, &host, index))
        .buffered(24)
        .try_collect()
        .await?;
    seed_personas(database_url).await?;
    let bank = domain::surveys::question_bank(domain::surveys::CURRENT_VERSION)
        .context("the current question bank")?;
    let answers = (0..16)
        .map(|friend| {
            Bytes::from(
                json!({"answers": domain::surveys::sample_answers(bank, friend)}).to_string(),
            )
        })
        .collect();
    Ok(Fixture {
        address,
        host,
        users,
        answers,
        run_id: std::process::id(),
    })
}

/// Every survey past its third answer, and every owner with a ready version 1 persona of
/// rule-based text, as the saga leaves it.
async fn seed_personas(database_url: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .context("connecting to seed")?;
    let driver = tokio::spawn(connection);
    let bank = domain::surveys::question_bank(domain::surveys::CURRENT_VERSION)
        .context("the current question bank")?;
    let text = domain::synthesis::rule_based(&domain::synthesis::aggregate(bank, "Mira", &[]));
    client
        .execute("UPDATE surveys SET response_count = 3", &[])
        .await
        .context("seeding answer counts")?;
    let archetype = serde_json::to_value(domain::archetypes::Archetype::Genki)?;
    client
        .execute(
            "INSERT INTO personas (id, owner_id, survey_id, version, state, state_version, response_count,
                 name, archetype, traits, greeting, charisma, intellect, kindness, energy,
                 synthesized_by, cards)
             SELECT p.id, p.owner_id, p.survey_id, 1, 'ready', 4, 3, $1, $2, $3, $4, 50, 50, 50, 50,
                    'rule_based',
                    jsonb_build_array(jsonb_build_object('size', 'square', 'width', 1080, 'height', 1080,
                                                         'key', 'cards/' || p.id || '/seed.png'))
             FROM (SELECT gen_random_uuid() AS id, owner_id, id AS survey_id FROM surveys) p",
            &[
                &text.name,
                &archetype.as_str().context("an archetype name")?,
                &json!(text.traits),
                &text.greeting,
            ],
        )
        .await
        .context("seeding personas")?;
    drop(client);
    let _ = driver.await;
    Ok(())
}
