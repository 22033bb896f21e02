//! The factors people sign in with beside their password: passkeys, a
//! one-time-code (TOTP) secret and recovery codes, one record per issuer
//! and user. A record is written only over the version it was read at
//! ([`Factors::swap_factors`]): two instances spending the same
//! recovery code, or taking the same code's time step, cannot both
//! succeed. Each backend keeps them in its own file
//! (`embedded/factors.rs`, `redis/factors.rs`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;

#[async_trait]
pub trait Factors: Send + Sync {
    /// The user's factors at the issuer, if they enrolled any.
    async fn factors(&self, issuer: &str, login: &str) -> Result<Option<UserFactors>, StoreError>;
    /// Writes `factors` (its `version` one past `read_at`) in place of the
    /// record read at version `read_at` (0: none was there); false, and
    /// nothing written, when another write came first.
    async fn swap_factors(&self, factors: &UserFactors, read_at: u64) -> Result<bool, StoreError>;
    /// Forgets every factor of the user; whether there were any.
    async fn delete_factors(&self, issuer: &str, login: &str) -> Result<bool, StoreError>;
    /// The login whose passkeys carry the WebAuthn user handle `handle`.
    async fn login_of_handle(
        &self,
        issuer: &str,
        handle: &str,
    ) -> Result<Option<String>, StoreError>;
}

/// One user's factors at one issuer.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UserFactors {
    pub issuer: String,
    pub login: String,
    /// Raised by every write (the first record is version 1).
    pub version: u64,
    /// The WebAuthn user handle (a random UUID, never the login): what a
    /// passkey gives back to name its user.
    #[serde(default)]
    pub handle: String,
    #[serde(default)]
    pub passkeys: Vec<StoredPasskey>,
    #[serde(default)]
    pub totp: Option<TotpSecret>,
    /// SHA-256 (hex) of each recovery code not yet used.
    #[serde(default)]
    pub recovery: Vec<String>,
}

impl UserFactors {
    /// A factor beside the password: a passkey, or a one-time code.
    pub fn has_second_factor(&self) -> bool {
        !self.passkeys.is_empty() || self.totp.is_some()
    }

    /// A factor the sign-in page can take now: a one-time code, or a
    /// passkey where passkeys are on (`passkeys`).
    pub fn has_usable_factor(&self, passkeys: bool) -> bool {
        self.totp.is_some() || (passkeys && !self.passkeys.is_empty())
    }
}

/// A passkey as the WebAuthn library keeps it, with what the account
/// page shows of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredPasskey {
    /// The credential id, base64url: how a sign-in names it.
    pub id: String,
    /// The user's name for it.
    pub name: String,
    pub added_at: i64,
    #[serde(default)]
    pub used_at: Option<i64>,
    /// The library's record: public key, sign count, backup flags.
    pub credential: serde_json::Value,
}

/// A TOTP (RFC 6238) secret and the last time step a code was taken at:
/// a code is taken once, and never one older than the last.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TotpSecret {
    pub secret: Vec<u8>,
    pub added_at: i64,
    #[serde(default)]
    pub last_step: i64,
}

/// What every backend must do with these records, run by each one's tests.
#[cfg(test)]
pub(crate) mod checks {
    use super::*;

    fn record(login: &str, version: u64) -> UserFactors {
        UserFactors {
            issuer: "app".into(),
            login: login.into(),
            version,
            handle: format!("handle-{login}"),
            recovery: vec!["a".into(), "b".into()],
            ..UserFactors::default()
        }
    }

    pub async fn a_record_is_written_only_over_the_version_read(s: &dyn Factors) {
        let _ = s.delete_factors("app", "ada").await;
        assert!(s.factors("app", "ada").await.unwrap().is_none());
        assert!(s.swap_factors(&record("ada", 1), 0).await.unwrap());
        // A second first write, as another instance might make: refused.
        assert!(!s.swap_factors(&record("ada", 1), 0).await.unwrap());
        let held = s.factors("app", "ada").await.unwrap().unwrap();
        assert_eq!(held.version, 1);
        let mut spent = held.clone();
        spent.recovery.remove(0);
        spent.version = 2;
        assert!(s.swap_factors(&spent, 1).await.unwrap());
        // The same code spent again from the old read: refused.
        assert!(!s.swap_factors(&spent, 1).await.unwrap());
        let held = s.factors("app", "ada").await.unwrap().unwrap();
        assert_eq!((held.version, held.recovery.len()), (2, 1));
        assert_eq!(
            s.login_of_handle("app", "handle-ada").await.unwrap(),
            Some("ada".to_string())
        );
        assert_eq!(
            s.login_of_handle("other", "handle-ada").await.unwrap(),
            None
        );
        assert!(s.factors("app", "adam").await.unwrap().is_none());
        assert!(s.delete_factors("app", "ada").await.unwrap());
        assert!(!s.delete_factors("app", "ada").await.unwrap());
        assert!(s.factors("app", "ada").await.unwrap().is_none());
        assert_eq!(s.login_of_handle("app", "handle-ada").await.unwrap(), None);
        // Enrolled again after a reset: a first write again.
        assert!(s.swap_factors(&record("ada", 1), 0).await.unwrap());
        assert!(s.delete_factors("app", "ada").await.unwrap());
    }
}
