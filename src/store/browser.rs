//! The records of routes that sign people in (`login`): browser sessions,
//! each kept under the SHA-256 (hex) of its cookie's id, never the id, and
//! found again by its provider and user (`sub`) or provider session (`sid`)
//! when a back-channel logout or the admin API ends them. Each backend keeps
//! them in its own file (`embedded/browser.rs`, `redis/browser.rs`), beside
//! the claims ([`BrowserSessionRecords::claim`]) that keep two instances
//! from doing one thing twice.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;

/// Browser sessions by the hash of their cookie's id, and the claims that
/// keep two instances from doing one thing twice with them.
#[async_trait]
pub trait BrowserSessionRecords: Send + Sync {
    /// Keeps (or replaces) the session under `hash` until `ends_at()`,
    /// findable by its provider and `sub`, and by its provider and `sid`.
    async fn put_browser_session(
        &self,
        hash: &str,
        session: &BrowserSession,
    ) -> Result<(), StoreError>;
    /// The session `hash`, unless ended or past `ends_at()` at the store's
    /// now (a session past its time reads as absent).
    async fn get_browser_session(&self, hash: &str) -> Result<Option<BrowserSession>, StoreError>;
    /// Ends the session `hash` (record and index entries) and returns it as
    /// it was.
    async fn end_browser_session(&self, hash: &str) -> Result<Option<BrowserSession>, StoreError>;
    /// The hashes of the live sessions of `provider` whose `sub` (or `sid`)
    /// is the owner's.
    async fn browser_sessions_of(
        &self,
        provider: &str,
        owner: &SessionOwner,
    ) -> Result<Vec<String>, StoreError>;
    /// Notes a request with the session at `now`: `last_seen` becomes `now`
    /// if later, and its time in the store is extended to match,
    /// atomically. A session that is gone (ended, expired) stays gone: `false`.
    async fn touch_browser_session(&self, hash: &str, now: i64) -> Result<bool, StoreError>;
    /// Takes `key` for `ttl` if nobody holds it: `true` for exactly one of
    /// any concurrent callers, on every instance sharing the store (Redis
    /// `SET NX PX`). Used for "one refresh of a session at a time" and "a
    /// logout token's jti is accepted once".
    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Lets go of a claim before its ttl.
    async fn release_claim(&self, key: &str) -> Result<(), StoreError>;
}

/// A browser session of a route that signs people in (`login`), stored
/// under the SHA-256 (hex) of its cookie's id, never the id itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BrowserSession {
    /// The login provider: the name of the issuer the user signed in at.
    pub provider: String,
    /// The user at the provider (the ID token's `sub`).
    pub sub: String,
    /// The provider's session id (the ID token's `sid`), for back-channel logout.
    pub sid: Option<String>,
    /// What routes read of the user: the ID token's claims (and userinfo's), a JSON object as text.
    pub claims: String,
    /// The provider's tokens (ID token, access token, refresh token), sealed
    /// under a key that only the cookie's id gives (opaque bytes to the store).
    /// Kept as base64: a JSON list of numbers would be read at four times
    /// the size on every request.
    #[serde(with = "base64_bytes")]
    pub sealed: Vec<u8>,
    /// When the provider's access token expires (Unix seconds; 0: unknown or none).
    pub access_expires_at: i64,
    pub created_at: i64,
    /// The last request seen with it: it ends `idle_secs` after that.
    pub last_seen: i64,
    pub idle_secs: i64,
    /// It ends then, whatever its use (absolute lifetime).
    pub expires_at: i64,
}

impl BrowserSession {
    /// When it ends if not used again: the sooner of its absolute end and its idle end.
    pub fn ends_at(&self) -> i64 {
        self.expires_at
            .min(self.last_seen.saturating_add(self.idle_secs))
    }

    /// Who it is found by: its user, and its provider session if it has one.
    pub(super) fn owners(&self) -> Vec<SessionOwner> {
        let mut owners = vec![SessionOwner::Subject(self.sub.clone())];
        owners.extend(self.sid.clone().map(SessionOwner::ProviderSession));
        owners
    }

    /// Whether `owner` of `provider` owns it: an index entry left behind
    /// by a session replaced under the same hash names another.
    pub(super) fn owned_by(&self, provider: &str, owner: &SessionOwner) -> bool {
        self.provider == provider
            && match owner {
                SessionOwner::Subject(sub) => self.sub == *sub,
                SessionOwner::ProviderSession(sid) => self.sid.as_deref() == Some(sid.as_str()),
            }
    }
}

/// Whose sessions a back-channel logout or the admin API ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionOwner {
    Subject(String),
    ProviderSession(String),
}

