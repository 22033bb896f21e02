//! Server nonces (RFC 9449 §8, §9): a value the client must put in its
//! next proofs, so that no proof made ahead of time is taken. A nonce is
//! a period's number and its HMAC under a key every instance shares, so
//! any instance takes another's; the current period's nonce and the one
//! before it are taken, and each is kept made for the period it serves.
//! An instance restarted on a store of its own also has a nonce of its
//! own for a while ([`Nonces::new`]).

use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long one nonce is handed out; it is taken for twice as long.
pub const PERIOD: i64 = 300;

/// What a proof's `nonce` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// This period's.
    Current,
    /// The last period's: taken, and the client told the current one.
    Stale,
    /// None, or not one of ours, or too old.
    Refused,
}

/// The nonces of the current and the last period, made under one key.
pub struct Nonces {
    key: Hmac<Sha256>,
    made: ArcSwap<Made>,
    /// A nonce this instance made as it started, and until when it is
    /// handed out and taken: no other instance knows it, so no proof taken
    /// before the start carries it.
    restart: Option<(Box<str>, i64)>,
}

struct Made {
    period: i64,
    current: Box<str>,
    last: Box<str>,
}

impl Nonces {
    /// Nonces under `secret`; with `restart_until`, this instance's own
    /// nonce too, handed out and taken until then.
    pub fn new(secret: &[u8], restart_until: Option<i64>) -> Nonces {
        let key = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any size");
        let made = ArcSwap::from_pointee(Made {
            period: i64::MIN,
            current: "".into(),
            last: "".into(),
        });
        let restart = restart_until.map(|until| {
            use rand::RngCore;
            let mut raw = [0u8; 24];
            rand::thread_rng().fill_bytes(&mut raw);
            (URL_SAFE_NO_PAD.encode(raw).into(), until)
        });
        Nonces { key, made, restart }
    }

    /// The nonce to hand out at Unix time `now`.
    pub fn current(&self, now: i64) -> Arc<str> {
        match self.restart(now) {
            Some(own) => Arc::from(own),
            None => Arc::from(&*self.at(now).current),
        }
    }

    /// This instance's own nonce, while it is handed out.
    pub fn restart(&self, now: i64) -> Option<&str> {
        match &self.restart {
            Some((own, until)) if now < *until => Some(own),
            _ => None,
        }
    }

    /// What `nonce` is at Unix time `now`.
    pub fn freshness(&self, nonce: Option<&str>, now: i64) -> Freshness {
        let Some(nonce) = nonce else {
            return Freshness::Refused;
        };
        if self.restart(now) == Some(nonce) {
            return Freshness::Current;
        }
        let made = self.at(now);
        if nonce == &*made.current {
            Freshness::Current
        } else if nonce == &*made.last {
            Freshness::Stale
        } else {
            Freshness::Refused
        }
    }

    fn at(&self, now: i64) -> Arc<Made> {
        let period = now.div_euclid(PERIOD);
        let made = self.made.load_full();
        if made.period == period {
            return made;
        }
        let fresh = Arc::new(Made {
            period,
            current: self.nonce(period).into(),
            last: self.nonce(period - 1).into(),
        });
        self.made.store(fresh.clone());
        fresh
    }

    fn nonce(&self, period: i64) -> String {
        let mut mac = self.key.clone();
        mac.update(&period.to_be_bytes());
        let tag = mac.finalize().into_bytes();
        let mut raw = period.to_be_bytes().to_vec();
        raw.extend_from_slice(&tag[..16]);
        URL_SAFE_NO_PAD.encode(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_taken_for_two_periods_and_on_every_instance() {
        let (a, b) = (Nonces::new(b"shared", None), Nonces::new(b"shared", None));
        let now = 1_800_000_000;
        let nonce = a.current(now);
        assert_eq!(b.freshness(Some(&nonce), now), Freshness::Current);
        assert_eq!(b.freshness(Some(&nonce), now + PERIOD), Freshness::Stale);
        assert_eq!(
            b.freshness(Some(&nonce), now + 2 * PERIOD),
            Freshness::Refused
        );
        assert_eq!(b.freshness(None, now), Freshness::Refused);
        let other = Nonces::new(b"another key", None);
        assert_eq!(other.freshness(Some(&nonce), now), Freshness::Refused);
        assert_ne!(a.current(now + PERIOD), nonce);
    }

    #[test]
    fn a_restarted_instance_hands_out_its_own_nonce_for_a_while() {
        let now = 1_800_000_000;
        let (restarted, other) = (
            Nonces::new(b"shared", Some(now + 10)),
            Nonces::new(b"shared", None),
        );
        let own = restarted.current(now);
        assert_eq!(restarted.restart(now), Some(&*own));
        assert_eq!(restarted.freshness(Some(&own), now + 9), Freshness::Current);
        assert_eq!(other.freshness(Some(&own), now), Freshness::Refused);
        // The shared one is taken meanwhile; past the while, only it.
        let shared = other.current(now);
        assert_eq!(restarted.freshness(Some(&shared), now), Freshness::Current);
        assert_eq!(
            restarted.freshness(Some(&own), now + 10),
            Freshness::Refused
        );
        assert_eq!(restarted.current(now + 10), other.current(now + 10));
        assert_ne!(Nonces::new(b"shared", Some(now + 10)).current(now), own);
    }
}
