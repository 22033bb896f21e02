//! A count-min sketch of fixed size over keys already hashed to a `u64`:
//! each row's slot comes from that one hash (`h1 + row * h2`, Kirsch and
//! Mitzenmacher's double hashing), so counting a request hashes nothing
//! again. pingora-limits' `Estimator` hashes the key once per row, which
//! cost a rate-limited request about 400 instructions more (callgrind).
//!
//! A key's count is the least of its rows' slots: other keys can only
//! raise it (make a key look busier than it is), never lower it.

use std::sync::atomic::{AtomicI64, Ordering};

pub struct CountMin {
    /// `rows` rows of `mask + 1` slots each, one after the other.
    counts: Box<[AtomicI64]>,
    rows: usize,
    mask: usize,
}

impl CountMin {
    /// `rows` rows of `slots` slots (rounded up to a power of two).
    pub fn new(rows: usize, slots: usize) -> CountMin {
        let slots = slots.max(1).next_power_of_two();
        CountMin {
            counts: (0..rows.max(1) * slots)
                .map(|_| AtomicI64::new(0))
                .collect(),
            rows: rows.max(1),
            mask: slots - 1,
        }
    }

    /// Adds `value` to `hash`'s count; its count after.
    pub fn add(&self, hash: u64, value: i64) -> i64 {
        self.slots(hash)
            .map(|slot| slot.fetch_add(value, Ordering::Relaxed).wrapping_add(value))
            .min()
            .unwrap_or(0)
    }

    /// `hash`'s count.
    pub fn get(&self, hash: u64) -> i64 {
        self.slots(hash)
            .map(|slot| slot.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    /// Every count back to zero.
    pub fn reset(&self) {
        for slot in self.counts.iter() {
            slot.store(0, Ordering::Relaxed);
        }
    }

    fn slots(&self, hash: u64) -> impl Iterator<Item = &AtomicI64> {
        let (h1, h2) = (hash as usize, ((hash >> 32) as usize) | 1);
        let width = self.mask + 1;
        (0..self.rows).map(move |row| {
            let column = h1.wrapping_add(row.wrapping_mul(h2)) & self.mask;
            &self.counts[row * width + column]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn counts_add_up_and_are_taken_back() {
        let sketch = CountMin::new(4, 64);
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
        let sketch = CountMin::new(4, 64);
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
        let sketch = CountMin::new(4, 4096);
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
