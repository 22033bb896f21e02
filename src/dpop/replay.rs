//! The proofs this instance has taken, by a keyed 128-bit hash of their
//! key's thumbprint and `jti`, for as long as a proof is accepted: two
//! generations, the older dropped whole once the newer is a lifetime old.
//! Bounded: a full generation takes no more (the caller refuses).

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::Mutex;

/// At most this many proofs in one generation (about 32 MiB at most).
pub const CAPACITY: usize = 1 << 20;

/// What happened to a proof offered to the cache.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    First,
    Again,
    Full,
}

pub struct Replays {
    lifetime: i64,
    seeds: (
        foldhash::quality::RandomState,
        foldhash::quality::RandomState,
    ),
    generations: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    started: i64,
    current: HashSet<u128, foldhash::fast::FixedState>,
    older: HashSet<u128, foldhash::fast::FixedState>,
}

impl Replays {
    /// Each proof is kept at least `lifetime` seconds.
    pub fn new(lifetime: i64) -> Replays {
        Replays {
            lifetime,
            seeds: Default::default(),
            generations: Mutex::default(),
        }
    }

    /// Notes the proof (`thumbprint`, `jti`) at Unix time `now`.
    pub fn offer(&self, thumbprint: &str, jti: &str, now: i64) -> Seen {
        let id = (u128::from(self.seeds.0.hash_one((thumbprint, jti))) << 64)
            | u128::from(self.seeds.1.hash_one((thumbprint, jti)));
        let mut g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        if now - g.started >= self.lifetime {
            // Sized as the last one ended: not grown again proof by proof
            // (its growth cost ~50 instructions a proof under load).
            let size = g.current.len();
            let next = HashSet::with_capacity_and_hasher(size, Default::default());
            g.older = std::mem::replace(&mut g.current, next);
            g.started = now;
        }
        if g.older.contains(&id) || g.current.contains(&id) {
            return Seen::Again;
        }
        if g.current.len() >= CAPACITY {
            return Seen::Full;
        }
        g.current.insert(id);
        Seen::First
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_is_taken_once_for_at_least_its_lifetime() {
        let r = Replays::new(60);
        assert_eq!(r.offer("k", "1", 1000), Seen::First);
        assert_eq!(r.offer("k", "1", 1000), Seen::Again);
        assert_eq!(r.offer("other key", "1", 1000), Seen::First);
        assert_eq!(r.offer("k", "2", 1059), Seen::First);
        assert_eq!(
            r.offer("k", "1", 1060),
            Seen::Again,
            "in the older generation"
        );
        assert_eq!(r.offer("k", "2", 1118), Seen::Again);
        assert_eq!(r.offer("k", "1", 1120), Seen::First, "past two lifetimes");
    }
}
