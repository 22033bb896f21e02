//! The standard issuer's records: authorization codes, single sign-on
//! sessions and dynamically registered clients. Each is kept under a
//! SHA-256 of its secret (a code, a session cookie) or under its issuer
//! and client id, never the secret itself; each backend keeps them in its
//! own file (`embedded/oauth.rs`, `redis/oauth.rs`), which implements
//! [`SignOn`] and [`RegisteredClients`].

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreError;

/// Authorization codes and the sign-on sessions they are issued in.
#[async_trait]
pub trait SignOn: Send + Sync {
    /// Keeps a new authorization code under `hash` until its `expires_at`.
    async fn put_code(&self, hash: &str, record: &CodeRecord) -> Result<(), StoreError>;
    /// Redeems the code `hash` in one atomic step: returns the record as it
    /// was (so `used` is false for the first redemption only) and leaves it
    /// `used`; a redemption of a used one also leaves it `replayed`. `None`
    /// when no such code is held (never made, or expired).
    async fn redeem_code(&self, hash: &str) -> Result<Option<CodeRecord>, StoreError>;
    /// Notes the refresh token (`refresh_hash`) the first redemption
    /// issued, atomically: `false` when the code was replayed meanwhile or
    /// is gone, and then the caller revokes what it issued.
    async fn code_issued(&self, hash: &str, refresh_hash: &str) -> Result<bool, StoreError>;

    /// Keeps a sign-on session under its `sid` until its `expires_at`.
    async fn put_sso(&self, session: &SsoSession) -> Result<(), StoreError>;
    /// The session `sid`, unless ended or expired.
    async fn get_sso(&self, sid: &str) -> Result<Option<SsoSession>, StoreError>;
    /// Ends the session `sid` and returns it as it was.
    async fn end_sso(&self, sid: &str) -> Result<Option<SsoSession>, StoreError>;
    /// Adds a refresh family to the session's `families`, atomically;
    /// `false` when the session has ended or expired (then the caller
    /// revokes the family: it outlived its session).
    async fn sso_add_family(&self, sid: &str, family: &str) -> Result<bool, StoreError>;
}

/// Clients registered by RFC 7591, by issuer and client id.
#[async_trait]
pub trait RegisteredClients: Send + Sync {
    /// Writes a registered client (a new one, or one changed), kept until
    /// its `expires_at`.
    async fn put_client(&self, client: &RegisteredClient) -> Result<(), StoreError>;
    /// The registered client, unless deleted or expired.
    async fn get_client(
        &self,
        issuer: &str,
        client_id: &str,
    ) -> Result<Option<RegisteredClient>, StoreError>;
    /// Every unexpired registered client, of `issuer` or of all.
    async fn registered_clients(
        &self,
        issuer: Option<&str>,
    ) -> Result<Vec<RegisteredClient>, StoreError>;
    /// Deletes a registered client; whether it was there.
    async fn delete_client(&self, issuer: &str, client_id: &str) -> Result<bool, StoreError>;
    /// Notes a use of the client: `last_used = now`, kept until `expires_at`.
    /// A client that is gone stays gone.
    async fn touch_client(
        &self,
        issuer: &str,
        client_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError>;
}

/// An authorization code (RFC 6749 §4.1.2), stored under the SHA-256 of
/// the code. It lives at most 60 s and is redeemed once: a second
/// redemption marks it `replayed`, and what the first one gave is revoked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CodeRecord {
    pub issuer: String,
    pub client_id: String,
    /// The `redirect_uri` of the authorization request, exactly as sent.
    pub redirect_uri: String,
    /// The PKCE S256 challenge (RFC 7636 §4.2).
    pub code_challenge: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The resource indicator (RFC 8707) the tokens are for.
    pub resource: Option<String>,
    /// OpenID Connect: the request's `nonce`, for the ID token.
    pub nonce: Option<String>,
    /// The user's login (to re-read them) and the tokens' `sub`.
    pub login: String,
    pub sub: String,
    /// When the user last typed their credentials (OIDC `auth_time`).
    pub auth_time: i64,
    /// How they signed in (RFC 8176 `amr`).
    #[serde(default)]
    pub amr: Vec<String>,
    /// The DPoP key the request bound the code to (`dpop_jkt`, RFC 9449
    /// §10): redeemed only with a proof of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// The sign-on session's id as ID tokens name it (`sid`), to tie the
    /// refresh family to it.
    pub sid: Option<String>,
    pub expires_at: i64,
    /// The access token's `jti`, chosen when the code is made, so that a
    /// replay can revoke it whatever happened to the first redemption.
    pub jti: String,
    /// Set by the first redemption.
    #[serde(default)]
    pub used: bool,
    /// Set by any redemption after the first.
    #[serde(default)]
    pub replayed: bool,
    /// The refresh token the first redemption issued (its hash).
    #[serde(default)]
    pub refresh_hash: Option<String>,
}

