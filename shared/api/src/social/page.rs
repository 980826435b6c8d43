//! The share page `/p/{id}`: a small self-contained HTML5 page (inline CSS, no script) that a
//! friend reads on a phone and a link-preview crawler reads for its Open Graph and Twitter tags.
//!
//! Rendered with askama, which HTML-escapes every value by default (text and quoted
//! attributes alike); values inside a URL are percent-encoded first (`urlencode_strict`). The
//! only unescaped value is our own stylesheet, whose SHA-256 the Content-Security-Policy pins,
//! so no other style and no script can run even if markup slipped through.

use std::sync::LazyLock;

use askama::Template;
use aws_lc_rs::digest;
use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{Html, IntoResponse, Response},
};
use base64::Engine;
use social::PublicPersona;

use crate::ApiError;

/// The page's one stylesheet, inlined.
const STYLE: &str = include_str!("../../templates/share_page.css");

/// How long browsers and the CDN may keep a page or card: short, because unpublishing must take
/// effect everywhere within minutes.
pub const CACHE_CONTROL: &str = "public, max-age=300";
/// A 404 is cached briefly too, so a crawler retrying a private link does not reach the API.
const NOT_FOUND_CACHE_CONTROL: &str = "public, max-age=60";

/// Only our inline stylesheet (by hash) and same-origin images; no script, no frames, no forms.
static CONTENT_SECURITY_POLICY: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD
        .encode(digest::digest(&digest::SHA256, STYLE.as_bytes()));
    let policy = format!(
        "default-src 'none'; img-src 'self'; style-src 'sha256-{hash}'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy).expect("the policy is ASCII")
});

/// The longest `og:description` crawlers show in full.
const DESCRIPTION_CHARS: usize = 200;

#[derive(Template)]
#[template(path = "share_page.html")]
struct SharePage<'a> {
    style: &'a str,
    name: &'a str,
    archetype: &'a str,
    archetype_about: &'a str,
    theme_class: &'a str,
    theme_color: &'a str,
    greeting: &'a str,
    traits: &'a [String],
    title: String,
    description: String,
    canonical_url: String,
    image_url: String,
    image_path: String,
    image_width: u32,
    image_height: u32,
    image_alt: String,
    share_text: String,
    frontend_url: &'a str,
}

#[derive(Template)]
#[template(path = "share_not_found.html")]
struct NotFoundPage<'a> {
    style: &'a str,
    theme_color: &'a str,
    frontend_url: &'a str,
}

/// `{frontend}/p/{id}`: the page's canonical address (the QR code on every card points here).
pub fn page_url(frontend_url: &str, id: uuid::Uuid) -> String {
    format!("{frontend_url}/p/{id}")
}

/// `{frontend}/p/{id}/card.png`: the stable, public address of the 1200x630 card.
pub fn card_url(frontend_url: &str, id: uuid::Uuid) -> String {
    format!("{}/card.png", page_url(frontend_url, id))
}

fn truncated(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", text[..end].trim_end()),
        None => text.to_owned(),
    }
}

/// The page of a public persona (200).
pub fn share(frontend_url: &str, persona: &PublicPersona) -> Result<Response, ApiError> {
    let archetype = persona.archetype.name();
    let theme = cards::Theme::parse(&persona.theme).unwrap_or(cards::Theme::Default);
    let canonical_url = page_url(frontend_url, persona.id);
    let description = if persona.greeting.is_empty() {
        persona.archetype.description().to_owned()
    } else {
        truncated(&persona.greeting, DESCRIPTION_CHARS)
    };
    let page = SharePage {
        style: STYLE,
        name: &persona.name,
        archetype,
        archetype_about: persona.archetype.description(),
        theme_class: theme.name(),
        theme_color: theme.palette().background_from,
        greeting: &persona.greeting,
        traits: &persona.traits,
        title: format!("{}, the {archetype} · Re:MirAI", persona.name),
        description,
        image_url: card_url(frontend_url, persona.id),
        image_path: format!("/p/{}/card.png", persona.id),
        image_width: persona.card.width,
        image_height: persona.card.height,
        image_alt: format!(
            "Persona card of {}, a {archetype}, with their charisma, intellect, kindness and energy",
            persona.name
        ),
        share_text: format!("Meet {}, the {archetype} my friends see in me", persona.name),
        canonical_url,
        frontend_url,
    };
    let html = page.render().map_err(anyhow::Error::from)?;
    Ok(html_response(StatusCode::OK, html, CACHE_CONTROL))
}

/// The page for a private, unknown or malformed id (404): carries no persona data at all.
pub fn not_found(frontend_url: &str) -> Result<Response, ApiError> {
    let page = NotFoundPage {
        style: STYLE,
        theme_color: cards::Theme::Default.palette().background_from,
        frontend_url,
    };
    let html = page.render().map_err(anyhow::Error::from)?;
    Ok(html_response(
        StatusCode::NOT_FOUND,
        html,
        NOT_FOUND_CACHE_CONTROL,
    ))
}

fn html_response(status: StatusCode, html: String, cache_control: &'static str) -> Response {
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY.clone(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_descriptions_are_cut_on_a_character_boundary() {
        let greeting = "안녕".repeat(150);
        let cut = truncated(&greeting, DESCRIPTION_CHARS);
        assert_eq!(cut.chars().count(), DESCRIPTION_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(truncated("short", DESCRIPTION_CHARS), "short");
    }

    fn persona() -> PublicPersona {
        PublicPersona {
            id: uuid::Uuid::nil(),
            version: 1,
            name: "Mira".into(),
            archetype: domain::archetypes::Archetype::Genki,
            stats: domain::synthesis::Stats {
                charisma: 70,
                intellect: 50,
                kindness: 60,
                energy: 90,
            },
            traits: vec!["Bright".into()],
            greeting: "Hi!".into(),
            theme: "neon".into(),
            card: personas::StoredCard {
                size: "link".into(),
                key: "cards/x/abc.png".into(),
                width: 1200,
                height: 630,
            },
        }
    }

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_policy_pins_exactly_the_stylesheet_each_page_inlines() {
        let pages = [
            share("https://remirai.app", &persona()).unwrap(),
            not_found("https://remirai.app").unwrap(),
        ];
        for page in pages {
            let policy = page.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .to_owned();
            let html = body(page).await;
            let style = html
                .split_once("<style>")
                .and_then(|(_, rest)| rest.split_once("</style>"))
                .map(|(style, _)| style)
                .unwrap();
            let hash = base64::engine::general_purpose::STANDARD
                .encode(digest::digest(&digest::SHA256, style.as_bytes()));
            assert!(
                policy.contains(&format!("style-src 'sha256-{hash}'")),
                "{policy}"
            );
            assert!(!policy.contains("unsafe-inline"));
            assert!(
                !policy.contains("script-src"),
                "scripts fall back to default-src 'none'"
            );
        }
    }

    #[tokio::test]
    async fn the_page_wears_the_card_theme() {
        let html = body(share("https://remirai.app", &persona()).unwrap()).await;
        assert!(html.contains(r#"<body class="neon">"#));
    }
}
