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
use devstack::{
    emulator::Emulator,
    postgres::TempPostgres,
    provision::{provision, LocalResources},
    stack::{create_database_from, function_config},
    template::Template,
};
use platform::{aws::AwsClients, Config};

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
    /// The configuration overrides the app was built with (workers must share its keys).
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
    let resources = provision(&template, &aws, &prefix)
        .await
        .expect("provisioning the template's resources");
    let mut overrides = options.overrides;
    overrides
        .entry("DATABASE_URL".into())
        .or_insert_with(|| database_url.clone());
    overrides
        .entry("GOOGLE_CLIENT_ID".into())
        .or_insert_with(|| GOOGLE_CLIENT_ID.into());
    devstack::stack::local_defaults(&mut overrides);
    overrides
        .entry("LLM_RETRY_BASE_MS".into())
        .or_insert_with(|| "10".into());
    let config = function_config(&template, HTTP_FUNCTION, &resources, &overrides)
        .expect("the template configures the HTTP function");
    let mut state = AppState::new(config, aws.clone()).expect("building the app state");
    if let Some(clock) = options.clock {
        state = state.with_clock(clock);
    }
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

/// The saga workers of a test app, polling its real queues like Lambda's event source mappings,
/// plus a fast sweeper. Stopped when dropped.
pub struct Workers {
    pub saga: saga::Saga,
    cancel: tokio_util::sync::CancellationToken,
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
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
    pub async fn dev_sign_in(&self, email: &str, name: &str) -> serde_json::Value {
        self.dev_sign_in_from(&self.http, email, name).await
    }

    pub async fn dev_sign_in_from(
        &self,
        client: &reqwest::Client,
        email: &str,
        name: &str,
    ) -> serde_json::Value {
        let response = client
            .post(self.url("/v1/auth/dev"))
            .json(&serde_json::json!({ "email": email, "name": name }))
            .send()
            .await
            .expect("sending the dev sign-in");
        assert_eq!(response.status(), 200, "dev sign-in failed");
        response.json().await.expect("a token response")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("sending the request")
    }

    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// The single integer `sql` selects from this app's database.
    pub async fn count(&self, sql: &str) -> i64 {
        self.state
            .db
            .get()
            .await
            .expect("a connection")
            .query_one(sql, &[])
            .await
            .expect("the count query")
            .get(0)
    }

    /// A saga configured like the template's worker functions (sharing this app's keys), with
    /// `extra` overrides.
    pub fn saga(&self, extra: &[(&str, &str)]) -> saga::Saga {
        let mut overrides = self.overrides.clone();
        for (name, value) in extra {
            overrides.insert((*name).to_owned(), (*value).to_owned());
        }
        let config = function_config(
            &self.template,
            "SynthesizeFunction",
            &self.resources,
            &overrides,
        )
        .expect("the template configures the worker functions");
        saga::Saga::new(config, self.aws.clone()).expect("building the saga")
    }

    /// Starts the workers for `saga` (see [`Workers`]).
    pub fn start_workers(&self, saga: saga::Saga) -> Workers {
        let cancel = tokio_util::sync::CancellationToken::new();
        let workers = devstack::stack::saga_workers(&saga);
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
        Workers { saga, cancel }
    }

    /// Signs in an owner, creates a survey and has `answers` different friends answer it.
    /// Returns (owner access token, owner id, survey id).
    pub async fn survey_with_answers(
        &self,
        owner_email: &str,
        answers: u8,
    ) -> (String, String, String) {
        let owner = self.dev_sign_in(owner_email, "Mira Kim").await;
        let token = owner["access_token"].as_str().expect("token").to_owned();
        let survey: serde_json::Value = self
            .http
            .post(self.url("/v1/surveys"))
            .bearer_auth(&token)
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("creating a survey")
            .json()
            .await
            .expect("a survey");
        let survey_id = survey["id"].as_str().expect("survey id").to_owned();
        for friend in 0..answers {
            self.answer(&survey_id, friend).await;
        }
        (
            token,
            owner["user"]["id"].as_str().expect("id").to_owned(),
            survey_id,
        )
    }

    /// Friend number `friend` (its own address and fingerprint) answers the survey.
    pub async fn answer(&self, survey_id: &str, friend: u8) {
        let response = self
            .client_from(100 + friend)
            .post(self.url(&format!("/v1/surveys/{survey_id}/responses")))
            .header("x-fingerprint", format!("friend-{friend}"))
            .json(&serde_json::json!({"answers": {
                "charisma_room": 1 + friend % 5, "charisma_story": 4, "intellect_curious": 5,
                "intellect_advice": 4, "kindness_notice": 5, "kindness_help": 4, "energy_plans": 2,
                "energy_late": 3, "first_impression": "warm_open", "in_a_crisis": "cheers_everyone",
                "three_words": "bright, loyal, funny",
            }}))
            .send()
            .await
            .expect("answering");
        assert_eq!(response.status(), 201, "friend {friend} could not answer");
    }

    /// Polls the status route until `state` (or panics after `within`); returns the status.
    pub async fn wait_for_state(
        &self,
        token: &str,
        state: &str,
        within: std::time::Duration,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let status: serde_json::Value = self
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

    /// The local URL, ARN and name of template resource `logical_id`.
    pub fn resource(&self, logical_id: &str) -> &devstack::template::LocalResource {
        &self.resources[logical_id]
    }
}

/// The path of a file in the repository.
pub fn repo_path(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}
