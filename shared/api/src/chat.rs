//! Chat routes (F-003): send the persona a message (JSON, or streamed as Server-Sent Events),
//! read the history. Thin handlers over the `chat` crate.
//!
//! The stream (`Accept: text/event-stream`, where the router allows it: the local stack and
//! the chat stream function behind a Function URL; API Gateway's HTTP API cannot stream, so its
//! route answers JSON):
//!
//! ```text
//! event: token
//! data: {"text":"Whoa, "}
//!
//! event: done
//! data: {"message":{...},"reply":{...},"bond_level":1,"bond_name":"Acquaintance","bond_points":12}
//! ```
//!
//! or `event: error` with the standard error body. `done.reply.content` is the stored reply: it
//! equals the concatenated tokens, except when a reply that had started streaming was replaced by
//! the fallback (`source: fallback`), which the client shows instead.

use std::{convert::Infallible, sync::Arc};

use ::auth::AccessTokens;
use axum::{
    extract::{FromRef, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{
        sse::{Event, Sse},
        IntoResponse, Response,
    },
    Extension, Json,
};
use chat::config::ChatConfig;
use chat::{ChatError, ChatMessage, Exchange, Received, Role, Source};
use chrono::{DateTime, Utc};
use domain::text::patterns;
use futures_util::{future::BoxFuture, stream, Stream, StreamExt};
use platform::{aws::AwsClients, aws::Table, clock, db, outbox::Publisher};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tracing::Instrument;
use utoipa::{openapi::schema::Object, ToSchema};
use uuid::Uuid;

use crate::{
    auth::{AuthUser, Authenticator},
    error::{ErrorBody, ErrorObject},
    extract::ApiQuery,
    idempotency::{IdempotencyKey, REPLAYED_HEADER},
    json::ApiJson,
    openapi, request_context,
    surveys::PageQuery,
    ApiError, AppState, Problem,
};

/// What the chat routes need: the use cases and the token verifier. A part of [`AppState`] in
/// the HTTP function; all of the state in the chat stream function.
#[derive(Clone)]
pub struct ChatApi {
    pub chat: chat::Chat,
    pub authenticator: Authenticator,
}

impl FromRef<AppState> for ChatApi {
    fn from_ref(state: &AppState) -> Self {
        Self {
            chat: state.chat.clone(),
            authenticator: state.authenticator.clone(),
        }
    }
}

impl FromRef<ChatApi> for Authenticator {
    fn from_ref(api: &ChatApi) -> Self {
        api.authenticator.clone()
    }
}

impl ChatApi {
    /// The chat stream function's state, from its own configuration.
    pub fn new(config: &ChatConfig, aws: &AwsClients) -> anyhow::Result<Self> {
        let clock = clock::system();
        let table = Table::new(&aws.dynamodb, &config.table_name);
        Ok(Self {
            chat: chat::Chat::new(
                &config.chat,
                db::pool(&config.database, &aws.secrets)?,
                table.clone(),
                Publisher::new(aws.sqs.clone(), config.publishes.clone()),
                clock.clone(),
            )?,
            authenticator: Authenticator {
                tokens: Arc::new(AccessTokens::new(&config.identity, clock.clone())),
                marks: ::account::ErasureMarks { table },
                clock,
            },
        })
    }
}

/// Marks a router whose chat route may stream (set by the router, never by a client).
#[derive(Debug, Clone, Copy)]
pub struct Streaming;

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    #[schema(schema_with = content_schema)]
    pub content: String,
}

fn content_schema() -> Object {
    openapi::text(chat::MAX_MESSAGE_CHARS, patterns::not_blank())
        .min_length(Some(1))
        .description(Some(
            "1 to 1000 characters once trimmed, so not blank (else 422 `invalid_fields`).",
        ))
        .build()
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleView {
    User,
    Persona,
}

/// Where a reply came from.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceView {
    /// The persona's model (the offline voice included).
    Llm,
    /// In-character fallback: the reply budget ran out, the model failed, or its reply was refused.
    Fallback,
    /// The fixed supportive reply to self-harm content, with crisis resources.
    Safety,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: Uuid,
    pub role: RoleView,
    pub content: String,
    pub created_at: DateTime<Utc>,
    /// The reply's origin; absent on the user's own messages.
    pub source: Option<SourceView>,
}

