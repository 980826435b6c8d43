//! Our access tokens (negative corpus, key rotation), refresh rotation with reuse detection,
//! logout, and the local-only dev sign-in.

use std::collections::HashSet;

use integration_tests::{
    google::{self, b64, claims, id_token, KEY_1},
    spawn_app, spawn_app_with, TestApp, TestAppOptions,
};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// 32 bytes of 0x07, base64: the signing secret of the test apps below.
const SECRET_B64: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const SECRET: [u8; 32] = [7; 32];
const OTHER_SECRET_B64: &str = "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=";

async fn app_with_keys(keys: &str, database_url: Option<&str>) -> TestApp {
    let mut overrides =
        std::collections::BTreeMap::from([("JWT_SIGNING_KEYS".to_owned(), keys.to_owned())]);
    if let Some(url) = database_url {
        overrides.insert("DATABASE_URL".into(), url.into());
    }
    spawn_app_with(TestAppOptions {
        overrides,
        ..Default::default()
    })
    .await
}

async fn me(app: &TestApp, authorization: Option<&str>) -> reqwest::Response {
    let mut request = app.http.get(app.url("/v1/me"));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().await.unwrap()
}

fn ours(kid: Option<&str>, alg: Algorithm, secret: &[u8], claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn access_corpus(user_id: &str) -> Vec<(&'static str, String)> {
    let now = google::now();
    let valid = json!({
        "iss": "https://api.remirai.app", "aud": "remirai-app", "sub": user_id,
        "iat": now, "exp": now + 3600,
    });
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
    let sign = |claims: &Value| ours(Some("current"), Algorithm::HS256, &SECRET, claims);
    let good = sign(&valid);
    let parts: Vec<&str> = good.split('.').collect();
    let header = |h: Value| b64(h.to_string().as_bytes());
    vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                header(json!({"alg": "none", "kid": "current"})),
                parts[1]
            ),
        ),
        (
            "HS384 instead of the pinned HS256",
            ours(Some("current"), Algorithm::HS384, &SECRET, &valid),
        ),
        (
            "wrong secret",
            ours(Some("current"), Algorithm::HS256, &[8; 32], &valid),
        ),
        (
            "unknown kid",
            ours(Some("someone-else"), Algorithm::HS256, &SECRET, &valid),
        ),
        (
            "rotated-out kid",
            ours(Some("retired"), Algorithm::HS256, &[9; 32], &valid),
        ),
        ("no kid", ours(None, Algorithm::HS256, &SECRET, &valid)),
        (
            "expired beyond leeway",
            sign(&with(json!({"exp": now - 120, "iat": now - 3720}))),
        ),
        ("missing exp", sign(&with(json!({"exp": null})))),
        (
            "exp as a string",
            sign(&with(json!({"exp": (now + 3600).to_string()}))),
        ),
        (
            "nbf as a string",
            sign(&with(json!({"nbf": now.to_string()}))),
        ),
        ("nbf in the future", sign(&with(json!({"nbf": now + 600})))),
        ("missing iat", sign(&with(json!({"iat": null})))),
        ("iat in the future", sign(&with(json!({"iat": now + 600})))),
        ("wrong aud", sign(&with(json!({"aud": "another-app"})))),
        ("missing aud", sign(&with(json!({"aud": null})))),
        (
            "aud array without ours",
            sign(&with(json!({"aud": ["a", "b"]}))),
        ),
        (
            "wrong iss",
            sign(&with(json!({"iss": "https://evil.example"}))),
        ),
        ("missing iss", sign(&with(json!({"iss": null})))),
        ("missing sub", sign(&with(json!({"sub": null})))),
        (
            "sub that is not a user id",
            sign(&with(json!({"sub": "admin"}))),
        ),
        (
            "sub of a user that does not exist",
            sign(&with(
                json!({"sub": "00000000-0000-7000-8000-000000000000"}),
            )),
        ),
        ("truncated signature", good[..good.len() - 5].to_owned()),
        ("two segments", format!("{}.{}", parts[0], parts[1])),
        ("four segments", format!("{good}.{}", parts[2])),
        (
            "oversized header",
            ours(Some(&"k".repeat(3000)), Algorithm::HS256, &SECRET, &valid),
        ),
        (
            "a Google token presented as ours",
            id_token(KEY_1, &claims("g")),
        ),
        ("not a JWT", "hello".to_owned()),
    ]
}