/// `sealed` as standard base64 text.
mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
impl BrowserSession {
    /// A session of `provider` for `sub`, seen `now`, live for ten minutes
    /// of idleness and an hour in all.
    pub fn sample(provider: &str, sub: &str, sid: Option<&str>, now: i64) -> BrowserSession {
        BrowserSession {
            provider: provider.into(),
            sub: sub.into(),
            sid: sid.map(str::to_string),
            claims: r#"{"sub":"user","name":"Ünïcode \"Ada\""}"#.into(),
            sealed: vec![0, 1, 2, 255, 254],
            access_expires_at: now + 300,
            created_at: now,
            last_seen: now,
            idle_secs: 600,
            expires_at: now + 3600,
        }
    }
}

/// What every backend must do with these records, run by each one's tests.
#[cfg(test)]
pub(crate) mod checks {
    use std::sync::Arc;

    use super::*;
    use crate::clock::unix_now;

    /// The hashes of `owner`'s sessions at `provider`, sorted.
    async fn of(s: &dyn BrowserSessionRecords, provider: &str, owner: SessionOwner) -> Vec<String> {
        let mut hashes = s.browser_sessions_of(provider, &owner).await.unwrap();
        hashes.sort();
        hashes
    }

    fn sub(s: &str) -> SessionOwner {
        SessionOwner::Subject(s.into())
    }

    fn sid(s: &str) -> SessionOwner {
        SessionOwner::ProviderSession(s.into())
    }

    pub async fn a_session_is_kept_replaced_and_ended(s: &dyn BrowserSessionRecords) {
        let now = unix_now();
        let session = BrowserSession {
            sealed: Vec::new(),
            ..BrowserSession::sample("p", "user-1", Some("sid-1"), now)
        };
        s.put_browser_session("h1", &session).await.unwrap();
        assert_eq!(
            s.get_browser_session("h1").await.unwrap(),
            Some(session.clone())
        );
        assert_eq!(s.get_browser_session("h2").await.unwrap(), None);

        // A refresh writes it again, with new tokens.
        let refreshed = BrowserSession {
            sealed: vec![9; 2000],
            access_expires_at: now + 900,
            ..session.clone()
        };
        s.put_browser_session("h1", &refreshed).await.unwrap();
        assert_eq!(
            s.get_browser_session("h1").await.unwrap(),
            Some(refreshed.clone())
        );

        assert_eq!(s.end_browser_session("h1").await.unwrap(), Some(refreshed));
        assert_eq!(s.get_browser_session("h1").await.unwrap(), None);
        assert_eq!(s.end_browser_session("h1").await.unwrap(), None);
        assert_eq!(s.end_browser_session("never").await.unwrap(), None);
    }

    pub async fn an_expired_session_reads_as_absent(s: &dyn BrowserSessionRecords) {
        let now = unix_now();
        let over = BrowserSession {
            created_at: now - 4000,
            expires_at: now - 1,
            ..BrowserSession::sample("p", "user-1", Some("sid-1"), now)
        };
        let idle = BrowserSession {
            last_seen: now - 601,
            ..BrowserSession::sample("p", "user-1", Some("sid-1"), now)
        };
        assert_eq!(idle.ends_at(), now - 1);
        for (hash, session) in [("over", &over), ("idle", &idle)] {
            s.put_browser_session(hash, session).await.unwrap();
            assert_eq!(s.get_browser_session(hash).await.unwrap(), None, "{hash}");
            assert!(!s.touch_browser_session(hash, now).await.unwrap(), "{hash}");
        }
        assert!(of(s, "p", sub("user-1")).await.is_empty());
        assert!(of(s, "p", sid("sid-1")).await.is_empty());
        assert_eq!(s.end_browser_session("over").await.unwrap(), None);

        // Seen a little later, it is live.
        let live = BrowserSession {
            last_seen: now - 590,
            ..BrowserSession::sample("p", "user-1", Some("sid-1"), now)
        };
        s.put_browser_session("live", &live).await.unwrap();
        assert_eq!(s.get_browser_session("live").await.unwrap(), Some(live));
        assert_eq!(of(s, "p", sub("user-1")).await, ["live"]);
    }

    pub async fn sessions_are_found_by_owner_at_their_provider(s: &dyn BrowserSessionRecords) {
        let now = unix_now();
        let put = |hash: &'static str, session: BrowserSession| async move {
            s.put_browser_session(hash, &session).await.unwrap();
        };
        let sample = BrowserSession::sample;
        put("a1", sample("a", "user-1", Some("s1"), now)).await;
        put("a2", sample("a", "user-1", Some("s2"), now)).await;
        put("a3", sample("a", "user-2", None, now)).await;
        // Another provider with the same user and provider session.
        put("b1", sample("b", "user-1", Some("s1"), now)).await;
        // Values that a key made by joining them would mix up.
        put("c1", sample("a:x", "y", Some("z"), now)).await;
        put("c2", sample("a", "x:y", Some("x\0z"), now)).await;
        put("c3", sample("a", "x", Some("x"), now)).await;

