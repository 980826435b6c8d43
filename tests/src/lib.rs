//! The integration-test harness: real PostgreSQL and the AWS emulator, started once per test
//! process when `DATABASE_URL` / `AWS_ENDPOINT_URL` are not set, and for every test its own
//! database (cloned from a migrated template in ~60 ms) and its own queues, table and bucket
//! (created from `template.yaml` under a unique prefix), so tests run in parallel.
//!
//! Servers we start get a parent-death signal: when the test process exits they exit too.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Mutex, OnceLock},
};

pub mod google;

use api::AppState;
use api::HttpApiConfig;
use devstack::{
    emulator::Emulator,
    postgres::TempPostgres,
    provision::{provision, LocalResources},
    stack::{create_database_from, function_config},
    template::Template,
};
use platform::aws::AwsClients;
use serde_json::{json, Value};

/// The Google client id the test app is configured with.
pub const GOOGLE_CLIENT_ID: &str = "test-client.apps.googleusercontent.com";

/// The template's HTTP function, whose environment the app is configured from.
pub const HTTP_FUNCTION: &str = "HttpApiFunction";

struct SharedServices {
    /// Admin URL of the PostgreSQL server (any database; we only swap the name).
    admin_url: String,
    /// Migrated database every test database is cloned from.
    template_database: String,
    /// `None` when `AWS_ENDPOINT_URL` is set (then the default chain is used).
    emulator_endpoint: Option<String>,
}

fn shared() -> &'static SharedServices {
    static SHARED: OnceLock<SharedServices> = OnceLock::new();
    SHARED.get_or_init(|| {
        // Started on a plain thread with its own runtime: we may be inside a test's runtime.
        std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building the harness runtime");
            runtime
                .block_on(start_shared())
                .expect("starting test services")
        })
        .join()
        .expect("the harness thread panicked")
    })
}

/// Every log line written by this test process, in the JSON format Lambda ships to CloudWatch.
/// Tests search it for things that must never be logged.
pub fn captured_logs() -> String {
    shared();
    let logs = LOGS.lock().unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&logs).into_owned()
}

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Appends log lines to [`LOGS`]; echoed to stdout when `TEST_LOG` is set.
struct CaptureWriter;

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if std::env::var_os("TEST_LOG").is_some() {
            std::io::stdout().write_all(buf)?;
        }
        LOGS.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn start_shared() -> anyhow::Result<SharedServices> {
    platform::telemetry::init_with_writer(|| CaptureWriter);
    let admin_url = match std::env::var("DATABASE_URL").ok().filter(|v| !v.is_empty()) {
        Some(url) => url,
        None => {
            // Kept for the life of the process; the parent-death signal stops it.
            let postgres = Box::leak(Box::new(TempPostgres::start()?));
            postgres.admin_url.clone()
        }
    };
    let emulator_endpoint = if std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty()) {
        None
    } else {
        let emulator = Box::leak(Box::new(Emulator::start()?));
        Some(emulator.endpoint.clone())
    };
    let template_database = format!("template_{}", std::process::id());
    create_database_from(&admin_url, &template_database, None).await?;
    platform::db::migrate(&with_database(&admin_url, &template_database)).await?;
    Ok(SharedServices {
        admin_url,
        template_database,
        emulator_endpoint,
    })
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// AWS clients for the emulator (or the default chain when `AWS_ENDPOINT_URL` is set).
pub async fn aws_clients() -> AwsClients {
    match &shared().emulator_endpoint {
        Some(endpoint) => AwsClients::new(&AwsClients::emulator_config(endpoint)),
        None => AwsClients::from_env().await,
    }
}

/// A fresh, migrated database of its own; returns its URL.
pub async fn fresh_database() -> String {
    let services = shared();
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    create_database_from(
        &services.admin_url,
        &name,
        Some(&services.template_database),
    )
    .await
    .expect("cloning the template database");
    with_database(&services.admin_url, &name)
}

