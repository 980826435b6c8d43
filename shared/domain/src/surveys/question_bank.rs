//! The question bank, as versioned domain data. A survey records the version it was created
//! with and is always validated and aggregated against that version, so changing the bank
//! (a new version) never breaks surveys already collecting. Never edit a published version.

use std::sync::LazyLock;

use serde::Serialize;
use utoipa::ToSchema;

use crate::archetypes::Archetype;

/// The version new surveys are created with.
pub const CURRENT_VERSION: i32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stat {
    Charisma,
    Intellect,
    Kindness,
    Energy,
}

/// A question as clients see it (docs/api.md, "Surveys").
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Question {
    pub id: &'static str,
    #[serde(flatten)]
    pub kind: QuestionKind,
    pub prompt: &'static str,
    pub required: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QuestionKind {
    Scale {
        min: u8,
        max: u8,
        min_label: &'static str,
        max_label: &'static str,
        /// Not sent to clients: which stat the answer feeds.
        #[serde(skip)]
        stat: Stat,
    },
    Choice {
        options: Vec<ChoiceOption>,
    },
    Text {
        max_length: usize,
    },
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChoiceOption {
    pub id: &'static str,
    pub label: &'static str,
    /// Not sent to clients: the archetype this option hints at.
    #[serde(skip)]
    pub hints: Archetype,
}

/// One version of the bank.
#[derive(Debug, Clone)]
pub struct QuestionBank {
    pub version: i32,
    pub questions: Vec<Question>,
}

impl QuestionBank {
    pub fn question(&self, id: &str) -> Option<&Question> {
        self.questions.iter().find(|q| q.id == id)
    }
}

/// The bank of `version`, if it exists. Banks never change once published, so each is built
/// once per process and shared (the public survey and every answer read it).
pub fn question_bank(version: i32) -> Option<&'static QuestionBank> {
    static VERSION_1: LazyLock<QuestionBank> = LazyLock::new(version_1);
    match version {
        1 => Some(&VERSION_1),
        _ => None,
    }
}

fn scale(
    id: &'static str,
    prompt: &'static str,
    stat: Stat,
    min_label: &'static str,
    max_label: &'static str,
) -> Question {
    Question {
        id,
        kind: QuestionKind::Scale {
            min: 1,
            max: 5,
            min_label,
            max_label,
            stat,
        },
        prompt,
        required: true,
    }
}

fn option(id: &'static str, label: &'static str, hints: Archetype) -> ChoiceOption {
    ChoiceOption { id, label, hints }
}

fn version_1() -> QuestionBank {
    use Archetype::*;
    QuestionBank {
        version: 1,
        questions: vec![
            scale(
                "charisma_room",
                "When they walk into a room, people notice.",
                Stat::Charisma,
                "Rarely",
                "Always",
            ),
            scale(
                "charisma_story",
                "They can hold a group's attention with a story.",
                Stat::Charisma,
                "Not really",
                "Effortlessly",
            ),
            scale(
                "intellect_curious",
                "They dig into how things work.",
                Stat::Intellect,
                "Not their thing",
                "Constantly",
            ),
            scale(
                "intellect_advice",
                "Their advice on hard problems is sharp.",
                Stat::Intellect,
                "Hit and miss",
                "Spot on",
            ),
            scale(
                "kindness_notice",
                "They notice when someone is having a bad day.",
                Stat::Kindness,
                "Seldom",
                "Every time",
            ),
            scale(
                "kindness_help",
                "They drop everything to help a friend.",
                Stat::Kindness,
                "Rarely",
                "Without asking",
            ),
            scale(
                "energy_plans",
                "They are the one who starts the plans.",
                Stat::Energy,
                "Almost never",
                "Always",
            ),
            scale(
                "energy_late",
                "At 2 a.m. they are still going strong.",
                Stat::Energy,
                "Asleep by ten",
                "Unstoppable",
            ),
            Question {
                id: "first_impression",
                kind: QuestionKind::Choice {
                    options: vec![
                        option(
                            "cold_then_warm",
                            "Cold at first, then secretly sweet",
                            Tsundere,
                        ),
                        option("calm_unreadable", "Calm and hard to read", Kuudere),
                        option("shy_gentle", "Shy and gentle", Dandere),
                        option("warm_open", "Warm and open from the first minute", Deredere),
                    ],
                },
                prompt: "Your first impression of them was…",
                required: true,
            },
            Question {
                id: "in_a_crisis",
                kind: QuestionKind::Choice {
                    options: vec![
                        option(
                            "cheers_everyone",
                            "Cheers everyone up and gets moving",
                            Genki,
                        ),
                        option(
                            "never_leaves",
                            "Never leaves your side, whatever it takes",
                            Yandere,
                        ),
                        option(
                            "takes_charge",
                            "Takes charge and expects the best",
                            Himedere,
                        ),
                        option("has_a_plan", "Already has a brilliant plan", Kamidere),
                    ],
                },
                prompt: "In a crisis, they…",
                required: true,
            },
            Question {
                id: "three_words",
                kind: QuestionKind::Text { max_length: 280 },
                prompt: "Three words for them.",
                required: true,
            },
            Question {
                id: "best_memory",
                kind: QuestionKind::Text { max_length: 280 },
                prompt: "A moment with them you still remember (optional).",
                required: false,
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_has_two_scale_questions_per_stat_and_hints_for_all_eight_archetypes() {
        let bank = question_bank(1).unwrap();
        assert!((10..=15).contains(&bank.questions.len()));
        for stat in [
            Stat::Charisma,
            Stat::Intellect,
            Stat::Kindness,
            Stat::Energy,
        ] {
            let count = bank
                .questions
                .iter()
                .filter(|q| matches!(q.kind, QuestionKind::Scale { stat: s, .. } if s == stat))
                .count();
            assert_eq!(count, 2, "{stat:?}");
        }
        let mut hinted: Vec<Archetype> = bank
            .questions
            .iter()
            .flat_map(|q| match &q.kind {
                QuestionKind::Choice { options } => options.iter().map(|o| o.hints).collect(),
                _ => vec![],
            })
            .collect();
        hinted.sort();
        hinted.dedup();
        assert_eq!(hinted.len(), 8);
        assert!(bank
            .questions
            .iter()
            .any(|q| matches!(q.kind, QuestionKind::Text { max_length: 280 })));
    }

    #[test]
    fn the_client_shape_hides_stats_and_hints() {
        let bank = question_bank(CURRENT_VERSION).unwrap();
        let json = serde_json::to_value(&bank.questions).unwrap();
        assert_eq!(json[0]["kind"], "scale");
        assert_eq!(json[0]["min"], 1);
        assert_eq!(json[0]["max"], 5);
        assert!(json[0].get("stat").is_none());
        assert_eq!(json[8]["kind"], "choice");
        assert!(json[8]["options"][0].get("hints").is_none());
        assert_eq!(json[10]["max_length"], 280);
    }

    #[test]
    fn unknown_versions_do_not_exist() {
        assert!(question_bank(0).is_none());
        assert!(question_bank(2).is_none());
    }
}
