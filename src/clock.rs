//! Wall-clock time, read in one place: token expiry, issuance, lockouts,
//! revocation cut-offs. The gateway runs on the system clock; a test that
//! is about expiry sets a clock of its own and moves it.

use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Arc;

use chrono::{DateTime, Utc};

#[derive(Clone, Default)]
pub struct Clock {
    /// `None`: the system clock. Otherwise milliseconds since the epoch.
    set: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock { set: None }
    }

    /// A clock that stands at `at` until moved.
    pub fn fixed(at: DateTime<Utc>) -> Clock {
        Clock {
            set: Some(Arc::new(AtomicI64::new(at.timestamp_millis()))),
        }
    }

    /// Moves a fixed clock (every clone of it) on by `by`; the system clock
    /// cannot be moved.
    pub fn advance(&self, by: std::time::Duration) {
        if let Some(set) = &self.set {
            set.fetch_add(by.as_millis() as i64, Relaxed);
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.set {
            None => Utc::now(),
            Some(set) => DateTime::from_timestamp_millis(set.load(Relaxed)).unwrap_or_default(),
        }
    }

    /// Whole seconds since the epoch, as JWT `exp` and `iat` count them.
    /// Read once per authorized request: the system clock goes straight
    /// to seconds, without a calendar date in between.
    #[inline]
    pub fn unix(&self) -> i64 {
        match &self.set {
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            Some(set) => set.load(Relaxed).div_euclid(1000),
        }
    }

    /// Seconds since the epoch with a fraction, for latencies across instances.
    pub fn unix_f64(&self) -> f64 {
        self.now().timestamp_micros() as f64 / 1e6
    }
}

/// The system clock's whole seconds since the epoch.
pub fn unix_now() -> i64 {
    Clock::system().unix()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_moves_only_when_told_and_every_clone_with_it() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let clock = Clock::fixed(at);
        let seen_by_another = clock.clone();
        assert_eq!(clock.unix(), 1_800_000_000);
        clock.advance(std::time::Duration::from_millis(1_500));
        assert_eq!(seen_by_another.unix(), 1_800_000_001);
        assert_eq!(seen_by_another.unix_f64(), 1_800_000_001.5);
    }

    #[test]
    fn the_system_clock_is_now() {
        let before = Utc::now().timestamp();
        let read = Clock::system().unix();
        assert!(read >= before && read <= Utc::now().timestamp());
    }
}
