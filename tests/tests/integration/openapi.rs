//! The OpenAPI document: valid OpenAPI 3.1 (checked by `openapi-spec-validator`, the reference
//! validator), and every operation it lists is served by the router.

use std::process::Command;

use integration_tests::spawn_app;
use serde_json::Value;

#[tokio::test]
async fn the_document_is_valid_openapi_3_1() {
    let app = spawn_app().await;
    let document = app.get("/v1/openapi.json").await.text().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &document).unwrap();
    let python = devstack::python::interpreter_with(
        "openapi_spec_validator",
        "openapi-spec-validator==0.9.0",
    )
    .unwrap();

    let output = Command::new(python)
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
