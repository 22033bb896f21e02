//! A snapshot's side of API keys: the keys it has admitted, by their
//! bytes, each with the claims its record grants. A repeat key costs a
//! fast hash and a comparison, as a repeat token does; the keyed hash and
//! the index are for keys this snapshot has not seen.

use std::hash::BuildHasher;
use std::sync::Arc;

use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use super::{Absent, Held, Index};
use crate::auth::validate::{Validator, Verified};
use crate::auth::AuthError;
use crate::claims::Claims;
use crate::config::{Config, IssuerKind, Policy};

/// Keys this snapshot admitted. Bounded; each use checks its record was
/// not replaced or revoked since.
pub struct Check {
    index: Arc<Index>,
    seen: quick_cache::sync::Cache<u64, Arc<Seen>>,
    /// Randomly seeded per process; a hit is confirmed byte for byte.
    hasher: foldhash::fast::RandomState,
    /// `api_key` issuers of this config: (name, `iss`), by issuer index.
    issuers: Vec<Option<(String, String)>>,
}

struct Seen {
    held: Arc<Held>,
    /// `held.changes()` when it was seen: another count, look again.
    at: u64,
    /// Holds the key itself (`credential`), which a hit is confirmed against.
    verified: Arc<Verified>,
}

impl Check {
    pub fn new(index: Arc<Index>, config: &Config, cache_size: usize) -> Check {
        let issuers = config
            .issuers
            .iter()
            .map(|i| (i.kind == IssuerKind::ApiKey).then(|| (i.name.clone(), i.iss.clone())))
            .collect();
        Check {
            index,
            seen: quick_cache::sync::Cache::new(cache_size.max(16)),
            hasher: Default::default(),
            issuers,
        }
    }

    /// Whether issuer `issuer` of this config is an `api_key` one.
    pub fn holds(&self, issuer: usize) -> bool {
        self.issuers.get(issuer).is_some_and(Option::is_some)
    }

    /// `key` against the route's `policy` at Unix time `now`: the key must
    /// be one an issuer of this config made, not revoked or past its time.
    pub fn validate(
        &self,
        key: &str,
        policy: &Policy,
        now: i64,
        validator: &Validator,
    ) -> Result<Arc<Verified>, AuthError> {
        let hash = self.hasher.hash_one(key);
        let seen = match self.seen.get(&hash) {
            Some(seen)
                if bool::from(seen.verified.credential().as_bytes().ct_eq(key.as_bytes()))
                    && seen.held.changes() == seen.at =>
            {
                seen
            }
            _ => {
                let seen = Arc::new(self.look_up(key)?);
                self.seen.insert(hash, seen.clone());
                seen
            }
        };
        // portero keeps the time here: no clock to allow leeway for.
        if seen.verified.exp.is_some_and(|exp| now >= exp) {
            return Err(AuthError::Expired);
        }
        let verified = validator.admit(seen.verified.clone(), policy, now)?;
        seen.held.used(now);
        Ok(verified)
    }

    /// The record of `key` in the index, with the claims it grants.
    fn look_up(&self, key: &str) -> Result<Seen, AuthError> {
        let (held, until) = self.index.find(key).map_err(|absent| match absent {
            Absent::Unknown => AuthError::UnknownApiKey,
            Absent::Revoked => AuthError::RevokedApiKey,
        })?;
        let at = held.changes();
        let issuer = self
            .issuers
            .iter()
            .position(|i| {
                i.as_ref()
                    .is_some_and(|(name, _)| *name == held.record.issuer)
            })
            .ok_or(AuthError::UnknownApiKey)?;
        let iss = self.issuers[issuer].as_ref().map_or("", |(_, iss)| iss);
        let claims = claims_of(&held, iss, until);
        let verified = Verified::vouched(issuer, claims, key)?;
        Ok(Seen {
            held,
            at,
            verified: Arc::new(verified),
        })
    }
}

/// The claims a key's record grants, as a token of its issuer would carry
/// them: `sub` the consumer, `jti` the key's id, `exp` the sooner of its
/// expiry and (for a rotated-out key) its grace.
fn claims_of(held: &Held, iss: &str, until: Option<i64>) -> Claims {
    let r = &held.record;
    let mut claims = Map::new();
    claims.insert("iss".into(), iss.into());
    claims.insert("sub".into(), r.consumer.as_str().into());
    claims.insert("jti".into(), r.id.as_str().into());
    claims.insert("iat".into(), r.created.into());
    let exp = match (r.expires, until) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if let Some(exp) = exp {
        claims.insert("exp".into(), exp.into());
    }
    if !r.roles.is_empty() {
        claims.insert("roles".into(), r.roles.clone().into());
    }
    if !r.scopes.is_empty() {
        claims.insert("scope".into(), r.scopes.join(" ").into());
    }
    for (name, value) in &r.claims {
        claims.entry(name.clone()).or_insert_with(|| value.clone());
    }
    let payload = Value::Object(claims).to_string().into_bytes();
    Claims::parse(payload).expect("a JSON object of unique names parses")
}
