//! A stand-in for Google's JWKS endpoint (wiremock) and ID tokens signed with the test-only keys
//! in `tests/fixtures/google/`.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use wiremock::{
    matchers::{method, path},
    Mock, MockServer, ResponseTemplate,
};

use crate::{repo_path, GOOGLE_CLIENT_ID};

pub const KEY_1: &str = "google-test-1";
pub const KEY_2: &str = "google-test-2";
pub const KEY_3: &str = "google-test-3";

pub struct FakeGoogle {
    pub server: MockServer,
}

/// The JWKS with the keys `kids`.
pub fn jwks(kids: &[&str]) -> Value {
    let text = std::fs::read_to_string(repo_path("tests/fixtures/google/jwks.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<Value> = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|key| kids.contains(&key["kid"].as_str().unwrap()))
        .cloned()
        .collect();
    json!({ "keys": keys })
}

impl FakeGoogle {
    /// Serves keys 1 and 2 with `Cache-Control: max-age=3600`, like Google.
    pub async fn start() -> Self {
        let fake = Self {
            server: MockServer::start().await,
        };
        fake.publish(
            &[KEY_1, KEY_2],
            "public, max-age=3600, must-revalidate, no-transform",
        )
        .await;
        fake
    }

    /// Replaces what the JWKS endpoint serves.
    pub async fn publish(&self, kids: &[&str], cache_control: &str) {
        self.server.reset().await;
        Mock::given(method("GET"))
            .and(path("/oauth2/v3/certs"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(jwks(kids))
                    .insert_header("cache-control", cache_control),
            )
            .mount(&self.server)
            .await;
    }

    /// Makes the JWKS endpoint fail.
    pub async fn go_down(&self) {
        self.server.reset().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&self.server)
            .await;
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/oauth2/v3/certs", self.server.uri())
    }

    /// How many times the JWKS was fetched since the last [`FakeGoogle::publish`].
    pub async fn fetches(&self) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .len()
    }
}

/// Valid claims of a Google ID token for our client.
pub fn claims(sub: &str) -> Value {
    let now = now();
    json!({
        "iss": "https://accounts.google.com",
        "aud": GOOGLE_CLIENT_ID,
        "azp": GOOGLE_CLIENT_ID,
        "sub": sub,
        "email": format!("{sub}@example.com"),
        "email_verified": true,
        "name": "Mira Kim",
        "given_name": "Mira",
        "iat": now,
        "exp": now + 3600,
    })
}

/// An RS256 ID token signed with test key `kid`.
pub fn id_token(kid: &str, claims: &Value) -> String {
    sign(kid, Algorithm::RS256, Some(kid), claims)
}

/// A token signed with the private key of `key_file_kid`, header `alg` and `kid`.
pub fn sign(key_file_kid: &str, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let der = std::fs::read(repo_path(&format!(
        "tests/fixtures/google/key-{key_file_kid}.der"
    )))
    .unwrap();
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, &EncodingKey::from_rsa_der(&der)).unwrap()
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