        assert_eq!(of(s, "a", sub("user-1")).await, ["a1", "a2"]);
        assert_eq!(of(s, "b", sub("user-1")).await, ["b1"]);
        assert_eq!(of(s, "a", sid("s1")).await, ["a1"]);
        assert_eq!(of(s, "b", sid("s1")).await, ["b1"]);
        assert_eq!(of(s, "a", sid("s2")).await, ["a2"]);
        assert_eq!(of(s, "a", sub("user-2")).await, ["a3"]);
        assert!(of(s, "a", sid("user-2")).await.is_empty(), "not a sid");
        assert!(of(s, "a", sub("s1")).await.is_empty(), "not a sub");
        assert!(of(s, "c", sub("user-1")).await.is_empty());
        assert_eq!(of(s, "a:x", sub("y")).await, ["c1"]);
        assert_eq!(of(s, "a", sub("x:y")).await, ["c2"]);
        assert_eq!(of(s, "a", sub("x")).await, ["c3"]);
        assert_eq!(of(s, "a", sid("x\0z")).await, ["c2"]);
        assert_eq!(of(s, "a", sid("x")).await, ["c3"]);

        s.end_browser_session("a1").await.unwrap();
        assert_eq!(of(s, "a", sub("user-1")).await, ["a2"]);
        assert!(of(s, "a", sid("s1")).await.is_empty());
        assert_eq!(
            of(s, "b", sid("s1")).await,
            ["b1"],
            "the other provider's stays"
        );

        // Written again for another user: found by that one only.
        put("a2", sample("a", "user-3", None, now)).await;
        assert!(of(s, "a", sub("user-1")).await.is_empty());
        assert!(of(s, "a", sid("s2")).await.is_empty());
        assert_eq!(of(s, "a", sub("user-3")).await, ["a2"]);
    }

    pub async fn a_touch_extends_the_idle_end_and_not_a_gone_session(
        s: &dyn BrowserSessionRecords,
    ) {
        let now = unix_now();
        let session = BrowserSession {
            last_seen: now - 500,
            ..BrowserSession::sample("p", "user-1", None, now)
        };
        assert_eq!(session.ends_at(), now + 100);
        s.put_browser_session("h", &session).await.unwrap();
        assert!(s.touch_browser_session("h", now).await.unwrap());
        let touched = s.get_browser_session("h").await.unwrap().unwrap();
        assert_eq!(touched.last_seen, now);
        assert_eq!(touched.ends_at(), now + 600);
        assert_eq!(
            touched,
            BrowserSession {
                last_seen: now,
                ..session.clone()
            },
            "nothing else changed"
        );
        // A request seen late moves nothing back.
        assert!(s.touch_browser_session("h", now - 100).await.unwrap());
        assert_eq!(
            s.get_browser_session("h").await.unwrap().unwrap().last_seen,
            now
        );
        // Nor past the absolute end.
        let near_end = BrowserSession {
            expires_at: now + 30,
            last_seen: now - 500,
            ..session.clone()
        };
        s.put_browser_session("end", &near_end).await.unwrap();
        assert!(s.touch_browser_session("end", now).await.unwrap());
        let kept = s.get_browser_session("end").await.unwrap().unwrap();
        assert_eq!((kept.last_seen, kept.ends_at()), (now, now + 30));

        s.end_browser_session("h").await.unwrap();
        assert!(!s.touch_browser_session("h", now).await.unwrap());
        assert_eq!(
            s.get_browser_session("h").await.unwrap(),
            None,
            "stays gone"
        );
        assert!(!s.touch_browser_session("never", now).await.unwrap());
        // Touched after its end: gone, even if it was live when read.
        assert!(!s.touch_browser_session("end", now + 31).await.unwrap());
    }

    pub async fn a_claim_is_held_once_until_released_or_lapsed(s: &dyn BrowserSessionRecords) {
        let minute = Duration::from_secs(60);
        assert!(s.claim("refresh:h1", minute).await.unwrap());
        assert!(!s.claim("refresh:h1", minute).await.unwrap());
        assert!(s.claim("refresh:h2", minute).await.unwrap(), "another key");
        s.release_claim("refresh:h1").await.unwrap();
        assert!(s.claim("refresh:h1", minute).await.unwrap());
        assert!(!s.claim("refresh:h1", minute).await.unwrap());
        s.release_claim("never").await.unwrap();

        let short = Duration::from_millis(200);
        assert!(s.claim("jti:j1", short).await.unwrap());
        assert!(!s.claim("jti:j1", short).await.unwrap());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(s.claim("jti:j1", short).await.unwrap(), "lapsed");
        assert!(!s.claim("refresh:h2", minute).await.unwrap(), "still held");
    }

    pub async fn one_of_many_concurrent_claims_wins(s: Arc<dyn BrowserSessionRecords>) {
        let start = Arc::new(tokio::sync::Barrier::new(20));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (s, start) = (s.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    s.claim("logout:jti-1", Duration::from_secs(60)).await
                })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            if task.await.unwrap().unwrap() {
                won += 1;
            }
        }
        assert_eq!(won, 1);
    }
}