/// A single sign-on session, stored under its `sid`. Its cookie holds
/// the sid and a secret; the record holds the secret's SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SsoSession {
    pub issuer: String,
    pub login: String,
    pub sub: String,
    /// Its public id: ID tokens' `sid`, and `end_session`'s handle.
    pub sid: String,
    /// SHA-256 of the cookie's secret, hex.
    pub secret_hash: String,
    /// SHA-256 of the user's stored credential when they signed in: a
    /// password changed since (or a user removed and made again) ends it.
    #[serde(default)]
    pub credential: String,
    /// When the user typed their credentials.
    pub auth_time: i64,
    /// How they signed in (RFC 8176 `amr`); a session from before factors
    /// were known was begun with a password.
    #[serde(default = "password_alone")]
    pub amr: Vec<String>,
    pub expires_at: i64,
    /// The refresh families begun under it (hashes of their first token),
    /// revoked when logging out asks for it.
    #[serde(default)]
    pub families: Vec<String>,
}

fn password_alone() -> Vec<String> {
    vec!["pwd".to_string()]
}

/// A client registered at the registration endpoint (RFC 7591).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RegisteredClient {
    pub issuer: String,
    pub client_id: String,
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    /// Space-separated.
    pub scope: String,
    pub created: i64,
    /// Unix seconds it was last used at the authorization or token endpoint.
    pub last_used: i64,
    /// It is forgotten at this time unless used before (`last_used` +
    /// the issuer's `registered_client_ttl`).
    pub expires_at: i64,
    /// The address that registered it, for the operator.
    pub registered_from: Option<String>,
    /// Its token requests carry a DPoP proof (RFC 9449 §5.2).
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
    /// Its authorization requests are pushed first (RFC 9126 §6).
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
}

#[cfg(test)]
impl CodeRecord {
    pub fn sample(issuer: &str, expires_at: i64) -> CodeRecord {
        CodeRecord {
            issuer: issuer.into(),
            client_id: "client".into(),
            redirect_uri: "https://app.example/cb?x=1".into(),
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            scope: "openid profile".into(),
            resource: Some("https://api.example/".into()),
            nonce: None,
            login: "ada".into(),
            sub: "user-1".into(),
            auth_time: expires_at - 100,
            amr: vec!["pwd".into()],
            dpop_jkt: None,
            sid: Some("sid-1".into()),
            expires_at,
            jti: "jti-1".into(),
            used: false,
            replayed: false,
            refresh_hash: None,
        }
    }
}

#[cfg(test)]
impl SsoSession {
    pub fn sample(sid: &str, expires_at: i64) -> SsoSession {
        SsoSession {
            issuer: "i".into(),
            login: "ada".into(),
            sub: "user-1".into(),
            sid: sid.into(),
            secret_hash: "ab".repeat(32),
            credential: "cd".repeat(32),
            auth_time: expires_at - 100,
            amr: vec!["pwd".into()],
            expires_at,
            families: Vec::new(),
        }
    }
}

