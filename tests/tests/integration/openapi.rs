//! The OpenAPI document: valid OpenAPI 3.1 (checked by `openapi-spec-validator`, the reference
//! validator), and every operation it lists is served by the router.

use integration_tests::{repo_path, spawn_app, spawn_app_with, TestAppOptions};
use serde_json::Value;

#[tokio::test]
async fn the_document_is_valid_openapi_3_1() {
    let app = spawn_app().await;
    let document = app.get("/v1/openapi.json").await.text().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &document).unwrap();
    let output = devstack::python::Tool::OpenApiSpecValidator
        .python()
        .unwrap()
        .args(["-m", "openapi_spec_validator", "--schema", "3.1.0"])
        .arg(&file)
        .output()
        .unwrap();

    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let document: Value = serde_json::from_str(&document).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = spawn_app().await;
    let document: Value = app.get("/v1/openapi.json").await.json().await.unwrap();
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 3);

    for (path, operations) in paths {
        for method in operations.as_object().unwrap().keys() {
            let concrete = path.replace(['{', '}'], "");
            let response = app
                .http
                .request(method.to_uppercase().parse().unwrap(), app.url(&concrete))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let unrouted = (status == 404 && body["error"]["message"] == "There is no such route.")
                || status == 405;
            assert!(
                !unrouted,
                "{method} {path} is documented but not served ({status})"
            );
        }
    }
}

#[test]
fn the_document_lists_the_foundation_routes_with_error_responses() {
    let document = serde_json::to_value(api::openapi_document()).unwrap();

    for path in ["/v1/health", "/v1/health/ready", "/v1/openapi.json"] {
        assert!(document["paths"][path]["get"].is_object(), "{path} missing");
    }
    assert_eq!(
        document["paths"]["/v1/health/ready"]["get"]["responses"]["503"]["content"]
            ["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
}

/// How schemathesis runs against the test app (`{…}` are filled in by the test). Every check
/// runs, in every phase, except where a comment says why.
const SCHEMATHESIS_CONFIG: &str = r#"
base-url = "{base_url}"
hooks = "{hooks}"
seed = 4242
# Failures are listed once; a failing case is not shrunk for minutes.
max-failures = 20

[generation]
max-examples = {max_examples}
database = "none"
no-shrink = true

# The owner signs in through the document's `bearer` scheme, so checks that leave it out (401
# expected) know what they leave out.
[auth.openapi.bearer]
bearer = "{token}"

[checks]
# The API's one DELETE closes a survey, which stays readable with its answers (SPEC: "DELETE
# /v1/surveys/{id} closes it"); nothing is ever deleted, so "gone after DELETE" does not apply.
use_after_free.enabled = false

# Real ids next to generated ones, so the happy paths run too: the two owners' public personas,
# their surveys, and the quest catalog.
[dictionaries.personas]
values = [{personas}]
[dictionaries.surveys]
values = [{surveys}]
[dictionaries.quests]
values = [{quests}]
[dictionaries.other_personas]
values = ["{other_persona}"]
[dictionaries.answerable]
values = ["{other_survey}"]

[[operations]]
include-path-regex = "^/(v1/personas/\\{id\\}/public|p/\\{id\\}|p/\\{id\\}/card\\.png)$"
parameters = { "path.id" = { dictionary = "personas", probability = 0.5 } }

# Not DELETE: closing the surveys would leave only the 410 path to test.
[[operations]]
include-path-regex = "^/v1/surveys/\\{id\\}/(progress|public)$"
parameters = { "path.id" = { dictionary = "surveys", probability = 0.5 } }
# 410: the survey was closed (a DELETE in this run) or expired, whatever was sent; like 404,
# that is state, not a shape a schema could forbid or require.
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "410", "429"]
checks.negative_data_rejection.expected-statuses = ["400", "401", "403", "404", "409", "410", "415", "422", "429"]

# Answers go to the other owner's survey: the signed-in owner's own answers 403 before the
# answers are read, so only another's survey checks the answer shapes (validated before the
# duplicate check and the rate limit, which make 409 and 429 state, not shape).
[[operations]]
include-path = "/v1/surveys/{id}/responses"
parameters = { "path.id" = { dictionary = "answerable", probability = 0.9 } }
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "410", "429"]
checks.negative_data_rejection.expected-statuses = ["400", "401", "403", "404", "409", "410", "415", "422", "429"]

