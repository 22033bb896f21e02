//! A token bucket read off a sliding-window count, with no I/O.
//!
//! A limit of `requests` per `per` with `burst` more is a bucket of
//! `requests + burst` refilled at `requests / per`. Counted over a sliding
//! window of `per × (requests + burst) / requests` (the time the bucket takes
//! to refill from empty) the two agree: a quiet key may send the whole
//! bucket at once, and then as many requests as drained from the window.
//!
//! The window's count is estimated from two fixed windows, as pingora's
//! `Rate` keeps them: the previous one weighted by how much of it the
//! sliding window still covers, plus the current one.
//!
//! Counts are in units, not requests: a request costs `SCALE / own` units,
//! where `own` is the key's own `requests` (an override's, or the limit's),
//! so one estimator serves keys of different quotas in the same window.

use std::time::Duration;

use crate::config::RateLimit;

/// Units per request at a quota of one request per window.
const SCALE: i64 = 1 << 30;
const MAX_REQUESTS: u32 = RateLimit::MAX_REQUESTS;

/// One limit's window and capacity, fixed for its lifetime.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub window: Duration,
    /// Units the window may hold: `requests + burst` requests at the limit's own quota.
    capacity: i64,
    requests: u32,
    burst: u32,
}

/// What one request found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub admitted: bool,
    /// Requests the key could still send at once.
    pub remaining: u64,
    /// Until the key's bucket is full again.
    pub reset: Duration,
    /// Until one more request would be admitted (refused requests only).
    pub retry_after: Duration,
}

impl Bucket {
    pub fn new(limit: &RateLimit) -> Bucket {
        let (r, b) = (i64::from(limit.requests.max(1)), i64::from(limit.burst));
        Bucket {
            window: limit.per.mul_f64((r + b) as f64 / r as f64),
            capacity: SCALE * (r + b) / r,
            requests: limit.requests.max(1),
            burst: limit.burst,
        }
    }

    /// Units one request costs a key allowed `own` requests per window.
    pub fn cost(&self, own: u32) -> i64 {
        let own = own.clamp(1, MAX_REQUESTS);
        // A key with the limit's own quota pays exactly `capacity / (r + b)`.
        if own == self.requests {
            return SCALE / i64::from(own);
        }
        (SCALE + i64::from(own) - 1) / i64::from(own)
    }

    /// Judges a request whose `cost` is already counted in `current`:
    /// `previous` is the last fixed window's count, `elapsed` how far the
    /// current one has run (0.0 to 1.0).
    pub fn judge(&self, previous: i64, current: i64, elapsed: f64, cost: i64) -> Verdict {
        let elapsed = elapsed.clamp(0.0, 1.0);
        let w = self.window.as_secs_f64();
        let estimate = previous as f64 * (1.0 - elapsed) + current as f64;
        let cap = self.capacity as f64;
        // The sliding window drains at the bucket's refill rate.
        // In whole nanoseconds: `from_secs_f64`'s exact rounding costs a
        // request more than the nanosecond it could save.
        let drain = |units: f64| seconds((units.max(0.0) / cap * w).min(2.0 * w));
        // Costs are rounded up, by at most a unit per request counted.
        if estimate <= cap + estimate / cost as f64 + 1.0 {
            return Verdict {
                admitted: true,
                remaining: ((cap - estimate) / cost as f64) as u64,
                reset: drain(estimate),
                retry_after: Duration::ZERO,
            };
        }
        // Without this request: how long until it would fit?
        let without = estimate - cost as f64;
        let excess = without + cost as f64 - cap;
        let fading = previous as f64 * (1.0 - elapsed);
        let retry = if fading >= excess && previous > 0 {
            // The previous window's share fades linearly over this one.
            excess / previous as f64 * w
        } else {
            // Past the next roll, the current count fades in turn.
            let now_count = (current - cost) as f64;
            let later = if now_count > 0.0 {
                (1.0 - (cap - cost as f64) / now_count).max(0.0) * w
            } else {
                0.0
            };
            (1.0 - elapsed) * w + later
        };
        Verdict {
            admitted: false,
            remaining: 0,
            reset: drain(without),
            retry_after: seconds(retry.clamp(0.0, 2.0 * w)),
        }
    }

