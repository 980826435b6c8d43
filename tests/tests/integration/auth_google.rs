//! Google sign-in against a wiremock JWKS endpoint: the happy path, the negative token corpus,
//! key caching, single-flight refetch and rotation.

use integration_tests::{
    google::{self, b64, claims, id_token, sign, FakeGoogle, KEY_1, KEY_2, KEY_3},
    repo_path, spawn_app_with, TestApp, TestAppOptions,
};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

async fn app_with(google: &FakeGoogle) -> TestApp {
    spawn_app_with(TestAppOptions {
        overrides: [("GOOGLE_JWKS_URL".to_owned(), google.jwks_url())].into(),
        ..Default::default()
    })
    .await
}

async fn sign_in(app: &TestApp, client: &reqwest::Client, token: &str) -> reqwest::Response {
    client
        .post(app.url("/v1/auth/google"))
        .json(&json!({ "id_token": token }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_valid_google_token_signs_in_and_the_same_sub_finds_the_same_user() {
    let google = FakeGoogle::start().await;
    let app = app_with(&google).await;

    let first = sign_in(&app, &app.http, &id_token(KEY_1, &claims("109876543210"))).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let second: Value = sign_in(&app, &app.http, &id_token(KEY_2, &claims("109876543210")))
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(first["expires_in"], 3600);
    assert_eq!(first["user"]["display_name"], "Mira");
    assert_eq!(first["user"]["id"], second["user"]["id"]);
    assert_ne!(first["refresh_token"], second["refresh_token"]);
    let me: Value = app
        .http
        .get(app.url("/v1/me"))
        .bearer_auth(first["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], first["user"]["id"]);
    assert_eq!(me["crystal_balance"], 0);
    // Keyed by Google's sub, and no email is stored anywhere.
    let (client, connection) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows = client
        .query("SELECT subject FROM users", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "google:109876543210");
}

/// Every case must be refused with 401 and the standard body.
fn negative_corpus() -> Vec<(&'static str, String)> {
    let now = google::now();
    let valid = claims("corpus-user");
    let with = |changes: Value| {
        let mut c = valid.clone();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let good = id_token(KEY_1, &valid);
    let parts: Vec<&str> = good.split('.').collect();
    let header_b64 = |header: Value| b64(header.to_string().as_bytes());
    let payload_b64 = b64(valid.to_string().as_bytes());
    let public_der = std::fs::read(repo_path(
        "tests/fixtures/google/public-key-google-test-1.der",
    ))
    .unwrap();
    let hs256_with_public_key = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(KEY_1.into());
        encode(&header, &valid, &EncodingKey::from_secret(&public_der)).unwrap()
    };
    let hs256_with_modulus = {
        let jwks = google::jwks(&[KEY_1]);
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(KEY_1.into());
        encode(
            &header,
            &valid,
            &EncodingKey::from_secret(jwks["keys"][0]["n"].as_str().unwrap().as_bytes()),
        )
        .unwrap()
    };
    let our_style_token = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("local".into());
        encode(
            &header,
            &json!({"iss": "https://api.remirai.app", "aud": "remirai-app", "sub": "x", "iat": now, "exp": now + 60}),
            &EncodingKey::from_secret(&[7u8; 32]),
        )
        .unwrap()
    };
    vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                header_b64(json!({"alg": "none", "kid": KEY_1})),
                payload_b64
            ),
        ),
        (
            "alg none without kid",
            format!("{}.{}.", header_b64(json!({"alg": "none"})), payload_b64),
        ),
        (
            "HS256 signed with the RSA public key",
            hs256_with_public_key,
        ),
        ("HS256 signed with the modulus", hs256_with_modulus),
        (
            "RS384 instead of the pinned RS256",
            sign(KEY_1, Algorithm::RS384, Some(KEY_1), &valid),
        ),
        (
            "unknown kid",
            sign(KEY_1, Algorithm::RS256, Some("no-such-key"), &valid),
        ),
        ("no kid", sign(KEY_1, Algorithm::RS256, None, &valid)),
        (
            "signed by a key Google never published",
            sign(KEY_3, Algorithm::RS256, Some(KEY_1), &valid),
        ),
        (
            "signed by key 2 but naming key 1",
            sign(KEY_2, Algorithm::RS256, Some(KEY_1), &valid),
        ),
        (
            "expired beyond leeway",
            id_token(KEY_1, &with(json!({"exp": now - 3600, "iat": now - 7200}))),
        ),
        ("missing exp", id_token(KEY_1, &with(json!({"exp": null})))),
        (
            "exp as a string",
            id_token(KEY_1, &with(json!({"exp": (now + 3600).to_string()}))),
        ),
        (
            "exp as an object",
            id_token(KEY_1, &with(json!({"exp": {"$gt": 0}}))),
        ),
        (
            "nbf as a string",
            id_token(KEY_1, &with(json!({"nbf": now.to_string()}))),
        ),
        (
            "nbf in the future",
            id_token(KEY_1, &with(json!({"nbf": now + 3600}))),
        ),
        ("missing iat", id_token(KEY_1, &with(json!({"iat": null})))),
        (
            "iat in the future",
            id_token(KEY_1, &with(json!({"iat": now + 3600}))),
        ),
        (
            "iat as a string",
            id_token(KEY_1, &with(json!({"iat": now.to_string()}))),
        ),
        (
            "wrong aud",
            id_token(
                KEY_1,
                &with(json!({"aud": "someone-else.apps.googleusercontent.com"})),
            ),
        ),
        ("missing aud", id_token(KEY_1, &with(json!({"aud": null})))),
        (
            "aud array without ours",
            id_token(
                KEY_1,
                &with(json!({"aud": ["a.apps.googleusercontent.com", "b"]})),
            ),
        ),
        (
            "wrong iss",
            id_token(
                KEY_1,
                &with(json!({"iss": "https://accounts.evil.example"})),
            ),
        ),
        (
            "iss with a trailing slash",
            id_token(KEY_1, &with(json!({"iss": "https://accounts.google.com/"}))),
        ),
        ("missing iss", id_token(KEY_1, &with(json!({"iss": null})))),
        ("missing sub", id_token(KEY_1, &with(json!({"sub": null})))),
        (
            "email not verified",
            id_token(KEY_1, &with(json!({"email_verified": false}))),
        ),
        (
            "email_verified missing",
            id_token(KEY_1, &with(json!({"email_verified": null}))),
        ),
        (
            "email_verified as a string",
            id_token(KEY_1, &with(json!({"email_verified": "true"}))),
        ),
        ("truncated signature", good[..good.len() - 10].to_owned()),
        (
            "signature of another payload",
            format!(
                "{}.{}.{}",
                parts[0],
                b64(with(json!({"sub": "admin"})).to_string().as_bytes()),
                parts[2]
            ),
        ),
        ("two segments", format!("{}.{}", parts[0], parts[1])),
        ("four segments", format!("{good}.{}", parts[2])),
        (
            "oversized header",
            sign(KEY_1, Algorithm::RS256, Some(&"k".repeat(6000)), &valid),
        ),
        (
            "payload is not JSON",
            format!("{}.{}.{}", parts[0], b64(b"not json"), parts[2]),
        ),
        ("not a JWT", "hello".to_owned()),
        ("empty", String::new()),
        (
            "our access token presented as a Google token",
            our_style_token,
        ),
    ]
}

#[tokio::test]
async fn every_token_in_the_negative_corpus_is_rejected_with_401() {
    let google = FakeGoogle::start().await;
    let app = app_with(&google).await;
    let corpus = negative_corpus();
    assert!(corpus.len() >= 30);

    for (index, (case, token)) in corpus.into_iter().enumerate() {
        // A fresh address per case keeps the auth rate limit out of the way.
        let client = app.client_from(10 + index as u8);
        let response = sign_in(&app, &client, &token).await;
        assert_eq!(response.status(), 401, "{case}");
        assert!(
            response.headers().contains_key("www-authenticate"),
            "{case}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_id_token", "{case}: {body}");
    }
    let users = app
        .state
        .db
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(users, 0, "no rejected token created a user");
}

#[tokio::test]
async fn a_thousand_concurrent_verifications_share_one_jwks_fetch() {
    let google = FakeGoogle::start().await;
    let app = app_with(&google).await;
    let tokens: Vec<String> = (0..1000)
        .map(|i| {
            id_token(
                if i % 2 == 0 { KEY_1 } else { KEY_2 },
                &claims(&format!("user-{i}")),
            )
        })
        .collect();

    // Cold: every verification needs the keys at once; one fetch serves them all.
    let cold =
        futures_util::future::join_all(tokens.iter().map(|t| app.state.auth.google.verify(t)))
            .await;
    // Warm: within max-age, no fetch at all.
    let warm =
        futures_util::future::join_all(tokens.iter().map(|t| app.state.auth.google.verify(t)))
            .await;

    assert!(cold.iter().chain(warm.iter()).all(Result::is_ok));
    assert_eq!(google.fetches().await, 1);
}

#[tokio::test]
async fn a_new_key_id_triggers_exactly_one_refetch_and_a_removed_key_is_rejected() {
    let google = FakeGoogle::start().await;
    let app = app_with(&google).await;
    assert!(app
        .state
        .auth
        .google
        .verify(&id_token(KEY_1, &claims("a")))
        .await
        .is_ok());
    assert_eq!(google.fetches().await, 1);

    // Google rotates: key 3 appears, key 1 is retired.
    google
        .publish(&[KEY_2, KEY_3], "public, max-age=3600")
        .await;
    let with_new_key = futures_util::future::join_all((0..50).map(|_| async {
        app.state
            .auth
            .google
            .verify(&id_token(KEY_3, &claims("b")))
            .await
    }))
    .await;
    let fetches_for_new_key = google.fetches().await;
    let with_removed_key = app
        .state
        .auth
        .google
        .verify(&id_token(KEY_1, &claims("c")))
        .await;

    assert!(with_new_key.iter().all(Result::is_ok));
    assert_eq!(fetches_for_new_key, 1, "one refetch for the new kid");
    assert!(with_removed_key.is_err(), "key 1 is gone after the refresh");
    assert_eq!(google.fetches().await, 1, "no further fetch within 30 s");
}

#[tokio::test]
async fn a_flood_of_unknown_key_ids_causes_at_most_one_refetch() {
    let google = FakeGoogle::start().await;
    let app = app_with(&google).await;
    app.state
        .auth
        .google
        .verify(&id_token(KEY_1, &claims("warm")))
        .await
        .unwrap();
    google
        .publish(&[KEY_1, KEY_2], "public, max-age=3600")
        .await;

    let tokens: Vec<String> = (0..200)
        .map(|i| {
            sign(
                KEY_1,
                Algorithm::RS256,
                Some(&format!("forged-{i}")),
                &claims("x"),
            )
        })
        .collect();
    let outcomes =
        futures_util::future::join_all(tokens.iter().map(|t| app.state.auth.google.verify(t)))
            .await;

    assert!(outcomes.iter().all(Result::is_err));
    assert!(google.fetches().await <= 1);
}

#[tokio::test]
async fn keys_expire_with_max_age() {
    let google = FakeGoogle::start().await;
    google.publish(&[KEY_1], "public, max-age=0").await;
    let app = app_with(&google).await;

    app.state
        .auth
        .google
        .verify(&id_token(KEY_1, &claims("a")))
        .await
        .unwrap();
    app.state
        .auth
        .google
        .verify(&id_token(KEY_1, &claims("a")))
        .await
        .unwrap();

    assert_eq!(google.fetches().await, 2, "max-age=0 means no caching");
}

#[tokio::test]
async fn google_being_down_at_a_cold_start_is_503_not_401() {
    let google = FakeGoogle::start().await;
    google.go_down().await;
    let app = app_with(&google).await;

    let response = sign_in(&app, &app.http, &id_token(KEY_1, &claims("a"))).await;

    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "identity_provider_unavailable");
}
