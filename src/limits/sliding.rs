//! Counts per key over fixed windows aligned to the clock, two at a time,
//! in count-min sketches (`CountMin`): fixed memory whatever the number of
//! keys.
//!
//! pingora's own `Rate` starts a new window at the first request after the
//! last one ended, so after a quiet spell a window that ended long ago
//! weighs in full again: a client told to come back in a second would
//! still be refused then. Aligned windows fade out as the clock runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::count_min::CountMin;

/// A slot being cleared for a new window: others wait the few
/// microseconds that takes rather than count into it.
const CLEARING: u64 = u64::MAX;
/// A slot that has held no window yet.
const EMPTY: u64 = u64::MAX - 1;

pub struct SlidingCounts<const ROWS: usize, const SLOTS: usize> {
    slots: [CountMin<ROWS, SLOTS>; 2],
    /// The window each slot counts (`epoch`: windows since `start`).
    epochs: [AtomicU64; 2],
    start: Instant,
    /// In nanoseconds: `u64` holds 584 years of them, and dividing a
    /// `u64` costs a request far less than a `u128`.
    window: u64,
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

impl<const ROWS: usize, const SLOTS: usize> SlidingCounts<ROWS, SLOTS> {
    pub fn new(window: Duration) -> Self {
        SlidingCounts {
            slots: [CountMin::new(), CountMin::new()],
            epochs: [AtomicU64::new(EMPTY), AtomicU64::new(EMPTY)],
            start: Instant::now(),
            window: window.as_nanos().clamp(1_000_000, u128::from(u64::MAX)) as u64,
        }
    }

    /// Counts `cost` against the key hashed to `key` in the window of
    /// `now` (the request's arrival: no clock read of its own).
    pub fn add(&self, key: u64, cost: i64, now: Instant) -> Seen {
        let since = now.saturating_duration_since(self.start).as_nanos() as u64;
        let epoch = since / self.window;
        let elapsed = (since % self.window) as f64 / self.window as f64;
        let current = self.slot(epoch).add(key, cost);
        let previous = match epoch.checked_sub(1) {
            Some(last) if self.epochs[(last % 2) as usize].load(Ordering::Acquire) == last => {
                self.slots[(last % 2) as usize].get(key)
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
    pub fn take_back(&self, key: u64, cost: i64, seen: &Seen) {
        let i = (seen.epoch % 2) as usize;
        if self.epochs[i].load(Ordering::Acquire) == seen.epoch {
            self.slots[i].add(key, -cost);
        }
    }

    /// The estimator of window `epoch`, cleared first if it held an older one.
    fn slot(&self, epoch: u64) -> &CountMin<ROWS, SLOTS> {
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

    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    const OTHER: u64 = 0x2545_f491_4f6c_dd1d;

    #[test]
    fn a_window_fades_as_the_clock_runs_not_when_the_next_request_comes() {
        let counts = SlidingCounts::<4, 64>::new(Duration::from_millis(500));
        for _ in 0..5 {
            counts.add(K, 1, Instant::now());
        }
        // Into the next window: the first is "previous", faded by how far
        // the clock has run into this one, however long nobody asked.
        std::thread::sleep(Duration::from_millis(700));
        let seen = counts.add(K, 1, Instant::now());
        assert_eq!((seen.previous, seen.current), (5, 1), "{seen:?}");
        assert!(seen.elapsed >= 0.35, "{seen:?}");
        // Two windows on, the 5 are gone, and so is the 1.
        std::thread::sleep(Duration::from_millis(1000));
        let seen = counts.add(K, 1, Instant::now());
        assert_eq!((seen.previous, seen.current), (0, 1), "{seen:?}");
    }

    #[test]
    fn taking_back_undoes_an_add() {
        let counts = SlidingCounts::<4, 64>::new(Duration::from_secs(60));
        let seen = counts.add(K, 3, Instant::now());
        counts.take_back(K, 3, &seen);
        assert_eq!(counts.add(K, 1, Instant::now()).current, 1);
        assert_eq!(counts.add(OTHER, 1, Instant::now()).current, 1);
    }
}
