//! The proofs this instance has taken, by a keyed 64-bit hash of their
//! key's thumbprint and `jti`, for as long as a proof is accepted: two
//! generations, the older dropped whole once the newer is a lifetime old.
//! Bounded: a full generation takes no more (the caller refuses).
//!
//! Two proofs alike in that hash are one to the cache: the second is
//! refused as taken, never let through twice. The seed is random, so no
//! client can aim at another's proof; by chance it comes to one proof in
//! 2^64 / (proofs kept), about one in 10^13 with a full cache.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::Mutex;

/// At most this many proofs in one generation (about 18 MiB at most).
pub const CAPACITY: usize = 1 << 20;

/// A generation's room at least: a lifetime's proofs at about 50 a
/// second, taken without growing the set (about 36 KiB).
const ROOM: usize = 3500;

/// What happened to a proof offered to the cache.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    First,
    Again,
    Full,
}

pub struct Replays {
    lifetime: i64,
    seed: foldhash::quality::RandomState,
    generations: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    started: i64,
    current: HashSet<u64, foldhash::fast::FixedState>,
    older: HashSet<u64, foldhash::fast::FixedState>,
}

impl Replays {
    /// Each proof is kept at least `lifetime` seconds.
    pub fn new(lifetime: i64) -> Replays {
        Replays {
            lifetime,
            seed: Default::default(),
            generations: Mutex::default(),
        }
    }

    /// Notes the proof (`thumbprint`, `jti`) at Unix time `now`.
    pub fn offer(&self, thumbprint: &str, jti: &str, now: i64) -> Seen {
        let id = self.seed.hash_one((thumbprint, jti));
        let mut g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        if now - g.started >= self.lifetime {
            // Sized as the last one ended: not grown again proof by proof
            // (its growth cost ~50 instructions a proof under load).
            let size = g.current.len().max(ROOM);
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
