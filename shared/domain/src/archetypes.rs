//! The fixed set of eight persona archetypes (docs/architecture.md).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Archetype {
    Tsundere,
    Kuudere,
    Dandere,
    Deredere,
    Genki,
    Yandere,
    Himedere,
    Kamidere,
}

impl Archetype {
    pub const ALL: [Archetype; 8] = [
        Archetype::Tsundere,
        Archetype::Kuudere,
        Archetype::Dandere,
        Archetype::Deredere,
        Archetype::Genki,
        Archetype::Yandere,
        Archetype::Himedere,
        Archetype::Kamidere,
    ];

    /// The display name.
    pub fn name(self) -> &'static str {
        match self {
            Archetype::Tsundere => "Tsundere",
            Archetype::Kuudere => "Kuudere",
            Archetype::Dandere => "Dandere",
            Archetype::Deredere => "Deredere",
            Archetype::Genki => "Genki",
            Archetype::Yandere => "Yandere",
            Archetype::Himedere => "Himedere",
            Archetype::Kamidere => "Kamidere",
        }
    }

    /// One sentence on how friends see this type.
    pub fn description(self) -> &'static str {
        match self {
            Archetype::Tsundere => "Prickly on the outside, fiercely caring underneath.",
            Archetype::Kuudere => "Calm, composed and quietly warm once you earn it.",
            Archetype::Dandere => "Shy and soft-spoken, with a rich inner world.",
            Archetype::Deredere => "Openly affectionate sunshine who lifts every room.",
            Archetype::Genki => "Boundless energy, first to start the adventure.",
            Archetype::Yandere => "Devoted with an intensity that never lets go.",
            Archetype::Himedere => "Regal, expects the best and brings out the best.",
            Archetype::Kamidere => "Brilliant, confident, certain they know the way.",
        }
    }

    /// Stat signature: (charisma, intellect, kindness, energy), each 0-100.
    pub fn signature(self) -> [u8; 4] {
        match self {
            Archetype::Tsundere => [60, 60, 55, 70],
            Archetype::Kuudere => [50, 80, 50, 35],
            Archetype::Dandere => [30, 65, 75, 30],
            Archetype::Deredere => [75, 50, 90, 70],
            Archetype::Genki => [70, 45, 65, 95],
            Archetype::Yandere => [55, 60, 70, 75],
            Archetype::Himedere => [85, 60, 40, 60],
            Archetype::Kamidere => [80, 90, 40, 60],
        }
    }
}
