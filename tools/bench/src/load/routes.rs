//! The routes measured and the requests that drive them, each connection from a loopback
//! address of its own.

use std::{net::IpAddr, sync::Arc};

use bytes::Bytes;
use hyper::{header, Method, Request};

use super::{
    client::{Body, MakeRequest},
    setup::Fixture,
};

/// The routes measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    PublicSurvey,
    AnswerSubmit,
    StatusPoll,
    Me,
    Quests,
    Chat,
}

impl Route {
    pub const ALL: [Route; 6] = [
        Route::PublicSurvey,
        Route::AnswerSubmit,
        Route::StatusPoll,
        Route::Me,
        Route::Quests,
        Route::Chat,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Route::PublicSurvey => "public survey `GET /v1/surveys/{id}/public`",
            Route::AnswerSubmit => "answer submit `POST /v1/surveys/{id}/responses`",
            Route::StatusPoll => "status poll `GET /v1/personas/me/status`",
            Route::Me => "`GET /v1/me`",
            Route::Quests => "quests `GET /v1/quests`",
            Route::Chat => "chat `POST /v1/personas/me/messages` (offline)",
        }
    }

    /// What backs the route besides the stack itself.
    pub(super) fn backing(self) -> &'static str {
        match self {
            Route::PublicSurvey | Route::Me | Route::Quests => "PostgreSQL",
            Route::StatusPoll => "DynamoDB (emulator)",
            Route::AnswerSubmit | Route::Chat => "PostgreSQL + DynamoDB (emulator)",
        }
    }
}

/// Builds the requests of `route` for connection `i`, request `n`. `block` keeps each run's
/// addresses apart from the others' (rate-limit windows are per minute).
pub(super) fn requests(
    fixture: &Arc<Fixture>,
    route: Route,
    users: std::ops::Range<usize>,
) -> MakeRequest {
    let fixture = fixture.clone();
    Arc::new(move |i: usize, n: u64| {
        let user = &fixture.users[users.start + i % users.len()];
        let builder = Request::builder().header(header::HOST, &fixture.host);
        let request = match route {
            Route::PublicSurvey => builder
                .uri(format!("/v1/surveys/{}/public", user.survey_id))
                .body(Body::default()),
            Route::AnswerSubmit => {
                // Every request to another survey (at most 5 a minute per survey and address),
                // with a fingerprint of its own (no duplicate marker is hit).
                let survey = &fixture.users[(i * 37 + n as usize) % fixture.users.len()];
                builder
                    .method(Method::POST)
                    .uri(format!("/v1/surveys/{}/responses", survey.survey_id))
                    .header(header::CONTENT_TYPE, "application/json")
                    .header("x-fingerprint", format!("load-{}-{i}-{n}", fixture.run_id))
                    .body(Body::new(
                        fixture.answers[n as usize % fixture.answers.len()].clone(),
                    ))
            }
            Route::StatusPoll => builder
                .uri("/v1/personas/me/status")
                .header(header::AUTHORIZATION, &user.authorization)
                .body(Body::default()),
            Route::Me => builder
                .uri("/v1/me")
                .header(header::AUTHORIZATION, &user.authorization)
                .body(Body::default()),
            Route::Quests => builder
                .uri("/v1/quests")
                .header(header::AUTHORIZATION, &user.authorization)
                .body(Body::default()),
            Route::Chat => builder
                .method(Method::POST)
                .uri("/v1/personas/me/messages")
                .header(header::AUTHORIZATION, &user.authorization)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::new(Bytes::from(format!(
                    r#"{{"content":"Message {n}: I went hiking in the mountains today"}}"#
                )))),
        };
        request.expect("a valid request")
    })
}

/// The loopback address of connection `i` in address block `block` (127.block.x.y).
pub(super) fn address(block: u8, i: usize) -> IpAddr {
    IpAddr::from([127, block, (i / 250) as u8, (i % 250) as u8 + 1])
}