/// A fresh, empty database of its own (no migration applied); returns its URL.
pub async fn empty_database() -> String {
    let services = shared();
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    create_database_from(&services.admin_url, &name, None)
        .await
        .expect("creating an empty database");
    with_database(&services.admin_url, &name)
}

/// Everything a test needs: its own database and AWS resources, and the router served on a
/// loopback port.
pub struct TestApp {
    pub address: SocketAddr,
    pub http: reqwest::Client,
    pub state: AppState,
    pub aws: AwsClients,
    pub resources: LocalResources,
    pub database_url: String,
    pub template: Template,
    /// The configuration overrides the app was built with, without the secrets (those are in
    /// the emulator's Secrets Manager, where every function reads its own).
    pub overrides: BTreeMap<String, String>,
}

/// Builder for [`TestApp`], for tests that need to adjust the configuration.
#[derive(Default)]
pub struct TestAppOptions {
    pub overrides: BTreeMap<String, String>,
    /// Serve this router instead of the local stack's (which adds the dev sign-in route).
    pub router: Option<fn(AppState) -> axum::Router>,
    /// A clock the test moves.
    pub clock: Option<std::sync::Arc<dyn platform::clock::Clock>>,
}

/// Spawns the app with the template's configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestAppOptions::default()).await
}

pub async fn spawn_app_with(options: TestAppOptions) -> TestApp {
    let database_url = fresh_database().await;
    let aws = aws_clients().await;
    let template = Template::parse(devstack::TEMPLATE).expect("template.yaml parses");
    let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut resources = provision(&template, &aws, &prefix)
        .await
        .expect("provisioning the template's resources");
    let mut overrides = options.overrides;
    overrides
        .entry("DATABASE_URL".into())
        .or_insert_with(|| database_url.clone());
    overrides
        .entry("GOOGLE_CLIENT_ID".into())
        .or_insert_with(|| GOOGLE_CLIENT_ID.into());
    let secrets = devstack::stack::local_defaults(&mut overrides);
    devstack::provision::provision_secrets(&aws, &prefix, &secrets, &mut resources)
        .await
        .expect("storing the secrets in the emulator");
    overrides
        .entry("LLM_RETRY_BASE_MS".into())
        .or_insert_with(|| "10".into());
    let config = function_config(&template, HTTP_FUNCTION, &resources, &overrides, &aws)
        .await
        .expect("the template configures the HTTP function");
    let clock = options.clock.unwrap_or_else(platform::clock::system);
    let state = AppState::with_clock(config, aws.clone(), clock).expect("building the app state");
    let router = match options.router {
        Some(build) => build(state.clone()),
        None => api::local_router(state.clone(), |_| None).expect("building the local router"),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serving the router");
    });
    TestApp {
        address,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("building the HTTP client"),
        state,
        aws,
        resources,
        database_url,
        template,
        overrides,
    }
}

