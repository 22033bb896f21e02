//! The rows read, by login (a login no row has too), each kept for
//! `cache_ttl` or until the next revocation, a bounded number of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Principal;

/// Rows kept at most, so that logins for made-up names cannot grow it.
const MAX_CACHED: usize = 10_000;

/// A row read for a login, or its absence: when it was read, and how many
/// revocations had been applied then.
type Cached = (Instant, u64, Option<Arc<Principal>>);

pub struct Cache {
    rows: Mutex<HashMap<String, Cached>>,
    ttl: Duration,
    /// Counts revocations applied anywhere: a revocation (a user being
    /// shut out, say) makes every cached row stale at once.
    revocations: tokio::sync::watch::Receiver<u64>,
}

impl Cache {
    pub fn new(ttl: Duration, revocations: tokio::sync::watch::Receiver<u64>) -> Cache {
        Cache {
            rows: Mutex::new(HashMap::new()),
            ttl,
            revocations,
        }
    }

    /// What was read for `login`, while still fresh: `Some(None)` when no
    /// row had it.
    pub fn get(&self, login: &str) -> Option<Option<Arc<Principal>>> {
        let revoked = *self.revocations.borrow();
        let rows = self.rows.lock().expect("not poisoned");
        let (at, seen, found) = rows.get(login)?;
        (at.elapsed() < self.ttl && *seen == revoked).then(|| found.clone())
    }

    pub fn keep(&self, login: &str, found: Option<Arc<Principal>>) {
        let mut rows = self.rows.lock().expect("not poisoned");
        if rows.len() >= MAX_CACHED {
            let ttl = self.ttl;
            rows.retain(|_, (at, _, _)| at.elapsed() < ttl);
            if rows.len() >= MAX_CACHED {
                rows.clear();
            }
        }
        let revoked = *self.revocations.borrow();
        rows.insert(login.to_string(), (Instant::now(), revoked, found));
    }

    /// Drops what was read for `login`: its row has changed.
    pub fn forget(&self, login: &str) {
        self.rows.lock().expect("not poisoned").remove(login);
    }
}
