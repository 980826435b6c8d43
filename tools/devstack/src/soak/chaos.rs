//! The soak's disorder, reproducible from its seed: the generator behind the shuffles, copy
//! counts and crash choices, and the crashes injected at the saga's step boundaries.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use platform::worker::StepError;
use saga::{FaultPoint, Faults};
use uuid::Uuid;

/// SplitMix64: a tiny deterministic generator (shuffles and coin flips need no more).
pub(super) struct Random(pub(super) u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(super) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// Crashes each persona's step once at the boundaries chosen for it.
pub(super) fn crashes(seed: u64, count: Arc<AtomicUsize>) -> Faults {
    let fired = Arc::new(Mutex::new(HashSet::<(Uuid, FaultPoint)>::new()));
    Faults::inject_per_persona(move |point, persona| {
        let chosen =
            Random(seed ^ persona.as_u64_pair().0 ^ persona.as_u64_pair().1 ^ point as u64)
                .below(3)
                == 0;
        if chosen
            && fired
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((persona, point))
        {
            count.fetch_add(1, Ordering::Relaxed);
            return Err(StepError::Retryable {
                error: anyhow::anyhow!("injected crash at {point:?}"),
                after: Some(Duration::ZERO),
            });
        }
        Ok(())
    })
}