/// The saga and chat memory workers of a test app, polling its real queues like Lambda's event
/// source mappings, plus a fast sweeper. Stopped when dropped.
pub struct Workers {
    pub saga: saga::Saga,
    pub memory: chat::memory::MemoryWorker,
    cancel: tokio_util::sync::CancellationToken,
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A signed-in survey owner.
#[derive(Debug, Clone)]
pub struct Owner {
    pub token: String,
    pub id: String,
}

/// The fixture answers of friend number `friend` (see `domain::surveys::sample_answers`).
pub fn answers(friend: u32) -> Value {
    let bank = domain::surveys::question_bank(domain::surveys::CURRENT_VERSION)
        .expect("the current question bank");
    domain::surveys::sample_answers(bank, friend)
}

/// The fixture answers with `words` as the three words.
pub fn answers_with_words(words: &str) -> Value {
    let mut answers = answers(3);
    answers["three_words"] = json!(words);
    answers
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// A client whose requests come from `127.0.0.<last>`, for tests that need several network
    /// addresses (rate limits are per address).
    pub fn client_from(&self, last: u8) -> reqwest::Client {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, last]))
            .build()
            .expect("building a client")
    }

    /// Signs in through the local-only dev route; returns the token response.
    pub async fn dev_sign_in(&self, email: &str, name: &str) -> Value {
        self.dev_sign_in_from(&self.http, email, name).await
    }

    pub async fn dev_sign_in_from(
        &self,
        client: &reqwest::Client,
        email: &str,
        name: &str,
    ) -> Value {
        let response = client
            .post(self.url("/v1/auth/dev"))
            .json(&json!({ "email": email, "name": name }))
            .send()
            .await
            .expect("sending the dev sign-in");
        assert_eq!(response.status(), 200, "dev sign-in failed");
        response.json().await.expect("a token response")
    }

    /// Journey: an owner (named Mira Kim) signs in.
    pub async fn owner(&self, email: &str) -> Owner {
        let signed_in = self.dev_sign_in(email, "Mira Kim").await;
        Owner {
            token: signed_in["access_token"]
                .as_str()
                .expect("token")
                .to_owned(),
            id: signed_in["user"]["id"].as_str().expect("id").to_owned(),
        }
    }

    /// `POST /v1/surveys` as `owner` with `body`.
    pub async fn create_survey(&self, owner: &Owner, body: Value) -> reqwest::Response {
        self.http
            .post(self.url("/v1/surveys"))
            .bearer_auth(&owner.token)
            .json(&body)
            .send()
            .await
            .expect("creating a survey")
    }

    /// Journey: the owner creates a survey; returns its id.
    pub async fn survey(&self, owner: &Owner) -> String {
        let response = self
            .create_survey(owner, json!({"title": "Who am I to you?"}))
            .await;
        assert_eq!(response.status(), 201, "creating a survey");
        let survey: Value = response.json().await.expect("a survey");
        survey["id"].as_str().expect("survey id").to_owned()
    }

    /// `POST /v1/surveys/{id}/responses` from `client` with `body` and an optional fingerprint.
    pub async fn submit(
        &self,
        client: &reqwest::Client,
        survey_id: &str,
        body: Value,
        fingerprint: Option<&str>,
    ) -> reqwest::Response {
        let mut request = client
            .post(self.url(&format!("/v1/surveys/{survey_id}/responses")))
            .json(&body);
        if let Some(fingerprint) = fingerprint {
            request = request.header("x-fingerprint", fingerprint);
        }
        request.send().await.expect("submitting answers")
    }

    /// Journey: friend number `friend` (its own address and fingerprint) answers the survey.
    pub async fn answer(&self, survey_id: &str, friend: u8) {
        let response = self
            .submit(
                &self.client_from(100 + friend),
                survey_id,
                json!({ "answers": answers(u32::from(friend)) }),
                Some(&format!("friend-{friend}")),
            )
            .await;
        assert_eq!(response.status(), 201, "friend {friend} could not answer");
    }

    /// Journey: an owner signs in, creates a survey and `answers` different friends answer it.
    /// Returns (owner access token, owner id, survey id).
    pub async fn survey_with_answers(
        &self,
        owner_email: &str,
        answers: u8,
    ) -> (String, String, String) {
        let owner = self.owner(owner_email).await;
        let survey_id = self.survey(&owner).await;
        for friend in 0..answers {
            self.answer(&survey_id, friend).await;
        }
        (owner.token, owner.id, survey_id)
    }

    /// Journey: an owner whose persona is ready (three friends answered and the saga ran).
    /// The workers must be running (see [`TestApp::start_workers`]).
    pub async fn owner_with_ready_persona(&self, owner_email: &str) -> Owner {
        let (token, id, _) = self.survey_with_answers(owner_email, 3).await;
        self.wait_for_state(&token, "ready", std::time::Duration::from_secs(60))
            .await;
        Owner { token, id }
    }

    /// `PATCH /v1/personas/me {is_public}` as `owner`; returns the persona.
    pub async fn set_public(&self, owner: &Owner, is_public: bool) -> Value {
        let response = self
            .http
            .patch(self.url("/v1/personas/me"))
            .bearer_auth(&owner.token)
            .json(&json!({ "is_public": is_public }))
            .send()
            .await
            .expect("sending the visibility change");
        assert_eq!(response.status(), 200, "changing the visibility");
        response.json().await.expect("a persona")
    }

    /// Journey: the owner publishes their persona (every version); returns the persona.
    pub async fn publish(&self, owner: &Owner) -> Value {
        self.set_public(owner, true).await
    }

    /// Journey: the owner unpublishes their persona (every version at once).
    pub async fn unpublish(&self, owner: &Owner) -> Value {
        self.set_public(owner, false).await
    }

    /// The owner's persona (`GET /v1/personas/me`), which must exist.
    pub async fn persona(&self, owner: &Owner) -> Value {
        let response = self.get_as(owner, "/v1/personas/me").await;
        assert_eq!(response.status(), 200, "reading the persona");
        response.json().await.expect("a persona")
    }

    /// Journey: three more friends (numbers 3 to 5) answer the owner's survey, the owner asks
    /// for a new version and it becomes ready. The workers must be running. Returns the new
    /// persona.
    pub async fn next_persona_version(&self, owner: &Owner) -> Value {
        let before = self.persona(owner).await["version"]
            .as_i64()
            .expect("a version");
        let surveys: Value = self
            .get_as(owner, "/v1/surveys/mine")
            .await
            .json()
            .await
            .expect("the surveys");
        let survey_id = surveys["items"][0]["id"].as_str().expect("a survey id");
        for friend in 3..6 {
            self.answer(survey_id, friend).await;
        }
        let response = self
            .post_as(owner, "/v1/personas/me/synthesize", json!({}))
            .await;
        assert_eq!(response.status(), 202, "asking for a new version");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let status = self
                .wait_for_state(&owner.token, "ready", std::time::Duration::from_secs(60))
                .await;
            if status["version"].as_i64() > Some(before) {
                return self.persona(owner).await;
            }
            assert!(std::time::Instant::now() < deadline, "no new version");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Sets the name, greeting and traits of every version of the owner's persona to `text`,
    /// straight in the database, as a hostile model output could (for escaping tests).
    pub async fn set_persona_text(&self, owner: &Owner, text: &str) {
        let owner_id: uuid::Uuid = owner.id.parse().expect("a user id");
        self.state
            .db
            .get()
            .await
            .expect("a connection")
            .execute(
                "UPDATE personas SET name = $2, greeting = $2, traits = jsonb_build_array($2::text) WHERE owner_id = $1",
                &[&owner_id, &text],
            )
            .await
            .expect("setting the persona's text");
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("sending the request")
    }

    /// Journey, in bulk: `n` owners whose surveys hold three sealed fixture answers and a queued
    /// persona job, exactly as the third answer leaves them (written straight to the database, so
    /// hundreds are quick), with their synthesize messages published. Returns the persona ids.
    pub async fn seed_queued_personas(&self, n: usize) -> Vec<uuid::Uuid> {
        let three: Vec<Value> = (0..3).map(answers).collect();
        self.seed_queued_personas_answered(n, &three).await
    }

    /// [`TestApp::seed_queued_personas`] with `submitted` as every survey's answers (each must
    /// be valid for the current question bank).
    pub async fn seed_queued_personas_answered(
        &self,
        n: usize,
        submitted: &[Value],
    ) -> Vec<uuid::Uuid> {
        let seeded = devstack::seed::queued_personas(
            &self.state.db,
            &self.state.surveys.cipher,
            submitted,
            n,
        )
        .await
        .expect("seeding queued personas");
        let outbox: Vec<uuid::Uuid> = seeded.iter().map(|s| s.outbox_id).collect();
        self.state
            .personas
            .publisher
            .publish(&self.state.db, &outbox)
            .await;
        seeded.iter().map(|s| s.persona_id).collect()
    }

    /// `POST path` with a JSON `body`, signed out.
    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("sending the request")
    }

    /// `GET path` as `owner`.
    pub async fn get_as(&self, owner: &Owner, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(&owner.token)
            .send()
            .await
            .expect("sending the request")
    }

    /// `POST path` with a JSON `body` as `owner`.
    pub async fn post_as(&self, owner: &Owner, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(&owner.token)
            .json(&body)
            .send()
            .await
            .expect("sending the request")
    }

    /// Journey: the user opens the quest board (`GET /v1/quests`); returns its quests by id.
    pub async fn quests(&self, owner: &Owner) -> BTreeMap<String, Value> {
        let response = self.get_as(owner, "/v1/quests").await;
        assert_eq!(response.status(), 200, "reading the quest board");
        let board: Value = response.json().await.expect("a quest board");
        board["quests"]
            .as_array()
            .expect("quests")
            .iter()
            .map(|quest| {
                (
                    quest["id"].as_str().expect("an id").to_owned(),
                    quest.clone(),
                )
            })
            .collect()
    }

    /// Journey: the user claims quest `quest_id` (`POST /v1/quests/{id}/claim`).
    pub async fn claim(&self, owner: &Owner, quest_id: &str) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/v1/quests/{quest_id}/claim")))
            .bearer_auth(&owner.token)
            .send()
            .await
            .expect("claiming a quest")
    }

    /// Journey: the user checks in for the day (`POST /v1/rewards/daily`).
    pub async fn check_in(&self, owner: &Owner) -> reqwest::Response {
        self.http
            .post(self.url("/v1/rewards/daily"))
            .bearer_auth(&owner.token)
            .send()
            .await
            .expect("checking in")
    }

    /// The user's crystal balance as `GET /v1/me` shows it.
    pub async fn balance(&self, owner: &Owner) -> i64 {
        let me: Value = self
            .get_as(owner, "/v1/me")
            .await
            .json()
            .await
            .expect("a profile");
        me["crystal_balance"].as_i64().expect("a balance")
    }

    pub fn config(&self) -> &HttpApiConfig {
        &self.state.config
    }

    /// The single integer `sql` selects from this app's database.
    pub async fn count(&self, sql: &str) -> i64 {
        self.scalar(sql).await
    }

    /// The single text `sql` selects from this app's database.
    pub async fn text(&self, sql: &str) -> String {
        self.scalar(sql).await
    }

    /// Runs one statement on this app's database (a test moving time or state by hand); the
    /// rows it changed.
    pub async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> u64 {
        self.state
            .db
            .get()
            .await
            .expect("a connection")
            .execute(sql, params)
            .await
            .expect("the statement")
    }

    async fn scalar<T: tokio_postgres::types::FromSqlOwned>(&self, sql: &str) -> T {
        self.state
            .db
            .get()
            .await
            .expect("a connection")
            .query_one(sql, &[])
            .await
            .expect("the query")
            .get(0)
    }

    /// The three saga functions, each configured as the template configures it (sharing this
    /// app's keys), with `extra` overrides.
    pub async fn saga(&self, extra: &[(&str, &str)]) -> saga::Saga {
        let mut overrides = self.overrides.clone();
        for (name, value) in extra {
            overrides.insert((*name).to_owned(), (*value).to_owned());
        }
        devstack::stack::local_saga(&self.template, &self.resources, &overrides, &self.aws)
            .await
            .expect("the template configures the saga functions")
    }

    /// The chat memory function, configured as the template configures it (sharing this app's
    /// keys), with `extra` overrides.
    pub async fn chat_memory(&self, extra: &[(&str, &str)]) -> chat::memory::MemoryWorker {
        let mut overrides = self.overrides.clone();
        for (name, value) in extra {
            overrides.insert((*name).to_owned(), (*value).to_owned());
        }
        devstack::stack::local_chat_memory(&self.template, &self.resources, &overrides, &self.aws)
            .await
            .expect("the template configures the chat memory function")
    }

    /// The export and erase functions, configured as the template configures them (sharing
    /// this app's keys), with `extra` overrides.
    pub async fn account(
        &self,
        extra: &[(&str, &str)],
    ) -> (account::ExportWorker, account::EraseWorker) {
        let mut overrides = self.overrides.clone();
        for (name, value) in extra {
            overrides.insert((*name).to_owned(), (*value).to_owned());
        }
        devstack::stack::local_account(&self.template, &self.resources, &overrides, &self.aws)
            .await
            .expect("the template configures the export and erase functions")
    }

    /// Journey: the saga soak (`devstack::soak`) over this app's queues: `messages` distinct
    /// saga messages, each delivered one to three times, shuffled, with crashes injected at every
    /// boundary; returns the census.
    pub async fn soak(&self, messages: usize) -> devstack::soak::SoakReport {
        devstack::soak::run(
            &self.template,
            &self.resources,
            &self.aws,
            self.saga(&[]).await,
            devstack::stack::local_other_workers(
                &self.template,
                &self.resources,
                &self.overrides,
                &self.aws,
            )
            .await
            .expect("the other workers"),
            devstack::soak::SoakOptions {
                messages,
                seed: 14,
                timeout: std::time::Duration::from_secs(240),
            },
        )
        .await
        .expect("running the soak")
    }

    /// Starts the workers for `saga`, and the chat memory, export and erase workers as this app
    /// is configured (the erase's grace period shortened to a second; see [`Workers`]).
    pub async fn start_workers(&self, saga: saga::Saga) -> Workers {
        self.start_workers_with(saga, self.chat_memory(&[]).await)
            .await
    }

    /// [`TestApp::start_workers`] with a chat memory worker of the test's own.
    pub async fn start_workers_with(
        &self,
        saga: saga::Saga,
        memory: chat::memory::MemoryWorker,
    ) -> Workers {
        let cancel = tokio_util::sync::CancellationToken::new();
        let mut workers = devstack::stack::saga_workers(&saga);
        workers.extend(devstack::stack::chat_workers(&memory));
        let (export, erase) = self.account(&[("ERASE_GRACE_SECS", "1")]).await;
        workers.extend(devstack::stack::account_workers(&export, &erase));
        for poller in
            devstack::stack::pollers(&self.template, &self.resources, &workers).expect("pollers")
        {
            tokio::spawn(poller.run(self.aws.sqs.clone(), cancel.clone()));
        }
        tokio::spawn(devstack::stack::sweeper_loop(
            saga.clone(),
            saga::sweeper::SweepSettings {
                outbox_after: std::time::Duration::from_millis(300),
                stuck_after: std::time::Duration::from_secs(20),
            },
            std::time::Duration::from_millis(300),
            cancel.clone(),
        ));
        Workers {
            saga,
            memory,
            cancel,
        }
    }

    /// Polls the status route until `state` (or panics after `within`); returns the status.
    pub async fn wait_for_state(
        &self,
        token: &str,
        state: &str,
        within: std::time::Duration,
    ) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let status: Value = self
                .http
                .get(self.url("/v1/personas/me/status"))
                .bearer_auth(token)
                .send()
                .await
                .expect("polling")
                .json()
                .await
                .expect("a status");
            if status["state"] == state {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never reached {state}: {status}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Journey: an owner whose persona of `archetype` is ready, written straight to the
    /// database as the saga leaves it (rule-based text, a card), so chat tests pick the voice
    /// and need no workers.
    pub async fn owner_with_persona(
        &self,
        owner_email: &str,
        archetype: domain::archetypes::Archetype,
    ) -> Owner {
        let owner = self.owner(owner_email).await;
        let owner_id: uuid::Uuid = owner.id.parse().expect("a user id");
        let bank = domain::surveys::question_bank(domain::surveys::CURRENT_VERSION)
            .expect("the current question bank");
        let mut brief = domain::synthesis::aggregate(bank, "Mira", &[]);
        brief.leading_archetype = archetype;
        let text = domain::synthesis::rule_based(&brief);
        let (survey, persona) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let client = self.state.db.get().await.expect("a connection");
        client
            .execute(
                "INSERT INTO surveys (id, owner_id, title, question_bank_version, status, response_count, created_at, expires_at)
                 VALUES ($1, $2, 't', 1, 'collecting', 3, now(), now() + interval '30 days')",
                &[&survey, &owner_id],
            )
            .await
            .expect("seeding a survey");
        let archetype_name = serde_json::to_value(archetype).expect("an archetype");
        let cards = json!([{"size": "square", "key": format!("cards/{persona}/seed.png"), "width": 1080, "height": 1080}]);
        client
            .execute(
                "INSERT INTO personas (id, owner_id, survey_id, version, state, state_version, response_count,
                     name, archetype, traits, greeting, charisma, intellect, kindness, energy,
                     synthesized_by, cards)
                 VALUES ($1, $2, $3, 1, 'ready', 4, 3, $4, $5, $6, $7, 50, 50, 50, 50, 'rule_based', $8)",
                &[
                    &persona,
                    &owner_id,
                    &survey,
                    &text.name,
                    &archetype_name.as_str().expect("a name"),
                    &json!(text.traits),
                    &text.greeting,
                    &cards,
                ],
            )
            .await
            .expect("seeding a ready persona");
        owner
    }

    /// `POST /v1/personas/me/messages` as `owner` with `content`, as JSON.
    pub async fn send_message(&self, owner: &Owner, content: &str) -> reqwest::Response {
        self.send_message_with(owner, content, &[]).await
    }

    /// [`TestApp::send_message`] with extra `headers` (`accept`, `idempotency-key`).
    pub async fn send_message_with(
        &self,
        owner: &Owner,
        content: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(self.url("/v1/personas/me/messages"))
            .bearer_auth(&owner.token)
            .json(&json!({ "content": content }));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("sending a message")
    }

    /// Journey: the owner says `content` to their persona; returns the exchange.
    pub async fn chat(&self, owner: &Owner, content: &str) -> Value {
        let response = self.send_message(owner, content).await;
        assert_eq!(response.status(), 201, "chatting failed");
        response.json().await.expect("an exchange")
    }

    /// Journey: the owner says `content` with `Accept: text/event-stream`; returns every event
    /// as (name, data) in the order it arrived.
    pub async fn chat_stream(&self, owner: &Owner, content: &str) -> Vec<(String, Value)> {
        let mut response = self
            .send_message_with(owner, content, &[("accept", "text/event-stream")])
            .await;
        assert_eq!(response.status(), 200, "streaming failed");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.expect("reading the stream") {
            bytes.extend_from_slice(&chunk);
        }
        server_sent_events(&String::from_utf8(bytes).expect("UTF-8 events"))
    }

    /// Every message waiting on queue `logical_id`, read without deleting (each is visible
    /// again at once).
    pub async fn queue_messages(&self, logical_id: &str) -> Vec<aws_sdk_sqs::types::Message> {
        peek_queue(&self.aws.sqs, &self.resource(logical_id).reference).await
    }

    /// A `pg_dump` of this app's database, for tests that search it.
    pub async fn database_dump(&self) -> String {
        let pg_dump = devstack::postgres::binary("pg_dump").expect("pg_dump");
        let dump = std::process::Command::new(pg_dump)
            .arg("--dbname")
            .arg(&self.database_url)
            .output()
            .expect("running pg_dump");
        assert!(
            dump.status.success(),
            "{}",
            String::from_utf8_lossy(&dump.stderr)
        );
        String::from_utf8_lossy(&dump.stdout).into_owned()
    }

    /// Every item of this app's DynamoDB tables (the main one and the anonymity one), printed,
    /// for tests that search them.
    pub async fn table_dump(&self) -> String {
        let mut dump = String::new();
        for table in [
            &self.config().table_name,
            &self.config().anonymity_table_name,
        ] {
            let items = self
                .aws
                .dynamodb
                .scan()
                .table_name(table)
                .send()
                .await
                .expect("scanning a table")
                .items
                .unwrap_or_default();
            dump.push_str(&format!("{items:?}\n"));
        }
        dump
    }

    /// Every object key in the private bucket.
    pub async fn bucket_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .aws
                .s3
                .list_objects_v2()
                .bucket(&self.config().cards_bucket)
                .set_continuation_token(token)
                .send()
                .await
                .expect("listing the bucket");
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                return keys;
            }
        }
    }

    /// Where any of `needles` still appears: the database, the bucket's keys, the table.
    pub async fn residue(&self, needles: &[String]) -> Vec<String> {
        let database = self.database_dump().await;
        let keys = self.bucket_keys().await.join("\n");
        let table = self.table_dump().await;
        let mut found = Vec::new();
        for needle in needles {
            for (place, text) in [
                ("PostgreSQL", &database),
                ("S3", &keys),
                ("DynamoDB", &table),
            ] {
                if text.contains(needle.as_str()) {
                    found.push(format!("{needle} in {place}"));
                }
            }
        }
        found
    }

    /// Journey: the owner asks for an export and waits until it is ready (the workers must be
    /// running); returns the downloaded document.
    pub async fn export_of(&self, owner: &Owner) -> Value {
        let response = self.post_as(owner, "/v1/me/exports", json!({})).await;
        assert_eq!(response.status(), 202, "asking for an export");
        let location = response.headers()["location"]
            .to_str()
            .expect("a location")
            .to_owned();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let export: Value = self
                .get_as(owner, &location)
                .await
                .json()
                .await
                .expect("an export");
            if export["state"] == "ready" {
                let url = export["download_url"].as_str().expect("a download link");
                let document = reqwest::get(url).await.expect("downloading the export");
                assert_eq!(document.status(), 200, "the download link works");
                return document.json().await.expect("a JSON document");
            }
            assert_eq!(export["state"], "pending", "{export}");
            assert!(
                std::time::Instant::now() < deadline,
                "the export never got ready"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Journey: someone at `127.0.0.<last>` opens a share link (`share_url` of a recorded share,
    /// on the frontend's domain, which serves `/p/*` from this API); the page must render.
    pub async fn open_share_link(&self, share_url: &str, last: u8) {
        let path = share_url
            .strip_prefix(&self.config().web.frontend_url)
            .expect("a link on the frontend's domain");
        let page = self
            .client_from(last)
            .get(self.url(path))
            .send()
            .await
            .expect("opening a share link");
        assert_eq!(page.status(), 200, "the share page");
    }

    /// Journey: the owner deletes their account; returns the response.
    pub async fn erase(&self, owner: &Owner) -> reqwest::Response {
        self.http
            .delete(self.url("/v1/me"))
            .bearer_auth(&owner.token)
            .send()
            .await
            .expect("sending the erase")
    }

    /// Waits until no erasure is in progress (the workers must be running).
    pub async fn wait_for_erasures(&self, within: std::time::Duration) {
        let deadline = std::time::Instant::now() + within;
        while self.count("SELECT count(*) FROM account_erasures").await > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the erase never finished"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The local URL, ARN and name of template resource `logical_id`.
    pub fn resource(&self, logical_id: &str) -> &devstack::template::LocalResource {
        &self.resources[logical_id]
    }
}

/// Every message waiting on `queue_url`, read without deleting (each is visible again at
/// once), with its attributes.
pub async fn peek_queue(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
) -> Vec<aws_sdk_sqs::types::Message> {
    devstack::poller::peek(sqs, queue_url)
        .await
        .expect("reading a queue")
}

/// Parses a Server-Sent Events body into (event name, JSON data) pairs.
pub fn server_sent_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut name = String::from("message");
            let mut data = String::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.strip_prefix(' ').unwrap_or(value));
                }
            }
            (name, serde_json::from_str(&data).expect("JSON event data"))
        })
        .collect()
}

/// The path of a file in the repository.
pub fn repo_path(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}
