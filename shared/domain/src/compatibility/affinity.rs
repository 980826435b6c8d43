//! The archetype side of compatibility: how much each stat gap matters to an archetype
//! ([`stat_weights`]) and the affinity of every unordered pair of archetypes ([`AFFINITIES`]).

use crate::archetypes::Archetype;

/// How much a gap in each stat (charisma, intellect, kindness, energy) matters to an archetype,
/// in hundredths of a point per point of gap. Each row sums to 60.
pub fn stat_weights(archetype: Archetype) -> [u32; 4] {
    match archetype {
        // Hides warmth behind sparring: needs a match in energy and, underneath, in kindness.
        Archetype::Tsundere => [10, 10, 20, 20],
        // Connects through the mind; a fast talker or an overwhelming energy drains them.
        Archetype::Kuudere => [10, 25, 10, 15],
        // Quiet and gentle: kindness matters most, then a pace they can keep up with.
        Archetype::Dandere => [5, 15, 25, 15],
        // Affection is their language: kindness first, charm and energy after.
        Archetype::Deredere => [15, 5, 25, 15],
        // Lives at full speed: an energy gap is felt every day.
        Archetype::Genki => [15, 5, 15, 25],
        // Devotion and intensity: kindness and energy have to be returned in kind.
        Archetype::Yandere => [10, 5, 20, 25],
        // Presence and poise: a charisma gap shows at once.
        Archetype::Himedere => [25, 10, 15, 10],
        // Brilliance and command: intellect and charisma are what they measure people by.
        Archetype::Kamidere => [20, 25, 5, 10],
    }
}

/// One unordered pair of archetypes, its affinity points and why.
#[derive(Debug, Clone, Copy)]
pub struct Affinity {
    pub a: Archetype,
    pub b: Archetype,
    /// Added to the score, −15 to +15.
    pub points: i32,
    /// Why the pair scores as it does; also the first reason shown to users.
    pub why: &'static str,
}

const fn pair(a: Archetype, b: Archetype, points: i32, why: &'static str) -> Affinity {
    Affinity { a, b, points, why }
}

use Archetype::{
    Dandere as Dan, Deredere as Der, Genki as Gen, Himedere as Him, Kamidere as Kam,
    Kuudere as Kuu, Tsundere as Tsu, Yandere as Yan,
};

/// The 8x8 archetype affinity table: each of the 36 unordered pairs once (a test checks it).
/// Positive where the two types complete each other, negative where their needs collide.
#[rustfmt::skip]
pub const AFFINITIES: [Affinity; 36] = [
    pair(Tsu, Tsu, -5, "Two guarded hearts: plenty of sparks, but both wait for the other to admit they care."),
    pair(Tsu, Kuu, 5, "A calm kuudere takes the sting out of a tsundere's barbs."),
    pair(Tsu, Dan, 5, "The tsundere speaks up for the dandere, who quietly sees the softness underneath."),
    pair(Tsu, Der, 15, "The classic pairing: open deredere warmth melts tsundere armour."),
    pair(Tsu, Gen, 5, "Both run hot, and the genki's cheer turns the tsundere's teasing into a game."),
    pair(Tsu, Yan, -10, "Pride meets possessiveness: denial and jealousy feed each other."),
    pair(Tsu, Him, -5, "Two proud hearts, each waiting for the other to bend first."),
    pair(Tsu, Kam, 0, "Equal parts respect and rivalry; neither gives ground easily."),
    pair(Kuu, Kuu, 0, "Quiet understanding, though two calm surfaces can leave feelings unspoken."),
    pair(Kuu, Dan, 10, "Two quiet souls who are comfortable sharing a silence."),
    pair(Kuu, Der, 10, "The deredere draws the kuudere out; the kuudere steadies the deredere."),
    pair(Kuu, Gen, 0, "Opposite tempos: the genki pulls, the kuudere anchors, and it works with patience."),
    pair(Kuu, Yan, -5, "Kuudere reserve reads as distance, which unsettles a yandere's need for closeness."),
    pair(Kuu, Him, 0, "Cool composure meets regal expectations: polite, rarely close."),
    pair(Kuu, Kam, 10, "Minds that meet: both prize competence and a cool head."),
    pair(Dan, Dan, 0, "Gentle and safe, but each waits for the other to speak first."),
    pair(Dan, Der, 15, "Deredere openness gives a dandere room to bloom."),
    pair(Dan, Gen, 5, "The genki brings the dandere on adventures; the dandere is the genki's calm harbour."),
    pair(Dan, Yan, -10, "Yandere intensity can overwhelm a dandere's quiet."),
    pair(Dan, Him, -5, "The himedere commands and the dandere complies: comfortable for one of them only."),
    pair(Dan, Kam, -5, "Kamidere certainty can drown out a dandere's voice."),
    pair(Der, Der, 10, "Double sunshine: warm, easy and endlessly encouraging."),
    pair(Der, Gen, 15, "Two bright spirits that feed each other's joy."),
    pair(Der, Yan, 5, "Devotion returned in full: sweet, if sometimes smothering."),
    pair(Der, Him, 5, "The deredere happily adores and the himedere happily accepts."),
    pair(Der, Kam, 5, "The deredere softens the kamidere's edges; the kamidere gives direction."),
    pair(Gen, Gen, 5, "Nonstop adventure: tiring for everyone around them, never for each other."),
    pair(Gen, Yan, -5, "A genki's wide circle of friends sets off a yandere's jealousy."),
    pair(Gen, Him, 0, "The himedere wants an audience and the genki brings the party: fun, if fickle."),
    pair(Gen, Kam, -5, "Kamidere plans meet genki impulses head-on."),
    pair(Yan, Yan, -15, "Two all-consuming devotions: intense, and rarely healthy."),
    pair(Yan, Him, -5, "The himedere expects worship and the yandere offers it, then wants to own it."),
    pair(Yan, Kam, -10, "Control meets control: kamidere certainty clashes with a yandere's grip."),
    pair(Him, Him, -15, "Two thrones in one room: each expects to be served."),
    pair(Him, Kam, -10, "Both expect to lead, and the question of who rules never settles."),
    pair(Kam, Kam, -10, "Two people who are always right: the debate never ends."),
];

/// The table entry of an unordered pair.
pub fn affinity(a: Archetype, b: Archetype) -> &'static Affinity {
    AFFINITIES
        .iter()
        .find(|entry| (entry.a, entry.b) == (a, b) || (entry.a, entry.b) == (b, a))
        .expect("the table holds every pair (checked by a test)")
}