#[cfg(test)]
impl RegisteredClient {
    /// A public client with no redirect URI (client credentials only):
    /// empty lists, which a record must keep as lists through every write.
    pub fn sample(issuer: &str, client_id: &str, expires_at: i64) -> RegisteredClient {
        RegisteredClient {
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_name: Some("Ünïcode \"app\" / {x}".into()),
            redirect_uris: Vec::new(),
            grant_types: Vec::new(),
            scope: "read".into(),
            created: expires_at - 1000,
            last_used: expires_at - 1000,
            expires_at,
            registered_from: None,
            dpop_bound_access_tokens: true,
            require_pushed_authorization_requests: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client kept before it could ask for DPoP or pushed requests
    /// reads back as asking for neither.
    #[test]
    fn a_client_kept_before_its_duties_existed_has_none() {
        let mut kept = serde_json::to_value(RegisteredClient::sample("i", "reg-1", 9)).unwrap();
        let kept = kept.as_object_mut().unwrap();
        kept.remove("dpop_bound_access_tokens");
        kept.remove("require_pushed_authorization_requests");
        let read: RegisteredClient = serde_json::from_value(kept.clone().into()).unwrap();
        assert!(!read.dpop_bound_access_tokens && !read.require_pushed_authorization_requests);
    }
}

/// What every backend must do with these records, run by each one's tests.
#[cfg(test)]
pub(crate) mod checks {
    use super::*;
    use crate::clock::unix_now;

    pub async fn a_code_is_redeemed_once(s: &dyn SignOn) {
        let now = unix_now();
        let code = CodeRecord::sample("i", now + 60);
        s.put_code("one", &code).await.unwrap();
        // The first redemption gets the record as it was: unused.
        assert_eq!(s.redeem_code("one").await.unwrap(), Some(code.clone()));
        assert!(s.code_issued("one", "refresh-1").await.unwrap());
        let second = s.redeem_code("one").await.unwrap().unwrap();
        assert!(second.used && !second.replayed);
        assert_eq!(second.refresh_hash.as_deref(), Some("refresh-1"));
        let third = s.redeem_code("one").await.unwrap().unwrap();
        assert!(third.used && third.replayed, "the second left it replayed");
        assert_eq!(third.expires_at, code.expires_at);

        // A replay before the first redemption noted what it issued.
        s.put_code("two", &code).await.unwrap();
        assert!(!s.redeem_code("two").await.unwrap().unwrap().used);
        let replay = s.redeem_code("two").await.unwrap().unwrap();
        assert!(replay.used && !replay.replayed);
        assert!(!s.code_issued("two", "refresh-2").await.unwrap());
        let after = s.redeem_code("two").await.unwrap().unwrap();
        assert!(after.replayed && after.refresh_hash.is_none());

        assert_eq!(s.redeem_code("never").await.unwrap(), None);
        assert!(!s.code_issued("never", "r").await.unwrap());
    }

    pub async fn an_expired_code_is_not_held(s: &dyn SignOn) {
        let code = CodeRecord::sample("i", unix_now() - 1);
        s.put_code("expired", &code).await.unwrap();
        assert_eq!(s.redeem_code("expired").await.unwrap(), None);
        assert!(!s.code_issued("expired", "r").await.unwrap());
    }

    pub async fn a_session_ends_and_takes_no_family_after(s: &dyn SignOn) {
        let now = unix_now();
        let session = SsoSession::sample("sid-a", now + 600);
        s.put_sso(&session).await.unwrap();
        assert_eq!(s.get_sso("sid-a").await.unwrap(), Some(session.clone()));
        assert!(s.sso_add_family("sid-a", "f1").await.unwrap());
        assert!(s.sso_add_family("sid-a", "f1").await.unwrap());
        assert!(s.sso_add_family("sid-a", "f2").await.unwrap());
        let held = s.get_sso("sid-a").await.unwrap().unwrap();
        assert_eq!(held.families, ["f1", "f2"]);
        assert_eq!(held.expires_at, session.expires_at);
        assert_eq!(s.end_sso("sid-a").await.unwrap(), Some(held));
        assert_eq!(s.get_sso("sid-a").await.unwrap(), None);
        assert!(!s.sso_add_family("sid-a", "f3").await.unwrap());
        assert_eq!(s.end_sso("sid-a").await.unwrap(), None);

        let expired = SsoSession::sample("sid-old", now - 1);
        s.put_sso(&expired).await.unwrap();
        assert_eq!(s.get_sso("sid-old").await.unwrap(), None);
        assert!(!s.sso_add_family("sid-old", "f").await.unwrap());
        assert_eq!(s.end_sso("sid-old").await.unwrap(), None);
        assert!(!s.sso_add_family("sid-never", "f").await.unwrap());
    }

    pub async fn clients_are_listed_by_issuer_and_stay_deleted(s: &dyn RegisteredClients) {
        let now = unix_now();
        let sorted = |mut v: Vec<RegisteredClient>| {
            v.sort_by(|x, y| (&x.issuer, &x.client_id).cmp(&(&y.issuer, &y.client_id)));
            v
        };
        // "a" is a prefix of "ab": neither's list holds the other's.
        let a1 = RegisteredClient::sample("a", "c1", now + 600);
        let a2 = RegisteredClient {
            redirect_uris: vec!["https://app.example/cb".into()],
            grant_types: vec!["authorization_code".into()],
            client_name: Some("agent".into()),
            ..RegisteredClient::sample("a", "c2", now + 600)
        };
        let ab1 = RegisteredClient::sample("ab", "c1", now + 600);
        let old = RegisteredClient::sample("a", "old", now - 1);
        for c in [&a1, &a2, &ab1, &old] {
            s.put_client(c).await.unwrap();
        }
        assert_eq!(s.get_client("a", "c1").await.unwrap(), Some(a1.clone()));
        assert_eq!(s.get_client("ab", "c1").await.unwrap(), Some(ab1.clone()));
        assert_eq!(s.get_client("a", "old").await.unwrap(), None);
        assert_eq!(s.get_client("a", "none").await.unwrap(), None);
        assert_eq!(
            sorted(s.registered_clients(Some("a")).await.unwrap()),
            [a1.clone(), a2.clone()]
        );
        assert_eq!(
            s.registered_clients(Some("ab")).await.unwrap(),
            std::slice::from_ref(&ab1)
        );
        assert_eq!(
            sorted(s.registered_clients(None).await.unwrap()),
            [a1.clone(), a2.clone(), ab1.clone()]
        );

        s.touch_client("a", "c1", now + 5, now + 900).await.unwrap();
        let touched = RegisteredClient {
            last_used: now + 5,
            expires_at: now + 900,
            ..a1.clone()
        };
        assert_eq!(
            s.get_client("a", "c1").await.unwrap(),
            Some(touched.clone())
        );

        assert!(s.delete_client("a", "c2").await.unwrap());
        assert!(!s.delete_client("a", "c2").await.unwrap());
        s.touch_client("a", "c2", now + 6, now + 900).await.unwrap();
        assert_eq!(s.get_client("a", "c2").await.unwrap(), None, "stays gone");
        assert_eq!(s.registered_clients(Some("a")).await.unwrap(), [touched]);
        // An expired one is not brought back either, nor counted deleted.
        s.touch_client("a", "old", now + 7, now + 900)
            .await
            .unwrap();
        assert_eq!(s.get_client("a", "old").await.unwrap(), None);
        assert!(!s.delete_client("a", "old").await.unwrap());
    }
}
