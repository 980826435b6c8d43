//! Where an owner says they shared their persona (docs/api.md, "Social"): a fixed set, stored with each
//! share as a product metric.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A share channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShareChannel {
    /// The page link, copied or sent.
    Link,
    /// The QR code on the card.
    Qr,
    Instagram,
    Kakao,
    /// X (formerly Twitter).
    X,
    Other,
}

impl ShareChannel {
    /// The name stored in `persona_shares.channel` (and used in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            ShareChannel::Link => "link",
            ShareChannel::Qr => "qr",
            ShareChannel::Instagram => "instagram",
            ShareChannel::Kakao => "kakao",
            ShareChannel::X => "x",
            ShareChannel::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_name_is_the_json_name() {
        use ShareChannel::*;
        for channel in [Link, Qr, Instagram, Kakao, X, Other] {
            assert_eq!(
                serde_json::to_value(channel).unwrap(),
                serde_json::json!(channel.as_str())
            );
        }
    }
}
