//! The bond between an owner and their persona: +1 point per exchange, at most
//! [`DAILY_BOND_CAP`] a day (the day in the quest time zone), and the five levels.

/// Points one day can add.
pub const DAILY_BOND_CAP: i32 = 20;

/// The levels: (points needed, name), lowest first. The level number is the index.
pub const LEVELS: [(i32, &str); 5] = [
    (0, "Stranger"),
    (10, "Acquaintance"),
    (30, "Friend"),
    (60, "Close Friend"),
    (100, "Soulmate"),
];

/// An owner's bond, from their points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bond {
    pub points: i32,
}

impl Bond {
    /// 0 (Stranger) to 4 (Soulmate).
    pub fn level(self) -> u8 {
        LEVELS
            .iter()
            .rposition(|(needed, _)| self.points >= *needed)
            .unwrap_or(0) as u8
    }

    pub fn name(self) -> &'static str {
        LEVELS[usize::from(self.level())].1
    }

    /// Points the next level needs; `None` at the top.
    pub fn next_level_at(self) -> Option<i32> {
        LEVELS
            .get(usize::from(self.level()) + 1)
            .map(|(needed, _)| *needed)
    }
}

/// Whether one more exchange earns a point, given the points already earned today.
pub fn earns_point(earned_today: i32) -> bool {
    earned_today < DAILY_BOND_CAP
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_start_at_their_thresholds() {
        let at = |points| {
            let bond = Bond { points };
            (bond.level(), bond.name())
        };
        assert_eq!(at(0), (0, "Stranger"));
        assert_eq!(at(9), (0, "Stranger"));
        assert_eq!(at(10), (1, "Acquaintance"));
        assert_eq!(at(29), (1, "Acquaintance"));
        assert_eq!(at(30), (2, "Friend"));
        assert_eq!(at(60), (3, "Close Friend"));
        assert_eq!(at(99), (3, "Close Friend"));
        assert_eq!(at(100), (4, "Soulmate"));
        assert_eq!(at(5000), (4, "Soulmate"));
        assert_eq!(Bond { points: 12 }.next_level_at(), Some(30));
        assert_eq!(Bond { points: 100 }.next_level_at(), None);
    }

    #[test]
    fn a_day_earns_at_most_twenty_points() {
        let earned = (0..50).fold(0, |today, _| today + i32::from(earns_point(today)));
        assert_eq!(earned, DAILY_BOND_CAP);
    }
}