# Readiness answers 503 when a dependency is slow or down: its documented purpose, and on a busy
# machine the emulator can miss the probe's short timeout. Every other route must never 5xx.
[[operations]]
include-path = "/v1/health/ready"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]

[[operations]]
include-path = "/v1/quests/{id}/claim"
parameters = { "path.id" = { dictionary = "quests", probability = 0.5 } }

[[operations]]
include-path = "/v1/social/compatibility"
parameters = { "query.persona_id" = { dictionary = "other_personas", probability = 0.5 } }
# 422 here is only `own_persona`: the id is one of the caller's own persona versions (learnt from
# GET /v1/personas/me), which depends on who asks, not on the request's shape.
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]
# For the same reason schemathesis warns of a "validation mismatch" here: its stateful phase feeds
# the caller's own id from GET /v1/personas/me, and gets 422s only. (Schemathesis 4.32 applies
# only the project's `warnings` setting, not an operation's, so the warning cannot be muted here.)
"#;

/// Schemathesis (property-based API testing from the document) against the real router with a
/// signed-in owner whose persona is ready: schema-valid requests must be accepted, invalid ones
/// refused, every status, header and body must be the documented one, and nothing may answer
/// 5xx. The example count keeps the run near a minute on two cores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_the_api_true_to_its_document() {
    let python = devstack::python::Tool::Schemathesis.python().unwrap();
    let app = spawn_app().await;
    let _workers = app.start_workers(app.saga(&[]).await).await;
    let owner = app.owner_with_ready_persona("contract@example.com").await;
    let other = app
        .owner_with_ready_persona("contract-friend@example.com")
        .await;
    let mut personas = Vec::new();
    let mut surveys = Vec::new();
    for someone in [&owner, &other] {
        personas.push(app.publish(someone).await["id"].to_string());
        let mine: Value = app
            .get_as(someone, "/v1/surveys/mine")
            .await
            .json()
            .await
            .unwrap();
        surveys.push(mine["items"][0]["id"].to_string());
    }
    let quests: Vec<String> = domain::quests::CATALOG
        .iter()
        .map(|quest| format!("{:?}", quest.id))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let config = SCHEMATHESIS_CONFIG
        .replace("{base_url}", &app.url(""))
        .replace(
            "{hooks}",
            repo_path("tests/schemathesis/hooks.py").to_str().unwrap(),
        )
        .replace(
            "{max_examples}",
            &std::env::var("SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "10".into()),
        )
        .replace("{token}", &owner.token)
        .replace("{personas}", &personas.join(", "))
        .replace("{surveys}", &surveys.join(", "))
        .replace("{quests}", &quests.join(", "))
        .replace("{other_persona}", personas[1].trim_matches('"'))
        .replace("{other_survey}", surveys[1].trim_matches('"'));
    std::fs::write(dir.path().join("schemathesis.toml"), config).unwrap();

    let mut command = tokio::process::Command::from(python);
    command
        .current_dir(dir.path())
        .args([
            "-m",
            "schemathesis.cli",
            "--config-file",
            "schemathesis.toml",
            "--no-color",
        ])
        .arg("run")
        .arg(app.url("/v1/openapi.json"));
    // Every request and response of the run, as a HAR file, for looking into a failure.
    if let Some(har) = std::env::var_os("SCHEMATHESIS_HAR") {
        command
            .args(["--report", "har", "--report-har-path"])
            .arg(har);
    }
    let started = std::time::Instant::now();
    let output = command.output().await.unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    println!("schemathesis ran for {:.1?}\n{report}", started.elapsed());
    assert!(
        output.status.success(),
        "schemathesis found failures (report above)\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn the_checked_in_document_is_the_served_one() {
    let app = spawn_app_with(TestAppOptions {
        router: Some(api::router),
        ..TestAppOptions::default()
    })
    .await;
    let served: Value = app.get("/v1/openapi.json").await.json().await.unwrap();
    let file = repo_path("docs/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        let text = serde_json::to_string_pretty(&served).unwrap() + "\n";
        std::fs::write(&file, text).unwrap();
    }
    let checked_in: Value = std::fs::read_to_string(&file)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null);
    assert!(
        checked_in == served,
        "docs/openapi.json is not the document the API serves; regenerate it with \
         `UPDATE_OPENAPI=1 cargo test -p integration-tests openapi::the_checked_in_document` \
         and commit it"
    );
}
