//! One issuer at work on one request: its accounts' logins (`identity`),
//! its keys to mint with (`tokens`), its store and counters. The standard
//! server (`oauth2`) and the legacy dialects (`dialect`) both answer through
//! it; it knows neither.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::auth::keys::KeySet;
use crate::auth::revocation::Revocations;
use crate::config::{Accounts, Issuer, LegacyEndpoint, TokenRoutes};
use crate::identity::{Denied, Logins, Reason};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::tokens::refresh::Refreshes;
use crate::tokens::{random_id, Minted, Stamp};

/// One issuer's token routes with everything they need to answer.
pub struct IssuerContext<'a> {
    pub index: usize,
    /// The issuer's configuration.
    pub config: &'a Issuer,
    pub accounts: &'a Accounts,
    pub routes: &'a TokenRoutes,
    /// Its legacy endpoint; `None` for a standard issuer, which has none.
    pub endpoint: Option<&'a LegacyEndpoint>,
    pub keys: &'a KeySet,
    pub store: &'a Arc<dyn Store>,
    pub revocations: &'a Revocations,
    pub metrics: &'a Metrics,
    /// The issuer's accounts' logins, for this request.
    pub logins: Logins<'a>,
}

/// Why a request was not read; each door (a dialect, the standard server)
/// answers it in its own shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    TooLarge,
    Timeout,
    /// The client is over the endpoint's `rate_limit`.
    RateLimited,
    /// The service answering for the endpoint did not (a legacy service
    /// that is primary, `shadow`).
    Unavailable,
}

impl Transport {
    pub fn reason(self) -> Reason {
        match self {
            Transport::TooLarge => Reason::TooLarge,
            Transport::Timeout => Reason::Timeout,
            Transport::RateLimited => Reason::RateLimited,
            Transport::Unavailable => Reason::Unavailable,
        }
    }
}

impl IssuerContext<'_> {
    /// The issuer's refresh tokens and their families.
    pub fn refreshes(&self) -> Refreshes<'_> {
        Refreshes {
            store: &**self.store,
            revocations: self.revocations,
            issuer: &self.config.name,
            iss: &self.config.iss,
        }
    }

    // -----------------------------------------------------------------------
    // Minting
    // -----------------------------------------------------------------------

    /// Signs a token for `sub` with the standard claims plus `claims`;
    /// `lifetime: None` mints one without `exp`.
    pub fn mint(
        &self,
        sub: &str,
        claims: Map<String, Value>,
        now: i64,
        lifetime: Option<Duration>,
    ) -> Result<Minted, Denied> {
        let stamp = Stamp {
            iss: &self.config.iss,
            typ: None,
            endpoint: self.accounts.form.name(),
            jti: None,
        };
        self.mint_with(stamp, sub, claims, now, lifetime)
    }

    /// [`IssuerContext::mint`] as `stamp` says: the OAuth 2.0 endpoints' tokens
    /// carry their issuer identifier and `typ: at+jwt` (RFC 9068).
    pub fn mint_with(
        &self,
        stamp: Stamp<'_>,
        sub: &str,
        mut claims: Map<String, Value>,
        now: i64,
        lifetime: Option<Duration>,
    ) -> Result<Minted, Denied> {
        let jti = stamp.jti.map_or_else(|| random_id(16), str::to_string);
        let exp = lifetime.map(|l| now + l.as_secs() as i64);
        claims.insert("iss".into(), Value::String(stamp.iss.to_string()));
        claims.insert("sub".into(), Value::String(sub.to_string()));
        claims.insert("iat".into(), now.into());
        if let Some(exp) = exp {
            claims.insert("exp".into(), exp.into());
        }
        claims.insert("jti".into(), Value::String(jti.clone()));
        let token = self
            .keys
            .sign(self.index, &Value::Object(claims), stamp.typ)
            .map_err(|e| {
                tracing::error!(issuer = %self.config.name, error = %e, "cannot sign");
                Denied::Unavailable
            })?;
        self.metrics
            .tokens_issued
            .with_label_values(&[&self.config.name, stamp.endpoint])
            .inc();
        Ok(Minted {
            token,
            jti,
            exp,
            bound: false,
        })
    }
}
