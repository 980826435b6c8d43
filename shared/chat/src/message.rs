//! A message as its owner reads it: who wrote it, where a reply came from, and an exchange (a
//! message, its reply and the bond after them).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Bond;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Persona,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Persona => "persona",
        }
    }
}

/// Where a reply came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The model (the offline voice included).
    Llm,
    /// The in-character fallback: past the budget, an LLM failure, or a refused reply.
    Fallback,
    /// The fixed supportive reply to self-harm content.
    Safety,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Llm => "llm",
            Source::Fallback => "fallback",
            Source::Safety => "safety",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Source::Llm, Source::Fallback, Source::Safety]
            .into_iter()
            .find(|source| source.as_str() == text)
    }
}

/// A message as its owner reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub id: Uuid,
    pub role: Role,
    pub content: String,
    pub created_at: DateTime<Utc>,
    /// `None` for the user's own messages.
    pub source: Option<Source>,
}

/// A message and its reply, and the bond after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub message: ChatMessage,
    pub reply: ChatMessage,
    pub bond: Bond,
}
