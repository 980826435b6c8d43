//! What anyone may see of a public persona: the JSON view, the share page's data, and the
//! 1200x630 link card behind the page's stable image URL.

use anyhow::Context;
use domain::{archetypes::Archetype, synthesis::Stats};
use personas::{versions, PersonaVersion, StoredCard};
use uuid::Uuid;

use crate::{Social, SocialError};

/// The card size link previews use (1200x630).
pub const LINK_CARD: &str = "link";

/// A public persona: never the system prompt, owner, survey or anything private.
#[derive(Debug, Clone)]
pub struct PublicPersona {
    /// The newest ready version's id (not necessarily the one asked for).
    pub id: Uuid,
    pub version: i32,
    pub name: String,
    pub archetype: Archetype,
    pub stats: Stats,
    pub traits: Vec<String>,
    pub greeting: String,
    /// The card theme the owner chose (`default`, `dark`, `neon`, `pastel`); the share page
    /// wears it too.
    pub theme: String,
    /// The 1200x630 link card.
    pub card: StoredCard,
}

impl PublicPersona {
    fn from_row(row: PersonaVersion) -> anyhow::Result<Self> {
        let (Some(name), Some(archetype), Some(stats)) = (row.name, row.archetype, row.stats)
        else {
            anyhow::bail!("a persona with cards but without its synthesis");
        };
        let card = row
            .cards
            .into_iter()
            .find(|card| card.size == LINK_CARD)
            .context("a persona without a link card")?;
        Ok(Self {
            id: row.id,
            version: row.version,
            name,
            archetype,
            stats,
            traits: row.traits,
            greeting: row.greeting.unwrap_or_default(),
            theme: row.theme,
            card,
        })
    }
}

/// The link card's bytes, or that the client's copy is current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardImage {
    /// `If-None-Match` named the current card.
    Unchanged { etag: String },
    /// The PNG.
    Png { etag: String, bytes: Vec<u8> },
}

/// The strong ETag of a stored card: its key is content-addressed
/// (`cards/{persona}/{sha256}.png`), so the digest names the bytes.
pub fn etag(card: &StoredCard) -> String {
    let digest = card
        .key
        .rsplit('/')
        .next()
        .and_then(|name| name.strip_suffix(".png"))
        .unwrap_or(&card.key);
    format!("\"{digest}\"")
}

/// Whether an `If-None-Match` header value names `etag` (RFC 9110 section 13.1.2: a list of
/// tags, weak ones compared weakly, or `*`).
pub fn matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

impl Social {
    /// The public persona that version `id` belongs to: its newest ready version, while the
    /// owner's persona is public; otherwise [`SocialError::NotFound`].
    pub async fn public_persona(&self, id: Uuid) -> Result<PublicPersona, SocialError> {
        let client = self.connection().await?;
        let row = versions::current_public(&client, id)
            .await?
            .ok_or(SocialError::NotFound)?;
        Ok(PublicPersona::from_row(row)?)
    }

    /// The public persona's 1200x630 card, read from the bucket, unless `if_none_match` already
    /// names it.
    pub async fn card_image(
        &self,
        id: Uuid,
        if_none_match: Option<&str>,
    ) -> Result<CardImage, SocialError> {
        let persona = self.public_persona(id).await?;
        let etag = etag(&persona.card);
        if if_none_match.is_some_and(|header| matches(header, &etag)) {
            return Ok(CardImage::Unchanged { etag });
        }
        let object = self
            .cards
            .s3
            .get_object()
            .bucket(&self.cards.bucket)
            .key(&persona.card.key)
            .send()
            .await
            .context("reading a card")?;
        let bytes = object
            .body
            .collect()
            .await
            .context("reading a card's bytes")?
            .into_bytes()
            .to_vec();
        Ok(CardImage::Png { etag, bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(key: &str) -> StoredCard {
        StoredCard {
            size: LINK_CARD.into(),
            key: key.into(),
            width: 1200,
            height: 630,
        }
    }

    #[test]
    fn the_etag_is_the_content_digest_of_the_key() {
        assert_eq!(etag(&card("cards/p/abc123.png")), "\"abc123\"");
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        assert!(matches("\"abc\"", "\"abc\""));
        assert!(matches("\"x\", W/\"abc\"", "\"abc\""));
        assert!(matches("*", "\"abc\""));
        assert!(!matches("\"abcd\"", "\"abc\""));
        assert!(!matches("", "\"abc\""));
    }
}
