//! The revocation cache: revoked token ids and "every token of this subject
//! issued before T". Lock-free reads on the hot path; entries are dropped once
//! the tokens they stop would have expired anyway.

use std::sync::atomic::{AtomicBool, Ordering};

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// One revocation, as the admin API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Revocation {
    Jti {
        jti: String,
        /// When the revoked token expires (Unix seconds); `None` = never.
        expires_at: Option<i64>,
    },
    Subject {
        iss: String,
        sub: String,
        /// Tokens issued (`iat`) before this instant are revoked.
        before: i64,
    },
}

/// foldhash instead of the standard SipHash: every validation looks a `jti`
/// up, and the keys are seeded per process, so the tables stay hard to
/// flood (only signed tokens reach the lookup, and only admins add entries).
type Hasher = foldhash::fast::RandomState;

/// A subject's revocations: (iss, tokens issued before this are revoked).
type SubjectEntries = Vec<(Box<str>, i64)>;

pub struct Revocations {
    jtis: DashMap<Box<str>, Option<i64>, Hasher>,
    subjects: DashMap<Box<str>, SubjectEntries, Hasher>,
    /// Set by the first revocation: until then a validation looks nothing
    /// up (a DashMap's length takes a lock per shard).
    any: AtomicBool,
    /// Counts revocations applied, so open tunnels hear of each one.
    applied: watch::Sender<u64>,
}

impl Default for Revocations {
    fn default() -> Self {
        Revocations {
            jtis: DashMap::default(),
            subjects: DashMap::default(),
            any: AtomicBool::new(false),
            applied: watch::Sender::new(0),
        }
    }
}

impl Revocations {
    /// Changes with every revocation applied, wherever it was made: what a
    /// long-lived connection waits on to re-check its token.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    pub fn apply(&self, r: &Revocation) {
        self.insert(r);
        self.applied.send_modify(|n| *n += 1);
    }

    fn insert(&self, r: &Revocation) {
        match r {
            Revocation::Jti { jti, expires_at } => {
                self.jtis.insert(jti.as_str().into(), *expires_at);
            }
            Revocation::Subject { iss, sub, before } => {
                let mut entry = self.subjects.entry(sub.as_str().into()).or_default();
                match entry.iter_mut().find(|(i, _)| &**i == iss) {
                    Some((_, b)) => *b = (*b).max(*before),
                    None => entry.push((iss.as_str().into(), *before)),
                }
            }
        }
        // After the entry, so that whoever sees the flag finds it.
        self.any.store(true, Ordering::Release);
    }

    /// Nothing has been revoked here yet: no token's claims need looking up.
    pub fn none(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }

    /// Is a token with these claims revoked? A token without `iat` is revoked
    /// by any subject revocation, since its age cannot be told.
    pub fn is_revoked(
        &self,
        iss: &str,
        sub: Option<&str>,
        jti: Option<&str>,
        iat: Option<i64>,
    ) -> bool {
        if let Some(jti) = jti {
            if self.jtis.contains_key(jti) {
                return true;
            }
        }
        let Some(sub) = sub else { return false };
        self.subjects.get(sub).is_some_and(|list| {
            list.iter()
                .any(|(i, before)| &**i == iss && iat.is_none_or(|iat| iat < *before))
        })
    }

    /// Drops jti entries whose tokens expired before `cutoff`. Subject entries
    /// are kept: they also stop tokens that never expire.
    pub fn purge_expired(&self, cutoff: i64) {
        self.jtis.retain(|_, exp| exp.is_none_or(|e| e >= cutoff));
    }

    pub fn list(&self) -> Vec<Revocation> {
        let mut out: Vec<Revocation> = self
            .jtis
            .iter()
            .map(|e| Revocation::Jti {
                jti: e.key().to_string(),
                expires_at: *e.value(),
            })
            .collect();
        for e in self.subjects.iter() {
            for (iss, before) in e.value() {
                out.push(Revocation::Subject {
                    iss: iss.to_string(),
                    sub: e.key().to_string(),
                    before: *before,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jti_and_subject_revocations() {
        let r = Revocations::default();
        assert!(r.none());
        assert!(!r.is_revoked("i", Some("alice"), Some("j1"), Some(100)));
        r.apply(&Revocation::Jti {
            jti: "j1".into(),
            expires_at: Some(500),
        });
        assert!(!r.none());
        assert!(r.is_revoked("i", Some("alice"), Some("j1"), Some(100)));
        assert!(!r.is_revoked("i", Some("alice"), Some("j2"), Some(100)));
        r.apply(&Revocation::Subject {
            iss: "i".into(),
            sub: "alice".into(),
            before: 200,
        });
        assert!(r.is_revoked("i", Some("alice"), Some("j2"), Some(199)));
        assert!(
            !r.is_revoked("i", Some("alice"), Some("j2"), Some(200)),
            "issued after the cut"
        );
        assert!(
            !r.is_revoked("other", Some("alice"), Some("j2"), Some(100)),
            "other issuer"
        );
        assert!(
            r.is_revoked("i", Some("alice"), None, None),
            "no iat: cannot prove it is newer"
        );
    }

    #[test]
    fn purge_keeps_unexpired_and_eternal_entries() {
        let r = Revocations::default();
        r.apply(&Revocation::Jti {
            jti: "old".into(),
            expires_at: Some(100),
        });
        r.apply(&Revocation::Jti {
            jti: "new".into(),
            expires_at: Some(1000),
        });
        r.apply(&Revocation::Jti {
            jti: "forever".into(),
            expires_at: None,
        });
        r.purge_expired(500);
        assert!(!r.is_revoked("i", None, Some("old"), None));
        assert!(r.is_revoked("i", None, Some("new"), None));
        assert!(r.is_revoked("i", None, Some("forever"), None));
    }
}
