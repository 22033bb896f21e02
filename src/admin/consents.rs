//! `/admin/consents/ISSUER/LOGIN`: what a user allowed clients that
//! described themselves (registered, or named by a metadata document), as
//! the issuer's `consent_ttl` remembers it: listed (`GET`) and forgotten
//! (`DELETE`, one client's with `?client_id=`, else all of the user's),
//! after which the user is asked again.

use http::StatusCode;
use serde_json::{json, Value};

use super::{json_reply, Admin, Reply};
use crate::respond::{AdminError, ClientRefused};
use crate::store::Consent;

/// The user a path under `/admin/consents/` names: `ISSUER/LOGIN`, each
/// percent-encoded.
pub(super) fn user_path(path: &str) -> Option<(String, String)> {
    super::oauth2_clients::two_segments(path.strip_prefix("/admin/consents/")?)
}

fn describe(c: &Consent) -> Value {
    json!({
        "client_id": c.client_id,
        "scope": c.scope,
        "granted": c.granted_at,
        "expires": c.expires_at,
    })
}

impl Admin {
    /// An issuer with OAuth 2.0 endpoints: one that remembers consents,
    /// or did (what it kept can still be listed and forgotten).
    pub(super) fn remembering_issuer(&self, name: &str) -> Result<(), AdminError> {
        let live = self.shared.live.load();
        let serves = live
            .issuers()
            .iter()
            .any(|i| i.config.name == name && i.config.oauth2.is_some());
        match serves {
            true => Ok(()),
            false => Err(ClientRefused::NotAnAuthorizationServer(name.to_string()).into()),
        }
    }

    pub(super) async fn list_consents(
        &self,
        issuer: &str,
        login: &str,
    ) -> Result<Reply, AdminError> {
        self.remembering_issuer(issuer)?;
        let mut held = self.shared.store.consents(issuer, login).await?;
        held.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        let list: Vec<Value> = held.iter().map(describe).collect();
        Ok(json_reply(StatusCode::OK, json!({ "consents": list })))
    }

    pub(super) async fn delete_consents(
        &self,
        issuer: &str,
        login: &str,
        query: Option<&str>,
    ) -> Result<Reply, AdminError> {
        self.remembering_issuer(issuer)?;
        let client_id = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .find(|(k, _)| k == "client_id")
            .map(|(_, v)| v.into_owned());
        let deleted = self
            .shared
            .store
            .delete_consents(issuer, login, client_id.as_deref())
            .await?;
        tracing::info!(target: "portero::admin", issuer, login = ?login, client_id = ?client_id, deleted, "consents forgotten");
        Ok(json_reply(StatusCode::OK, json!({ "deleted": deleted })))
    }
}
