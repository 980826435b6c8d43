//! The product's calendar, read from the environment.

use platform::env::{Env, Lookup};

/// `QUEST_TIME_ZONE`: the IANA zone whose midnight resets daily things (quests, check-ins, the
/// bond cap, the chat quota) and whose Monday midnight resets weekly ones. Default Asia/Seoul.
pub fn quest_time_zone(env: &mut Env<Lookup>) -> chrono_tz::Tz {
    match env.get("QUEST_TIME_ZONE") {
        None => domain::periods::DEFAULT_TIME_ZONE,
        Some(name) => name.trim().parse().unwrap_or_else(|_| {
            env.problem(
                "QUEST_TIME_ZONE",
                "is malformed (expected an IANA zone such as Asia/Seoul)",
            );
            domain::periods::DEFAULT_TIME_ZONE
        }),
    }
}
