//! What users allowed clients that described themselves (registered, or
//! named by a metadata document): remembered per issuer, user and client
//! for the issuer's `consent_ttl`, listed and revoked by the admin API.
//! Each backend keeps them in its own file (`embedded/consent.rs`,
//! `redis/consent.rs`).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;

#[async_trait]
pub trait Consents: Send + Sync {
    /// Keeps `consent` until its `expires_at`, in place of any the user
    /// gave the client before.
    async fn put_consent(&self, consent: &Consent) -> Result<(), StoreError>;
    /// The user's live consents at the issuer, one per client.
    async fn consents(&self, issuer: &str, login: &str) -> Result<Vec<Consent>, StoreError>;
    /// Forgets the user's consent to `client_id`, or every one of theirs
    /// at the issuer; how many there were.
    async fn delete_consents(
        &self,
        issuer: &str,
        login: &str,
        client_id: Option<&str>,
    ) -> Result<usize, StoreError>;
}

/// A user's consent to a client: the scopes it may have without asking.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Consent {
    pub issuer: String,
    pub login: String,
    pub client_id: String,
    /// Space-separated.
    pub scope: String,
    pub granted_at: i64,
    pub expires_at: i64,
}

impl Consent {
    pub fn live(&self, now: i64) -> bool {
        self.expires_at > now
    }

    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }
}

/// What every backend must do with these records, run by each one's tests.
#[cfg(test)]
pub(crate) mod checks {
    use super::*;
    use crate::clock::unix_now;

    fn consent(login: &str, client_id: &str, scope: &str, expires_at: i64) -> Consent {
        Consent {
            issuer: "app".into(),
            login: login.into(),
            client_id: client_id.into(),
            scope: scope.into(),
            granted_at: expires_at - 100,
            expires_at,
        }
    }

    pub async fn consents_are_kept_per_user_and_client_and_forgotten(s: &dyn Consents) {
        let later = unix_now() + 3600;
        let url_client = "https://app.example/client.json";
        s.put_consent(&consent("ada", "reg-1", "a", later))
            .await
            .unwrap();
        s.put_consent(&consent("ada", "reg-1", "a b", later))
            .await
            .unwrap();
        s.put_consent(&consent("ada", url_client, "c", later))
            .await
            .unwrap();
        s.put_consent(&consent("ada", "reg-old", "x", unix_now() - 1))
            .await
            .unwrap();
        s.put_consent(&consent("adam", "reg-1", "z", later))
            .await
            .unwrap();
        let mut held = s.consents("app", "ada").await.unwrap();
        held.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        let scopes: Vec<(&str, &str)> = held
            .iter()
            .map(|c| (c.client_id.as_str(), c.scope.as_str()))
            .collect();
        assert_eq!(scopes, [(url_client, "c"), ("reg-1", "a b")]);
        assert!(s.consents("other", "ada").await.unwrap().is_empty());
        assert_eq!(
            s.delete_consents("app", "ada", Some("reg-1"))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            s.delete_consents("app", "ada", Some("reg-1"))
                .await
                .unwrap(),
            0
        );
        assert_eq!(s.consents("app", "ada").await.unwrap().len(), 1);
        assert!(s.delete_consents("app", "ada", None).await.unwrap() >= 1);
        assert!(s.consents("app", "ada").await.unwrap().is_empty());
        assert_eq!(
            s.consents("app", "adam").await.unwrap().len(),
            1,
            "another user's stay"
        );
    }
}
