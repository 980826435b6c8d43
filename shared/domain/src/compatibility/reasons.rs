//! The human reasons of a comparison: the pair's affinity, the closest stat, the widest gap
//! when it matters, and the band.

use super::{Affinity, Label, StatBreakdown};
use crate::surveys::Stat;

/// The archetype reason, the closest stat, the widest gap when it matters, and the band.
pub(super) fn reasons(stats: &[StatBreakdown], entry: &Affinity, label: Label) -> Vec<String> {
    let mut reasons = vec![entry.why.to_owned()];
    // Ties go to the first stat in the fixed order, so both sides of a pair get the same pick.
    let closest = stats.iter().min_by_key(|s| s.gap).expect("four stats");
    let widest = stats
        .iter()
        .rev()
        .max_by_key(|s| s.gap)
        .expect("four stats");
    reasons.push(if closest.gap <= 10 {
        format!(
            "You see eye to eye on {} ({} and {}).",
            stat_name(closest.stat),
            closest.mine,
            closest.theirs
        )
    } else {
        format!(
            "Your closest match is {}, still {} points apart.",
            stat_name(closest.stat),
            closest.gap
        )
    });
    if widest.gap >= 20 && widest.stat != closest.stat {
        reasons.push(format!(
            "{} is where you differ most ({} and {}): {}",
            capitalized(stat_name(widest.stat)),
            widest.mine,
            widest.theirs,
            gap_meaning(widest.stat)
        ));
    }
    reasons.push(label.summary().to_owned());
    reasons
}

fn stat_name(stat: Stat) -> &'static str {
    match stat {
        Stat::Charisma => "charisma",
        Stat::Intellect => "intellect",
        Stat::Kindness => "kindness",
        Stat::Energy => "energy",
    }
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// What a wide gap in `stat` feels like day to day.
fn gap_meaning(stat: Stat) -> &'static str {
    match stat {
        Stat::Charisma => "one of you takes the stage while the other prefers the audience.",
        Stat::Intellect => {
            "one of you wants to debate ideas while the other would rather live them."
        }
        Stat::Kindness => "one of you leads with the heart, the other with honesty.",
        Stat::Energy => "one of you wants to go out while the other wants to recharge.",
    }
}
