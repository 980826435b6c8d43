//! The remote moderation check: OpenAI's `/moderations`, when an OpenAI key is configured. It
//! only adds categories to the rule-based verdict; when it fails (down, slow, malformed), the
//! rule-based verdict stands alone and the failure is logged. The message text is sent to the
//! API and nowhere else.
//! <https://platform.openai.com/docs/api-reference/moderations>

use std::{collections::BTreeSet, time::Duration};

use crate::config::ModerationSettings;
use anyhow::{bail, Context};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::safety::Category;

/// How long the check may take out of the reply budget.
pub const TIMEOUT: Duration = Duration::from_millis(1000);

/// The moderation API client.
#[derive(Clone)]
pub struct Moderation {
    http: reqwest::Client,
    base_url: String,
    api_key: SecretString,
}

impl std::fmt::Debug for Moderation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Moderation")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Moderation {
    pub fn new(settings: &ModerationSettings) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder().timeout(TIMEOUT).build()?,
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            api_key: settings.api_key.clone(),
        })
    }

    /// The categories the API flags in `text`.
    pub async fn check(&self, text: &str) -> anyhow::Result<BTreeSet<Category>> {
        let response = self
            .http
            .post(format!("{}/moderations", self.base_url))
            .bearer_auth(self.api_key.expose_secret())
            .json(&json!({"model": "omni-moderation-latest", "input": text}))
            .send()
            .await
            .context("calling the moderation API")?;
        if !response.status().is_success() {
            bail!("the moderation API answered {}", response.status().as_u16());
        }
        let payload: Value = response
            .json()
            .await
            .context("reading the moderation answer")?;
        let categories = payload["results"][0]["categories"]
            .as_object()
            .context("a moderation answer without categories")?;
        Ok(categories
            .iter()
            .filter(|(_, flagged)| flagged.as_bool() == Some(true))
            .filter_map(|(name, _)| category_of(name))
            .collect())
    }
}

/// Our category for one of the API's; `None` for those we do not act on (violence in fiction,
/// adult sexual content, harassment without a threat).
fn category_of(name: &str) -> Option<Category> {
    match name {
        "self-harm" | "self-harm/intent" | "self-harm/instructions" => Some(Category::SelfHarm),
        "sexual/minors" => Some(Category::SexualMinors),
        "hate" | "hate/threatening" => Some(Category::Hate),
        "harassment/threatening" => Some(Category::Threats),
        _ => None,
    }
}