/// A message, its reply, and the bond after them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExchangeView {
    pub message: MessageView,
    pub reply: MessageView,
    /// 0 Stranger, 1 Acquaintance (10 points), 2 Friend (30), 3 Close Friend (60), 4 Soulmate (100).
    #[schema(maximum = 4)]
    pub bond_level: u8,
    pub bond_name: &'static str,
    pub bond_points: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    /// Newest first.
    pub items: Vec<MessageView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The data of a `token` event.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenEvent {
    pub text: String,
}

impl From<ChatError> for ApiError {
    fn from(error: ChatError) -> Self {
        match error {
            ChatError::InvalidContent => ApiError::Unprocessable(
                Problem::new("invalid_fields", "Some fields are invalid.").with_details(
                    serde_json::json!({ "fields": { "content": "must have 1 to 1000 characters after trimming" } }),
                ),
            ),
            ChatError::NoPersona => ApiError::NotFound(Problem::new("no_persona", "You have no persona yet.")),
            ChatError::NotReady => ApiError::Conflict(Problem::new(
                "persona_not_ready",
                "Your persona is not ready to chat yet; poll its status.",
            )),
            ChatError::Blocked(category) => ApiError::Unprocessable(
                Problem::new("message_blocked", "This message cannot be sent.")
                    .with_details(serde_json::json!({ "category": category.as_str() })),
            ),
            ChatError::RateLimited(limited) => limited.into(),
            ChatError::DailyQuotaExceeded { retry_after_secs } => ApiError::QuotaExceeded {
                problem: Problem::new(
                    "daily_quota_exceeded",
                    "You have sent today's 200 messages; the quota resets at midnight.",
                )
                .with_details(serde_json::json!({ "retry_after_seconds": retry_after_secs })),
                retry_after_secs,
            },
            ChatError::KeyReused => ApiError::Unprocessable(Problem::new(
                "idempotency_key_reused",
                "This Idempotency-Key was used with a different request body.",
            )),
            ChatError::InProgress => ApiError::Conflict(Problem::new(
                "request_in_progress",
                "A request with this Idempotency-Key is still being processed; retry shortly.",
            )),
            ChatError::InvalidPage(invalid) => invalid.into(),
            ChatError::Unexpected(error) => ApiError::Unexpected(error),
        }
    }
}

fn message_view(message: &ChatMessage) -> MessageView {
    MessageView {
        id: message.id,
        role: match message.role {
            Role::User => RoleView::User,
            Role::Persona => RoleView::Persona,
        },
        content: message.content.clone(),
        created_at: message.created_at,
        source: message.source.map(|source| match source {
            Source::Llm => SourceView::Llm,
            Source::Fallback => SourceView::Fallback,
            Source::Safety => SourceView::Safety,
        }),
    }
}

fn exchange_view(exchange: &Exchange) -> ExchangeView {
    ExchangeView {
        message: message_view(&exchange.message),
        reply: message_view(&exchange.reply),
        bond_level: exchange.bond.level(),
        bond_name: exchange.bond.name(),
        bond_points: exchange.bond.points,
    }
}