#[tokio::test]
async fn every_access_token_in_the_negative_corpus_is_rejected_with_401() {
    let app = app_with_keys(&format!("current:{SECRET_B64}"), None).await;
    let signed_in = app.dev_sign_in("corpus@example.com", "Corpus").await;
    let user_id = signed_in["user"]["id"].as_str().unwrap().to_owned();
    let valid = ours(
        Some("current"),
        Algorithm::HS256,
        &SECRET,
        &json!({"iss": "https://api.remirai.app", "aud": "remirai-app", "sub": user_id,
                "iat": google::now(), "exp": google::now() + 60}),
    );
    assert_eq!(
        me(&app, Some(&format!("Bearer {valid}"))).await.status(),
        200,
        "the corpus baseline is valid"
    );

    let mut cases: Vec<(&str, Option<String>)> = access_corpus(&user_id)
        .into_iter()
        .map(|(case, token)| (case, Some(format!("Bearer {token}"))))
        .collect();
    cases.push(("no Authorization header", None));
    cases.push(("Basic scheme", Some("Basic dXNlcjpwYXNz".into())));
    cases.push(("Bearer without a token", Some("Bearer ".into())));
    cases.push(("token without a scheme", Some(valid.clone())));
    assert!(cases.len() >= 30);

    for (case, authorization) in cases {
        let response = me(&app, authorization.as_deref()).await;
        assert_eq!(response.status(), 401, "{case}");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.starts_with("Bearer"), "{case}: {challenge}");
        let body: Value = response.json().await.unwrap();
        assert!(
            ["invalid_token", "missing_token"].contains(&body["error"]["code"].as_str().unwrap()),
            "{case}: {body}"
        );
    }
}

#[tokio::test]
async fn a_token_signed_by_the_previous_key_verifies_until_that_key_is_removed() {
    let old = app_with_keys(&format!("old:{SECRET_B64}"), None).await;
    let token = old.dev_sign_in("rotate@example.com", "Rotate").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bearer = format!("Bearer {token}");

    let rolled = app_with_keys(
        &format!("new:{OTHER_SECRET_B64},old:{SECRET_B64}"),
        Some(&old.database_url),
    )
    .await;
    let retired = app_with_keys(&format!("new:{OTHER_SECRET_B64}"), Some(&old.database_url)).await;
    let fresh = rolled.dev_sign_in("rotate@example.com", "Rotate").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    assert_eq!(me(&rolled, Some(&bearer)).await.status(), 200);
    assert_eq!(me(&retired, Some(&bearer)).await.status(), 401);
    assert_eq!(
        me(&retired, Some(&format!("Bearer {fresh}")))
            .await
            .status(),
        200
    );
    let header = jsonwebtoken::decode_header(&fresh).unwrap();
    assert_eq!(header.kid.as_deref(), Some("new"));
    assert_eq!(header.alg, Algorithm::HS256);
}

