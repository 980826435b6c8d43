//! Compatibility between two personas (SPEC "Social"): a score 0–100, a label, a per-stat
//! breakdown and a few human reasons. Pure and deterministic; the score and label are symmetric
//! (swapping the two personas changes only which side is "mine").
//!
//! `score = clamp(round(100 − Σ wᵢ·|Δstatᵢ|) + affinity, 0, 100)` where
//! - `wᵢ` is the mean of the two archetypes' [`stat_weights`] (each archetype's four weights sum
//!   to 0.60, so the stat term costs at most 60 points, and only when every stat is 100 apart);
//! - `affinity` comes from the symmetric 8x8 table [`AFFINITIES`] (−15 to +15), one entry per
//!   unordered pair with the reason it scores as it does.
//!
//! All arithmetic is in integers (weights in hundredths), so no rounding differs between the
//! two orders of a pair.

mod affinity;
mod reasons;

use serde::Serialize;
use utoipa::ToSchema;

use crate::{archetypes::Archetype, surveys::Stat, synthesis::Stats};

pub use affinity::{affinity, stat_weights, Affinity, AFFINITIES};
use reasons::reasons;

/// The four stats in the order [`Stats::as_array`] gives them.
pub const STATS: [Stat; 4] = [
    Stat::Charisma,
    Stat::Intellect,
    Stat::Kindness,
    Stat::Energy,
];

/// The four bands of the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Label {
    /// 80–100.
    Harmonic,
    /// 60–79.
    Balanced,
    /// 40–59.
    Challenging,
    /// 0–39.
    Mirror,
}

impl Label {
    /// The band `score` (0–100) falls in.
    pub fn of(score: u8) -> Self {
        match score {
            80.. => Label::Harmonic,
            60..=79 => Label::Balanced,
            40..=59 => Label::Challenging,
            _ => Label::Mirror,
        }
    }

    fn summary(self) -> &'static str {
        match self {
            Label::Harmonic => "Overall you are in tune: the kind of pair that just clicks.",
            Label::Balanced => {
                "Overall you balance each other: different enough to stay interesting."
            }
            Label::Challenging => {
                "Overall it takes work: your differences will test you, and teach you."
            }
            Label::Mirror => {
                "Overall you reflect each other's sharp edges: a bond that needs care."
            }
        }
    }
}

/// One side of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Side {
    pub archetype: Archetype,
    pub stats: Stats,
}

/// How one stat contributed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StatBreakdown {
    pub stat: Stat,
    #[schema(maximum = 100)]
    pub mine: u8,
    #[schema(maximum = 100)]
    pub theirs: u8,
    /// `|mine − theirs|`.
    #[schema(maximum = 100)]
    pub gap: u8,
    /// Points lost per point of gap (the mean of both archetypes' weights).
    pub weight: f64,
    /// Points this stat takes off the score (`weight · gap`, before the total is rounded).
    pub penalty: f64,
}

/// The archetype term.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AffinityBreakdown {
    pub mine: Archetype,
    pub theirs: Archetype,
    /// Added to the score (−15 to +15).
    #[schema(minimum = -15, maximum = 15)]
    pub points: i32,
}

/// Where the score came from.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Breakdown {
    pub stats: Vec<StatBreakdown>,
    pub affinity: AffinityBreakdown,
}

/// A comparison's result.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Compatibility {
    /// 0–100.
    #[schema(maximum = 100)]
    pub score: u8,
    pub label: Label,
    pub breakdown: Breakdown,
    /// Two to four sentences, addressed to `mine`'s owner.
    pub reasons: Vec<String>,
}

/// The score alone: symmetric in its arguments.
pub fn score(mine: Side, theirs: Side) -> u8 {
    let (penalty_hundredths, _) = penalties(mine, theirs);
    // Weights are in hundredths and averaged over two archetypes: the penalty is in 1/200 points.
    let penalty = (penalty_hundredths + 100) / 200;
    let points = 100 - penalty as i32 + affinity(mine.archetype, theirs.archetype).points;
    points.clamp(0, 100) as u8
}

