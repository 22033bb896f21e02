//! A count-min sketch of fixed size over keys already hashed to a `u64`:
//! each row's slot comes from that one hash (`h1 + row * h2`, Kirsch and
//! Mitzenmacher's double hashing), so counting a request hashes nothing
//! again. pingora-limits' `Estimator` hashes the key once per row, which
//! cost a rate-limited request about 400 instructions more (callgrind).
//!
//! A key's count is the least of its rows' slots: other keys can only
//! raise it (make a key look busier than it is), never lower it.

use std::sync::atomic::{AtomicI64, Ordering};

/// `ROWS` rows of `SLOTS` counters, both fixed when compiled: the rows'
/// loop unrolls and no slot's index is bounds-checked at run time.
pub struct CountMin<const ROWS: usize, const SLOTS: usize> {
    counts: Box<[[AtomicI64; SLOTS]; ROWS]>,
}

impl<const ROWS: usize, const SLOTS: usize> CountMin<ROWS, SLOTS> {
    const MASK: usize = {
        assert!(ROWS > 0 && SLOTS.is_power_of_two());
        SLOTS - 1
    };

    pub fn new() -> Self {
        let rows: Vec<[AtomicI64; SLOTS]> = (0..ROWS)
            .map(|_| std::array::from_fn(|_| AtomicI64::new(0)))
            .collect();
        CountMin {
            counts: rows.into_boxed_slice().try_into().expect("ROWS rows"),
        }
    }

    /// Adds `value` to `hash`'s count; its count after.
    pub fn add(&self, hash: u64, value: i64) -> i64 {
        self.slots(hash)
            .map(|slot| slot.fetch_add(value, Ordering::Relaxed).wrapping_add(value))
            .fold(i64::MAX, i64::min)
    }

    /// `hash`'s count.
    pub fn get(&self, hash: u64) -> i64 {
        self.slots(hash)
            .map(|slot| slot.load(Ordering::Relaxed))
            .fold(i64::MAX, i64::min)
    }

    /// Every count back to zero.
    pub fn reset(&self) {
        for slot in self.counts.iter().flatten() {
            slot.store(0, Ordering::Relaxed);
        }
    }

    fn slots(&self, hash: u64) -> impl Iterator<Item = &AtomicI64> {
        let (h1, h2) = (hash as usize, ((hash >> 32) as usize) | 1);
        self.counts
            .iter()
            .enumerate()
            .map(move |(row, slots)| &slots[h1.wrapping_add(row.wrapping_mul(h2)) & Self::MASK])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn counts_add_up_and_are_taken_back() {
        let sketch = CountMin::<4, 64>::new();
        assert_eq!(sketch.add(1, 3), 3);
        assert_eq!(sketch.add(1, 2), 5);
        assert_eq!(sketch.add(2, 1), 1);
        sketch.add(1, -5);
        assert_eq!(sketch.get(1), 0);
        sketch.reset();
        assert_eq!(sketch.get(2), 0);
    }

    #[test]
    fn a_key_is_never_counted_below_what_it_added() {
        // 2,000 keys in 4 × 64 slots: collisions everywhere, and still
        // no key's estimate below its own count.
        let sketch = CountMin::<4, 64>::new();
        let hasher = foldhash::fast::FixedState::with_seed(7);
        let hashes: Vec<u64> = (0..2000u32).map(|k| hasher.hash_one(k)).collect();
        let own = |n: usize| (n % 5) as i64 + 1;
        for (n, &h) in hashes.iter().enumerate() {
            sketch.add(h, own(n));
        }
        for (n, &h) in hashes.iter().enumerate() {
            assert!(sketch.get(h) >= own(n), "key {n}");
        }
    }

    #[test]
    fn few_keys_in_many_slots_are_counted_exactly() {
        let sketch = CountMin::<4, 4096>::new();
        let hasher = foldhash::fast::FixedState::with_seed(11);
        for k in 0..50u32 {
            sketch.add(hasher.hash_one(k), i64::from(k) + 1);
        }
        let exact = (0..50u32)
            .filter(|&k| sketch.get(hasher.hash_one(k)) == i64::from(k) + 1)
            .count();
        assert_eq!(exact, 50);
    }
}
