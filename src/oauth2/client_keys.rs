//! The public keys a client signs its assertions with: written in the
//! config (`jwks`), or fetched from its `jwks_uri` and kept as its
//! `Cache-Control` says (between a minute and an hour), refetched at most
//! once a minute when an assertion names a key the set lacks, and kept
//! through a failed fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::ClientKeys;
use crate::jwk::{parse_jwks, ExternalKey};
use crate::jwks::fetch_keys;

/// A fetched set is used this long when its answer says nothing.
const DEFAULT_TTL: Duration = Duration::from_secs(300);
const MIN_TTL: Duration = Duration::from_secs(60);
const MAX_TTL: Duration = Duration::from_secs(3600);
/// Each fetch, connect to last byte.
const TIMEOUT: Duration = Duration::from_secs(5);

pub type KeyList = Arc<Vec<ExternalKey>>;

struct Fetched {
    keys: Option<KeyList>,
    /// Until when `keys` are used without asking again.
    fresh_until: Instant,
    /// When the last fetch began: the next waits a minute after it.
    attempted: Instant,
}

/// Every `jwks_uri`'s keys, for the process: the config names the URLs,
/// so they are few.
fn fetched() -> &'static Mutex<HashMap<String, Fetched>> {
    static FETCHED: OnceLock<Mutex<HashMap<String, Fetched>>> = OnceLock::new();
    FETCHED.get_or_init(Default::default)
}

/// Why a client's keys are not at hand.
#[derive(Debug)]
pub struct Unavailable(pub String);

/// The client's keys; `stale`: the keys at hand did not verify an
/// assertion naming a key they lack, so a fetched set is fetched again
/// if the last fetch is a minute old.
pub async fn keys_of(keys: &ClientKeys, stale: bool) -> Result<KeyList, Unavailable> {
    let url = match keys {
        ClientKeys::Jwks(text) => {
            let (keys, _) = parse_jwks(text.as_bytes()).map_err(Unavailable)?;
            return Ok(Arc::new(keys));
        }
        ClientKeys::Uri(url) => url,
    };
    let now = Instant::now();
    let held = {
        let mut map = fetched().lock().expect("not poisoned");
        let entry = map.get_mut(url.as_str());
        match entry {
            Some(e) if now < e.fresh_until && !stale => return ok_or(e.keys.clone(), url),
            Some(e) if now < e.attempted + MIN_TTL => return ok_or(e.keys.clone(), url),
            Some(e) => {
                e.attempted = now;
                e.keys.clone()
            }
            None => {
                map.insert(
                    url.clone(),
                    Fetched {
                        keys: None,
                        fresh_until: now,
                        attempted: now,
                    },
                );
                None
            }
        }
    };
    match fetch_keys(url, TIMEOUT).await {
        Ok((keys, max_age)) => {
            let keys = Arc::new(keys);
            let ttl = max_age.unwrap_or(DEFAULT_TTL).clamp(MIN_TTL, MAX_TTL);
            let mut map = fetched().lock().expect("not poisoned");
            if let Some(e) = map.get_mut(url.as_str()) {
                e.keys = Some(keys.clone());
                e.fresh_until = Instant::now() + ttl;
            }
            Ok(keys)
        }
        Err(why) => {
            tracing::warn!(target: "portero::oauth2", url = %url, error = %why, "a client's jwks_uri could not be fetched");
            ok_or(held, url)
        }
    }
}

fn ok_or(keys: Option<KeyList>, url: &str) -> Result<KeyList, Unavailable> {
    keys.ok_or_else(|| Unavailable(format!("{url}: no keys fetched yet")))
}