/// Σ (w_mine + w_theirs)·gap in 1/200 points, and the per-stat combined weights and gaps.
fn penalties(mine: Side, theirs: Side) -> (u32, [(u32, u8); 4]) {
    let weights_mine = stat_weights(mine.archetype);
    let weights_theirs = stat_weights(theirs.archetype);
    let (a, b) = (mine.stats.as_array(), theirs.stats.as_array());
    let mut per_stat = [(0, 0); 4];
    let mut total = 0;
    for i in 0..4 {
        let weight = weights_mine[i] + weights_theirs[i];
        let gap = a[i].abs_diff(b[i]);
        per_stat[i] = (weight, gap);
        total += weight * u32::from(gap);
    }
    (total, per_stat)
}

/// Compares `mine` with `theirs`: the score, its label, where it came from and why.
pub fn compare(mine: Side, theirs: Side) -> Compatibility {
    let score = score(mine, theirs);
    let label = Label::of(score);
    let (_, per_stat) = penalties(mine, theirs);
    let (a, b) = (mine.stats.as_array(), theirs.stats.as_array());
    let stats = STATS
        .iter()
        .enumerate()
        .map(|(i, stat)| {
            let (weight, gap) = per_stat[i];
            StatBreakdown {
                stat: *stat,
                mine: a[i],
                theirs: b[i],
                gap,
                weight: f64::from(weight) / 200.0,
                penalty: f64::from(weight * u32::from(gap)) / 200.0,
            }
        })
        .collect::<Vec<_>>();
    let entry = affinity(mine.archetype, theirs.archetype);
    let reasons = reasons(&stats, entry, label);
    Compatibility {
        score,
        label,
        breakdown: Breakdown {
            stats,
            affinity: AffinityBreakdown {
                mine: mine.archetype,
                theirs: theirs.archetype,
                points: entry.points,
            },
        },
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::archetypes::Archetype::{
        Deredere as Der, Genki as Gen, Himedere as Him, Kuudere as Kuu, Tsundere as Tsu,
        Yandere as Yan,
    };

    fn side(archetype: Archetype, [charisma, intellect, kindness, energy]: [u8; 4]) -> Side {
        Side {
            archetype,
            stats: Stats {
                charisma,
                intellect,
                kindness,
                energy,
            },
        }
    }

    fn any_side() -> impl Strategy<Value = Side> {
        (
            prop::sample::select(Archetype::ALL.to_vec()),
            prop::array::uniform4(0u8..=100),
        )
            .prop_map(|(archetype, stats)| side(archetype, stats))
    }

    #[test]
    fn the_affinity_table_holds_every_unordered_pair_exactly_once() {
        for a in Archetype::ALL {
            for b in Archetype::ALL {
                let entries = AFFINITIES
                    .iter()
                    .filter(|e| (e.a, e.b) == (a, b) || (e.a, e.b) == (b, a))
                    .count();
                assert_eq!(entries, 1, "{a:?} and {b:?}");
            }
        }
    }

    #[test]
    fn affinities_and_weights_stay_in_their_documented_ranges() {
        for entry in AFFINITIES {
            assert!((-15..=15).contains(&entry.points), "{entry:?}");
            assert!(!entry.why.is_empty());
        }
        for archetype in Archetype::ALL {
            assert_eq!(
                stat_weights(archetype).iter().sum::<u32>(),
                60,
                "{archetype:?}"
            );
        }
    }

    #[test]
    fn labels_change_exactly_at_the_band_boundaries() {
        let cases = [
            (0, Label::Mirror),
            (39, Label::Mirror),
            (40, Label::Challenging),
            (59, Label::Challenging),
            (60, Label::Balanced),
            (79, Label::Balanced),
            (80, Label::Harmonic),
            (100, Label::Harmonic),
        ];
        for (score, label) in cases {
            assert_eq!(Label::of(score), label, "score {score}");
        }
    }

    #[test]
    fn identical_stats_score_100_plus_the_affinity() {
        let stats = [60, 60, 60, 60];
        assert_eq!(score(side(Tsu, stats), side(Der, stats)), 100);
        assert_eq!(score(side(Him, stats), side(Him, stats)), 85);
    }

    #[test]
    fn the_score_follows_the_formula() {
        // Genki [15,5,15,25] and Kuudere [10,25,10,15]: combined weights /200 = .125 .15 .125 .2
        // Gaps 20, 10, 0, 60 → 2.5 + 1.5 + 0 + 12 = 16 points; affinity 0.
        let genki = side(Gen, [70, 40, 60, 90]);
        let kuudere = side(Kuu, [50, 50, 60, 30]);
        let result = compare(genki, kuudere);
        assert_eq!(result.score, 84);
        assert_eq!(result.label, Label::Harmonic);
        assert_eq!(result.breakdown.stats[3].gap, 60);
        assert_eq!(result.breakdown.stats[3].penalty, 12.0);
        assert_eq!(result.breakdown.affinity.points, 0);
    }

    #[test]
    fn opposite_extremes_of_clashing_types_are_a_mirror() {
        let result = compare(side(Him, [0, 0, 0, 0]), side(Yan, [100, 100, 100, 100]));
        assert_eq!(result.score, 100 - 60 - 5);
        assert_eq!(result.label, Label::Mirror);
    }

    #[test]
    fn every_band_boundary_is_reached_and_labelled_by_its_band() {
        // Every archetype pair, with one stat gap swept over 0..=100 and the other three at
        // 0 or 100 apart: enough to reach both sides of each boundary.
        let mut reached = std::collections::BTreeMap::new();
        for a in Archetype::ALL {
            for b in Archetype::ALL {
                for others in [0u8, 100] {
                    for gap in 0..=100u8 {
                        let mine = side(a, [gap, others, others, others]);
                        let theirs = side(b, [0, 0, 0, 0]);
                        let result = compare(mine, theirs);
                        reached.insert(result.score, result.label);
                    }
                }
            }
        }
        for (score, label) in [
            (39, Label::Mirror),
            (40, Label::Challenging),
            (59, Label::Challenging),
            (60, Label::Balanced),
            (79, Label::Balanced),
            (80, Label::Harmonic),
        ] {
            assert_eq!(reached.get(&score), Some(&label), "score {score}");
        }
    }

    #[test]
    fn reasons_name_the_pair_the_closest_stat_and_the_widest_gap() {
        let result = compare(side(Gen, [70, 40, 60, 90]), side(Kuu, [50, 50, 60, 30]));
        assert_eq!(result.reasons.len(), 4);
        assert_eq!(result.reasons[0], affinity(Gen, Kuu).why);
        assert!(
            result.reasons[1].contains("kindness"),
            "{:?}",
            result.reasons
        );
        assert!(
            result.reasons[2].starts_with("Energy"),
            "{:?}",
            result.reasons
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_score_is_between_0_and_100_and_symmetric(mine in any_side(), theirs in any_side()) {
            let forward = compare(mine, theirs);
            let backward = compare(theirs, mine);
            prop_assert!(forward.score <= 100);
            prop_assert_eq!(forward.score, backward.score);
            prop_assert_eq!(forward.label, backward.label);
            prop_assert_eq!(forward.score, score(mine, theirs));
        }

        #[test]
        fn the_label_is_the_band_of_the_score(mine in any_side(), theirs in any_side()) {
            let result = compare(mine, theirs);
            let band = match result.score {
                80..=100 => Label::Harmonic,
                60..=79 => Label::Balanced,
                40..=59 => Label::Challenging,
                _ => Label::Mirror,
            };
            prop_assert_eq!(result.label, band);
        }

        #[test]
        fn there_are_two_to_four_reasons(mine in any_side(), theirs in any_side()) {
            let reasons = compare(mine, theirs).reasons;
            prop_assert!((2..=4).contains(&reasons.len()), "{:?}", reasons);
        }

        #[test]
        fn the_same_inputs_always_give_the_same_result(mine in any_side(), theirs in any_side()) {
            prop_assert_eq!(compare(mine, theirs), compare(mine, theirs));
        }
    }
}