/// Sends the persona a message and returns its reply. With `Accept: text/event-stream` (local
/// stack and the chat stream URL) the reply streams: `token` events, then `done` (this body)
/// or `error`. The user's message is stored first and never lost: past the 3 s budget or on
/// a model failure the reply is the in-character fallback.
#[utoipa::path(
    post,
    path = "/v1/personas/me/messages",
    tag = "chat",
    security(("bearer" = [])),
    request_body = SendMessage,
    // A retried key returns the same reply and adds no bond. `Accept: text/event-stream` (a
    // header OpenAPI leaves to content negotiation) asks for the stream.
    params(IdempotencyKey),
    responses(
        (status = 201, description = "The message and its reply", body = ExchangeView),
        (status = 200, description = "With `Accept: text/event-stream` where the route streams (the local stack and the chat stream URL): Server-Sent Events `token` (data `{\"text\"}`), then `done` (data: the exchange, as the 201 body) or `error` (data: the error body)",
            content((String = "text/event-stream"))),
        (status = 400, description = "Malformed body, unknown field, or bad `Idempotency-Key`", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "`no_persona`", body = ErrorBody),
        (status = 409, description = "`persona_not_ready`, or `request_in_progress` for this key", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "`invalid_fields`, `message_blocked` (`details.category`: the rule-based safety check refuses hate, threats and sexual content involving minors), or `idempotency_key_reused` with another message", body = ErrorBody),
        (status = 429, description = "`rate_limited` (30 a minute) or `daily_quota_exceeded` (200 a day)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn send_message(
    State(api): State<ChatApi>,
    user: AuthUser,
    key: IdempotencyKey,
    streaming: Option<Extension<Streaming>>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<SendMessage>,
) -> Result<Response, ApiError> {
    let streamed = streaming.is_some() && wants_event_stream(&headers);
    let request_id = request_context::current_request_id();
    let received = api
        .chat
        .begin(user.id, &request.content, key.value(), request_id.clone())
        .await?;
    let request_id = request_id.unwrap_or_default();
    Ok(match (received, streamed) {
        (Received::Replayed(exchange), false) => {
            let mut response =
                (StatusCode::CREATED, Json(exchange_view(&exchange))).into_response();
            response
                .headers_mut()
                .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            response
        }
        (Received::Replayed(exchange), true) => {
            let tokens = stream::iter([exchange.reply.content.clone()]);
            let mut response = event_stream(tokens, Box::pin(async { Ok(exchange) }), request_id);
            response
                .headers_mut()
                .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            response
        }
        (Received::Accepted(awaiting), false) => {
            let exchange = outcome(awaiting.spawn(None)).await?;
            (StatusCode::CREATED, Json(exchange_view(&exchange))).into_response()
        }
        (Received::Accepted(awaiting), true) => {
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
            // Spawned now: the token stream ends when the task drops its sender.
            let reply = awaiting.spawn(Some(sender));
            let tokens = stream::unfold(receiver, |mut receiver| async move {
                receiver.recv().await.map(|token| (token, receiver))
            });
            event_stream(tokens, Box::pin(outcome(reply)), request_id)
        }
    })
}

fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.to_ascii_lowercase().contains("text/event-stream"))
}

/// The exchange the reply task stored. The task runs on its own: a client that goes away
/// drops this future, not the task.
async fn outcome(reply: JoinHandle<Result<Exchange, ChatError>>) -> Result<Exchange, ApiError> {
    let outcome = match reply.await {
        Ok(outcome) => outcome.map_err(ApiError::from),
        Err(_) => Err(anyhow::anyhow!("the chat reply task panicked").into()),
    };
    // A streamed invocation ends here, after the response headers went out: write the reply's
    // metrics now rather than with the next invocation.
    platform::metrics::invocation_done();
    outcome
}

/// `token` events as `tokens` come, then `done` or `error` from `outcome`.
fn event_stream(
    tokens: impl Stream<Item = String> + Send + 'static,
    outcome: BoxFuture<'static, Result<Exchange, ApiError>>,
    request_id: String,
) -> Response {
    let span = tracing::Span::current();
    let last = async move {
        match outcome.await {
            Ok(exchange) => Event::default()
                .event("done")
                .json_data(exchange_view(&exchange)),
            Err(error) => Event::default()
                .event("error")
                .json_data(error_body(error, request_id)),
        }
        .unwrap_or_else(|_| Event::default().event("error"))
    }
    .instrument(span);
    let events = tokens
        .map(|text| {
            Event::default()
                .event("token")
                .json_data(TokenEvent { text })
                .unwrap_or_else(|_| Event::default().event("token"))
        })
        .chain(stream::once(last))
        .map(Ok::<_, Infallible>);
    let mut response = Sse::new(events).into_response();
    // Proxies (nginx) must pass the events on as they come.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The standard error body, for an error after the stream began (the status is already sent).
fn error_body(error: ApiError, request_id: String) -> ErrorBody {
    if let ApiError::Unexpected(cause) = &error {
        tracing::error!(
            error = platform::telemetry::describe(cause),
            "chat reply failed after the stream began"
        );
    }
    let problem = error.problem();
    ErrorBody {
        error: ErrorObject {
            code: problem.code.into_owned(),
            message: problem.message.into_owned(),
            details: problem.details,
            request_id,
        },
    }
}

/// The owner's chat history, newest first (across persona versions).
#[utoipa::path(
    get,
    path = "/v1/personas/me/messages",
    tag = "chat",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of messages", body = MessagePage),
        (status = 400, description = "`invalid_cursor`, `invalid_limit` or `invalid_query`", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    )
)]
pub async fn history(
    State(api): State<ChatApi>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let page = api
        .chat
        .history(user.id, query.cursor.as_deref(), query.limit)
        .await?;
    Ok(Json(MessagePage {
        items: page.items.iter().map(message_view).collect(),
        next_cursor: page.next_cursor,
    }))
}
