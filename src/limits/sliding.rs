//! Counts per key over fixed windows aligned to the clock, two at a time,
//! in pingora-limits' count-min `Estimator`s: fixed memory whatever the
//! number of keys.
//!
//! pingora's own `Rate` starts a new window at the first request after the
//! last one ended, so after a quiet spell a window that ended long ago
//! weighs in full again: a client told to come back in a second would
//! still be refused then. Aligned windows fade out as the clock runs.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pingora_limits::estimator::Estimator;

/// A slot being cleared for a new window: others wait the few
/// microseconds that takes rather than count into it.
const CLEARING: u64 = u64::MAX;
/// A slot that has held no window yet.
const EMPTY: u64 = u64::MAX - 1;

pub struct SlidingCounts {
    slots: [Estimator; 2],
    /// The window each slot counts (`epoch`: windows since `start`).
    epochs: [AtomicU64; 2],
    start: Instant,
    window: Duration,
}

/// What `add` saw: the counts the estimate is made of.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub previous: i64,
    /// With the request just added.
    pub current: i64,
    /// How far the current window has run, 0.0 to 1.0.
    pub elapsed: f64,
    epoch: u64,
}

impl SlidingCounts {
    pub fn new(window: Duration, hashes: usize, slots: usize) -> SlidingCounts {
        SlidingCounts {
            slots: [Estimator::new(hashes, slots), Estimator::new(hashes, slots)],
            epochs: [AtomicU64::new(EMPTY), AtomicU64::new(EMPTY)],
            start: Instant::now(),
            window: window.max(Duration::from_millis(1)),
        }
    }

    /// Counts `cost` against `key` in the current window.
    pub fn add<K: Hash>(&self, key: &K, cost: i64) -> Seen {
        let since = self.start.elapsed().as_nanos();
        let window = self.window.as_nanos();
        let epoch = (since / window) as u64;
        let elapsed = (since % window) as f64 / window as f64;
        let current = self.slot(epoch).incr(key, cost as isize) as i64;
        let previous = match epoch.checked_sub(1) {
            Some(last) if self.epochs[(last % 2) as usize].load(Ordering::Acquire) == last => {
                self.slots[(last % 2) as usize].get(key) as i64
            }
            _ => 0,
        };
        Seen {
            previous,
            current,
            elapsed,
            epoch,
        }
    }

    /// Takes back what `add` counted, if its window is still kept.
    pub fn take_back<K: Hash>(&self, key: &K, cost: i64, seen: &Seen) {
        let i = (seen.epoch % 2) as usize;
        if self.epochs[i].load(Ordering::Acquire) == seen.epoch {
            self.slots[i].decr(key, cost as isize);
        }
    }

    /// The estimator of window `epoch`, cleared first if it held an older one.
    fn slot(&self, epoch: u64) -> &Estimator {
        let i = (epoch % 2) as usize;
        loop {
            match self.epochs[i].load(Ordering::Acquire) {
                held if held == epoch => return &self.slots[i],
                // Another request is clearing it.
                CLEARING => std::hint::spin_loop(),
                // A later window took it while this request crossed the
                // boundary: count it there.
                held if held != EMPTY && held > epoch => return &self.slots[i],
                held => {
                    let claimed = self.epochs[i]
                        .compare_exchange(held, CLEARING, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok();
                    if claimed {
                        self.slots[i].reset();
                        self.epochs[i].store(epoch, Ordering::Release);
                        return &self.slots[i];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_fades_as_the_clock_runs_not_when_the_next_request_comes() {
        let counts = SlidingCounts::new(Duration::from_millis(500), 4, 64);
        for _ in 0..5 {
            counts.add(&"k", 1);
        }
        // Into the next window: the first is "previous", faded by how far
        // the clock has run into this one, however long nobody asked.
        std::thread::sleep(Duration::from_millis(700));
        let seen = counts.add(&"k", 1);
        assert_eq!((seen.previous, seen.current), (5, 1), "{seen:?}");
        assert!(seen.elapsed >= 0.35, "{seen:?}");
        // Two windows on, the 5 are gone, and so is the 1.
        std::thread::sleep(Duration::from_millis(1000));
        let seen = counts.add(&"k", 1);
        assert_eq!((seen.previous, seen.current), (0, 1), "{seen:?}");
    }

    #[test]
    fn taking_back_undoes_an_add() {
        let counts = SlidingCounts::new(Duration::from_secs(60), 4, 64);
        let seen = counts.add(&"k", 3);
        counts.take_back(&"k", 3, &seen);
        assert_eq!(counts.add(&"k", 1).current, 1);
        assert_eq!(counts.add(&"other", 1).current, 1);
    }
}