    /// The bucket as GCRA wants it: the time one request's token takes to
    /// come back, and how many tokens the bucket holds, for a key allowed
    /// `own` requests per window.
    pub fn emission(&self, limit: &RateLimit, own: u32) -> (Duration, f64) {
        let own = own.clamp(1, MAX_REQUESTS);
        let (r, b) = (f64::from(self.requests), f64::from(self.burst));
        (limit.per / own, (r + b) * f64::from(own) / r)
    }
}

/// `secs` (not negative, and within a window's few multiples) as a duration.
fn seconds(secs: f64) -> Duration {
    Duration::from_nanos((secs * 1e9) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LimitKey, LimitScope};

    fn limit(requests: u32, per_ms: u64, burst: u32) -> RateLimit {
        RateLimit {
            requests,
            per: Duration::from_millis(per_ms),
            burst,
            by: LimitKey::Subject,
            scope: LimitScope::Instance,
            override_claim: None,
        }
    }

    /// Sends `n` requests at `elapsed` into a window: how many got in.
    fn send(b: &Bucket, previous: i64, current: &mut i64, elapsed: f64, own: u32, n: u32) -> u32 {
        let cost = b.cost(own);
        let mut admitted = 0;
        for _ in 0..n {
            *current += cost;
            if b.judge(previous, *current, elapsed, cost).admitted {
                admitted += 1;
            } else {
                *current -= cost;
            }
        }
        admitted
    }

    #[test]
    fn a_quiet_key_gets_the_limit_then_nothing() {
        let b = Bucket::new(&limit(5, 1000, 0));
        assert_eq!(b.window, Duration::from_secs(1));
        let mut current = 0;
        assert_eq!(send(&b, 0, &mut current, 0.1, 5, 20), 5);
    }

    #[test]
    fn burst_adds_to_the_first_window_and_stretches_the_window() {
        let b = Bucket::new(&limit(10, 1000, 5));
        assert_eq!(b.window, Duration::from_millis(1500));
        let mut current = 0;
        assert_eq!(send(&b, 0, &mut current, 0.0, 10, 100), 15);
        // A full window later the previous window's count fades: halfway
        // through the next, half the bucket is back.
        let mut next = 0;
        let got = send(&b, current, &mut next, 0.5, 10, 100);
        assert!((7..=8).contains(&got), "{got}");
    }

    #[test]
    fn an_override_scales_the_quota_in_the_same_window() {
        let b = Bucket::new(&limit(10, 1000, 0));
        let mut current = 0;
        assert_eq!(send(&b, 0, &mut current, 0.0, 30, 100), 30);
        let mut current = 0;
        assert_eq!(send(&b, 0, &mut current, 0.0, 3, 100), 3);
    }

    #[test]
    fn retry_after_is_when_the_next_request_fits() {
        let b = Bucket::new(&limit(10, 1000, 0));
        let cost = b.cost(10);
        // A full window just before, nothing yet in this one: one request
        // fits once a tenth of the previous window has faded.
        let v = b.judge(10 * cost, cost, 0.0, cost);
        assert!(!v.admitted);
        assert!((v.retry_after.as_secs_f64() - 0.1).abs() < 0.01, "{v:?}");
        // The current window full: after its roll, a tenth of it must fade.
        let v = b.judge(0, 11 * cost, 0.5, cost);
        assert!(!v.admitted);
        assert!((v.retry_after.as_secs_f64() - 0.6).abs() < 0.01, "{v:?}");
        let ok = b.judge(0, 3 * cost, 0.5, cost);
        assert!(ok.admitted);
        assert_eq!(ok.remaining, 7);
        assert!((ok.reset.as_secs_f64() - 0.3).abs() < 0.01, "{ok:?}");
    }

    #[test]
    fn emission_matches_the_bucket() {
        let l = limit(10, 1000, 5);
        let b = Bucket::new(&l);
        let (t, cap) = b.emission(&l, 10);
        assert_eq!(t, Duration::from_millis(100));
        assert!((cap - 15.0).abs() < 1e-6);
        let (t, cap) = b.emission(&l, 20);
        assert_eq!(t, Duration::from_millis(50));
        assert!((cap - 30.0).abs() < 1e-3);
    }
}