#[tokio::test]
async fn refresh_rotates_the_token_and_the_new_pair_works() {
    let app = spawn_app().await;
    let first = app.dev_sign_in("ann@example.com", "Ann Lee").await;

    let response = app
        .post(
            "/v1/auth/refresh",
            json!({"refresh_token": first["refresh_token"]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let second: Value = response.json().await.unwrap();
    let third: Value = app
        .post(
            "/v1/auth/refresh",
            json!({"refresh_token": second["refresh_token"]}),
        )
        .await
        .json()
        .await
        .unwrap();

    assert_ne!(first["refresh_token"], second["refresh_token"]);
    assert_ne!(second["refresh_token"], third["refresh_token"]);
    assert_eq!(second["user"]["id"], first["user"]["id"]);
    assert_eq!(second["user"]["display_name"], "Ann");
    let bearer = format!("Bearer {}", third["access_token"].as_str().unwrap());
    assert_eq!(me(&app, Some(&bearer)).await.status(), 200);
    // Only a hash is stored.
    let stored: Vec<Vec<u8>> = app
        .state
        .db
        .get()
        .await
        .unwrap()
        .query("SELECT token_hash FROM refresh_tokens", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored.len(), 3);
    for hash in stored {
        assert_eq!(hash.len(), 32);
        assert!(!String::from_utf8_lossy(&hash).contains(third["refresh_token"].as_str().unwrap()));
    }
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_after_the_grace_revokes_the_whole_family() {
    let app = spawn_app_with(TestAppOptions {
        overrides: [("REFRESH_REUSE_GRACE_SECS".to_owned(), "0".to_owned())].into(),
        ..Default::default()
    })
    .await;
    let first = app.dev_sign_in("bo@example.com", "Bo").await;
    let second: Value = app
        .post(
            "/v1/auth/refresh",
            json!({"refresh_token": first["refresh_token"]}),
        )
        .await
        .json()
        .await
        .unwrap();

    let replay = app
        .post(
            "/v1/auth/refresh",
            json!({"refresh_token": first["refresh_token"]}),
        )
        .await;
    assert_eq!(replay.status(), 401);
    let replay: Value = replay.json().await.unwrap();
    let after = app
        .post(
            "/v1/auth/refresh",
            json!({"refresh_token": second["refresh_token"]}),
        )
        .await;

    assert_eq!(replay["error"]["code"], "refresh_token_reused");
    assert_eq!(
        after.status(),
        401,
        "the live token of the family died with it"
    );
    let after: Value = after.json().await.unwrap();
    assert_eq!(after["error"]["code"], "invalid_refresh_token");
}

#[tokio::test]
async fn two_tabs_refreshing_at_once_both_stay_signed_in_within_the_grace() {
    let app = spawn_app().await;
    let signed_in = app.dev_sign_in("race@example.com", "Race").await;
    let token = signed_in["refresh_token"].clone();

    let responses = futures_util::future::join_all((0..10).map(|i| {
        let client = app.client_from(100 + i);
        let url = app.url("/v1/auth/refresh");
        let token = token.clone();
        async move {
            client
                .post(url)
                .json(&json!({"refresh_token": token}))
                .send()
                .await
                .unwrap()
        }
    }))
    .await;

    assert!(
        responses.iter().all(|r| r.status() == 200),
        "{:?}",
        responses.iter().map(|r| r.status()).collect::<Vec<_>>()
    );
    let fresh: Vec<Value> = futures_util::future::join_all(
        responses
            .into_iter()
            .map(|r| async move { r.json::<Value>().await.unwrap() }),
    )
    .await;
    for pair in &fresh {
        let me = app
            .http
            .get(app.url("/v1/me"))
            .bearer_auth(pair["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);
    }
    let (families, live, revoked) = (
        app.count("SELECT count(DISTINCT family_id) FROM refresh_tokens")
            .await,
        app.count(
            "SELECT count(*) FROM refresh_tokens
             WHERE rotated_at IS NULL AND revoked_at IS NULL AND expires_at > now()",
        )
        .await,
        app.count("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NOT NULL")
            .await,
    );
    assert_eq!(
        (families, live, revoked),
        (1, 1, 0),
        "one session, ten tabs, one live refresh token"
    );
    assert!(
        fresh
            .iter()
            .all(|pair| pair["refresh_token"] == fresh[0]["refresh_token"]),
        "every tab gets the same successor"
    );
    assert_ne!(fresh[0]["refresh_token"], token);

    // The shared successor works.
    let again = app
        .post(
            "/v1/auth/refresh",
            json!({"refresh_token": fresh[0]["refresh_token"]}),
        )
        .await;
    assert_eq!(again.status(), 200);
}

/// Counts of the refresh tokens of the only family: (all, live, revoked).
async fn family_counts(app: &TestApp) -> (i64, i64, i64) {
    (
        app.count("SELECT count(DISTINCT family_id) FROM refresh_tokens")
            .await,
        app.count(
            "SELECT count(*) FROM refresh_tokens
             WHERE rotated_at IS NULL AND revoked_at IS NULL AND expires_at > now()",
        )
        .await,
        app.count("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NOT NULL")
            .await,
    )
}

#[tokio::test]
async fn a_repeat_within_the_grace_gets_the_same_successor_and_never_a_second_live_token() {
    let app = spawn_app().await;
    let signed_in = app.dev_sign_in("echo@example.com", "Echo").await;
    let token = signed_in["refresh_token"].clone();
    let refresh = |token: Value| {
        let app = &app;
        async move {
            app.post("/v1/auth/refresh", json!({"refresh_token": token}))
                .await
        }
    };

    let first = refresh(token.clone()).await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let second = refresh(token.clone()).await;
    assert_eq!(
        second.status(),
        200,
        "a repeat within the grace is a replay"
    );
    let second: Value = second.json().await.unwrap();

    assert_eq!(first["refresh_token"], second["refresh_token"]);
    assert_ne!(first["refresh_token"], token);
    assert_eq!(second["user"]["id"], signed_in["user"]["id"]);
    assert_eq!(
        family_counts(&app).await,
        (1, 1, 0),
        "one family, one live token"
    );
    for pair in [&first, &second] {
        let bearer = format!("Bearer {}", pair["access_token"].as_str().unwrap());
        assert_eq!(me(&app, Some(&bearer)).await.status(), 200);
    }
    let live_hash: Vec<u8> = app
        .state
        .db
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT token_hash FROM refresh_tokens WHERE rotated_at IS NULL AND revoked_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        live_hash,
        auth::tokens::hash_refresh_token(second["refresh_token"].as_str().unwrap()),
        "the live token is the one both answers carried"
    );

    // The live token works (and rotates normally) ...
    let third = refresh(second["refresh_token"].clone()).await;
    assert_eq!(third.status(), 200);
    let third: Value = third.json().await.unwrap();
    assert_ne!(third["refresh_token"], second["refresh_token"]);
    assert_eq!(family_counts(&app).await, (1, 1, 0));

    // ... and once the grace has passed, a repeat of the first token still revokes the family.
    app.execute(
        "UPDATE refresh_tokens SET rotated_at = now() - interval '1 hour'
             WHERE rotated_at IS NOT NULL",
        &[],
    )
    .await;
    let reused = refresh(token).await;
    assert_eq!(reused.status(), 401);
    let reused: Value = reused.json().await.unwrap();
    assert_eq!(reused["error"]["code"], "refresh_token_reused");
    let after = refresh(third["refresh_token"].clone()).await;
    assert_eq!(after.status(), 401, "the live token died with its family");
    let after: Value = after.json().await.unwrap();
    assert_eq!(after["error"]["code"], "invalid_refresh_token");
    assert_eq!(family_counts(&app).await, (1, 0, 3));
}

#[tokio::test]
async fn logout_ends_the_session_and_answers_204_even_for_unknown_tokens() {
    let app = spawn_app().await;
    let signed_in = app.dev_sign_in("cy@example.com", "Cy").await;

    let logout = app
        .post(
            "/v1/auth/logout",
            json!({"refresh_token": signed_in["refresh_token"]}),
        )
        .await;
    let refresh = app
        .post(
            "/v1/auth/refresh",
            json!({"refresh_token": signed_in["refresh_token"]}),
        )
        .await;
    let unknown = app
        .post("/v1/auth/logout", json!({"refresh_token": "never-issued"}))
        .await;

    assert_eq!(logout.status(), 204);
    assert_eq!(refresh.status(), 401);
    assert_eq!(unknown.status(), 204);
}

#[tokio::test]
async fn an_expired_refresh_token_is_refused() {
    let app = spawn_app().await;
    let signed_in = app.dev_sign_in("dee@example.com", "Dee").await;
    app.execute(
        "UPDATE refresh_tokens SET expires_at = now() - interval '1 second'",
        &[],
    )
    .await;

    let response = app
        .post(
            "/v1/auth/refresh",
            json!({"refresh_token": signed_in["refresh_token"]}),
        )
        .await;

    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn malformed_auth_bodies_get_the_standard_errors() {
    let app = spawn_app().await;

    let unknown_field = app
        .post(
            "/v1/auth/refresh",
            json!({"refresh_token": "x", "extra": 1}),
        )
        .await;
    let missing = app.post("/v1/auth/google", json!({})).await;
    let not_json = app
        .http
        .post(app.url("/v1/auth/logout"))
        .body("refresh_token=x")
        .send()
        .await
        .unwrap();
    let invalid_dev = app
        .post("/v1/auth/dev", json!({"email": "nope", "name": ""}))
        .await;

    assert_eq!(unknown_field.status(), 400);
    assert_eq!(missing.status(), 400);
    assert_eq!(not_json.status(), 415);
    assert_eq!(invalid_dev.status(), 422);
    let body: Value = invalid_dev.json().await.unwrap();
    let fields: HashSet<&str> = body["error"]["details"]["fields"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, HashSet::from(["email", "name"]));
}

#[tokio::test]
async fn the_dev_sign_in_route_does_not_exist_in_the_lambda_router() {
    let app = spawn_app_with(TestAppOptions {
        router: Some(api::router),
        ..Default::default()
    })
    .await;

    let response = app
        .post("/v1/auth/dev", json!({"email": "a@b.c", "name": "A"}))
        .await;
    let document: Value = app.get("/v1/openapi.json").await.json().await.unwrap();

    assert_eq!(response.status(), 404);
    assert!(document["paths"].get("/v1/auth/dev").is_none());
    assert!(document["paths"].get("/v1/auth/google").is_some());
}

#[tokio::test]
async fn the_local_router_refuses_to_build_inside_lambda() {
    let app = spawn_app().await;

    let outcome = api::local_router(app.state.clone(), |name| {
        (name == "AWS_LAMBDA_FUNCTION_NAME").then(|| "remirai-HttpApiFunction".to_owned())
    });

    assert!(outcome.is_err());
}
