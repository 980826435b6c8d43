//! The caller's network address, only ever as a keyed hash.
//!
//! Inside Lambda the address is API Gateway's `sourceIp`; locally the TCP peer. It is hashed with
//! HMAC-SHA256 under `ADDRESS_HASH_KEY` at once and the raw value dropped, so it never reaches a
//! log, a table or a queue.

use std::net::SocketAddr;

use aws_lc_rs::hmac;
use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::request::Parts,
};
use lambda_http::request::RequestContext;
use secrecy::ExposeSecret;

use crate::{ApiError, AppState};

/// Hex of the first 16 bytes of HMAC-SHA256(key, address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressHash(pub String);

impl FromRequestParts<AppState> for AddressHash {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let address = source_address(parts).ok_or_else(|| {
            ApiError::Unexpected(anyhow::anyhow!("the request has no source address"))
        })?;
        Ok(Self(keyed_hash(
            state.config.identity.address_hash_key.0.expose_secret(),
            &address,
        )))
    }
}

fn source_address(parts: &Parts) -> Option<String> {
    if let Some(RequestContext::ApiGatewayV2(context)) = parts.extensions.get::<RequestContext>() {
        return context.http.source_ip.clone();
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip().to_string())
}

/// HMAC-SHA256(key, value), first 16 bytes as hex.
pub fn keyed_hash(key: &[u8], value: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, value.as_bytes());
    platform::crypto::hex(&tag.as_ref()[..16])
}
