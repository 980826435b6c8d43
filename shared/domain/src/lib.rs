//! Re:MirAI's domain: pure types and rules, no I/O. Archetypes, the survey question bank and
//! answer validation live here so every entry point (HTTP, workers, tests) shares one truth.

pub mod archetypes;
pub mod compatibility;
pub mod moderation;
pub mod periods;
pub mod personas;
pub mod quests;
pub mod reports;
pub mod shares;
pub mod surveys;
pub mod synthesis;
pub mod text;
