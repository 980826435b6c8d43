//! The caller's network address, only ever as a keyed hash.
//!
//! Inside Lambda the address is API Gateway's `sourceIp`; locally the TCP peer. It is hashed with
//! HMAC-SHA256 under `ADDRESS_HASH_KEY` at once and the raw value dropped, so it never reaches a
//! log, a table or a queue.
//!
//! An IPv6 client is keyed by its /64 network: one subscriber usually holds a whole /64 (RFC
//! 6177) and can pick any address inside it, so keying by the full address would let one person
//! pass rate limits and duplicate checks by rotating addresses.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

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
            &subject(&address),
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

/// What a client is keyed by: an IPv4 address as it is, an IPv6 address by its /64 (an
/// IPv4-mapped IPv6 address counts as the IPv4 address).
fn subject(address: &str) -> String {
    match address.trim().parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let network = u128::from(v6) & !(u128::from(u64::MAX));
                format!("{}/64", Ipv6Addr::from(network))
            }
        },
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => address.to_owned(),
    }
}

/// HMAC-SHA256(key, value), first 16 bytes as hex.
pub fn keyed_hash(key: &[u8], value: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, value.as_bytes());
    platform::crypto::hex(&tag.as_ref()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_network() {
        assert_eq!(
            subject("2001:db8:1:2:aaaa::1"),
            subject("2001:db8:1:2:ffff:1:2:3")
        );
        assert_eq!(subject("2001:db8:1:2::9"), "2001:db8:1:2::/64");
        assert_ne!(subject("2001:db8:1:2::1"), subject("2001:db8:1:3::1"));
        assert_eq!(subject("203.0.113.7"), "203.0.113.7");
        assert_eq!(subject("::ffff:203.0.113.7"), "203.0.113.7");
    }
}
