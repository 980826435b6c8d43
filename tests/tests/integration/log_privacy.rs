//! Nothing secret or identifying reaches the logs: no token, email or Google `sub`.

use integration_tests::{
    captured_logs,
    google::{claims, id_token, FakeGoogle, KEY_1},
    spawn_app_with, TestAppOptions,
};
use serde_json::{json, Value};

#[tokio::test]
async fn no_token_email_or_google_sub_appears_in_any_log_line() {
    let google = FakeGoogle::start().await;
    let app = spawn_app_with(TestAppOptions {
        overrides: [("GOOGLE_JWKS_URL".to_owned(), google.jwks_url())].into(),
        ..Default::default()
    })
    .await;
    let sub = "sub-canary-5f3a9e";
    let email = "canary-7c1d@example.com";
    let id = id_token(KEY_1, &claims(sub));

    // A full session: Google sign-in, a rejected token, profile, refresh, reuse, dev sign-in,
    // logout.
    let signed_in: Value = app
        .http
        .post(app.url("/v1/auth/google"))
        .json(&json!({"id_token": id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bad = app
        .http
        .post(app.url("/v1/auth/google"))
        .json(&json!({"id_token": format!("{id}x")}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let access = signed_in["access_token"].as_str().unwrap().to_owned();
    let refresh = signed_in["refresh_token"].as_str().unwrap().to_owned();
    app.http
        .get(app.url("/v1/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    app.http
        .get(app.url("/v1/me"))
        .bearer_auth(format!("{access}x"))
        .send()
        .await
        .unwrap();
    let rotated: Value = app
        .http
        .post(app.url("/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    app.http
        .post(app.url("/v1/auth/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    let dev = app.dev_sign_in(email, "Canary Person").await;
    app.http
        .post(app.url("/v1/auth/logout"))
        .json(&json!({"refresh_token": dev["refresh_token"]}))
        .send()
        .await
        .unwrap();

    let logs = captured_logs();
    assert!(
        logs.contains("signed in with Google"),
        "the flow was logged at all"
    );
    for (what, secret) in [
        ("Google sub", sub.to_owned()),
        ("email", email.to_owned()),
        ("Google ID token", id.clone()),
        (
            "ID token signature",
            id.rsplit('.').next().unwrap().to_owned(),
        ),
        ("access token", access.clone()),
        ("refresh token", refresh.clone()),
        (
            "rotated refresh token",
            rotated["refresh_token"].as_str().unwrap().to_owned(),
        ),
        (
            "dev access token",
            dev["access_token"].as_str().unwrap().to_owned(),
        ),
        (
            "dev refresh token",
            dev["refresh_token"].as_str().unwrap().to_owned(),
        ),
    ] {
        assert!(!logs.contains(&secret), "the {what} appears in the logs");
    }
}
