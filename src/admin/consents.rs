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
    let rest = path.strip_prefix("/admin/consents/")?;
    let (issuer, login) = rest.split_once('/')?;
    if issuer.is_empty() || login.is_empty() || login.contains('/') {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .ok()
            .map(|s| s.into_owned())
    };
    Some((decode(issuer)?, decode(login)?))
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
    /// An issuer that remembers consents.
    fn remembering_issuer(&self, name: &str) -> Result<(), AdminError> {
        let live = self.shared.live.load();
        let remembers = live.issuers().iter().any(|i| {
            i.config.name == name
                && i.config
                    .oauth2
                    .as_ref()
                    .is_some_and(|o| o.consent_ttl.is_some())
        });
        match remembers {
            true => Ok(()),
            false => Err(ClientRefused::NoSuchIssuer(name.to_string()).into()),
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
