//! `/admin/oauth2-clients`: the clients registered at a standard issuer's
//! registration endpoint (RFC 7591), listed and deleted. Listed clients
//! are the config's and are not here.

use http::StatusCode;
use serde_json::{json, Value};

use super::{json_reply, Admin, Reply};
use crate::respond::{AdminError, ClientRefused};
use crate::store::RegisteredClient;

/// The client a path under `/admin/oauth2-clients/` names: `ISSUER/ID`.
pub(super) fn client_path(path: &str) -> Option<(String, String)> {
    two_segments(path.strip_prefix("/admin/oauth2-clients/")?)
}

/// `A/B`, each non-empty and percent-decoded: an issuer and what of it
/// a path names.
pub(super) fn two_segments(rest: &str) -> Option<(String, String)> {
    let (first, second) = rest.split_once('/')?;
    if first.is_empty() || second.is_empty() || second.contains('/') {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .ok()
            .map(|s| s.into_owned())
    };
    Some((decode(first)?, decode(second)?))
}

fn describe(c: &RegisteredClient) -> Value {
    json!({
        "issuer": c.issuer,
        "client_id": c.client_id,
        "client_name": c.client_name,
        "redirect_uris": c.redirect_uris,
        "grant_types": c.grant_types,
        "created": c.created,
        "last_used": c.last_used,
        "expires": c.expires_at,
        "registered_from": c.registered_from,
        "dpop_bound_access_tokens": c.dpop_bound_access_tokens,
        "require_pushed_authorization_requests": c.require_pushed_authorization_requests,
    })
}

impl Admin {
    /// An issuer that takes registrations.
    fn registering_issuer(&self, name: &str) -> Result<(), AdminError> {
        let live = self.shared.live.load();
        let takes = live.issuers().iter().any(|i| {
            i.config.name == name
                && i.config
                    .oauth2
                    .as_ref()
                    .is_some_and(|o| o.registration != crate::config::Registration::Off)
        });
        match takes {
            true => Ok(()),
            false => Err(ClientRefused::NoSuchIssuer(name.to_string()).into()),
        }
    }

    pub(super) async fn list_oauth2_clients(
        &self,
        query: Option<&str>,
    ) -> Result<Reply, AdminError> {
        let issuer = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .find(|(k, _)| k == "issuer")
            .map(|(_, v)| v.into_owned());
        if let Some(issuer) = &issuer {
            self.registering_issuer(issuer)?;
        }
        let mut clients = self
            .shared
            .store
            .registered_clients(issuer.as_deref())
            .await?;
        clients.sort_by(|a, b| (a.created, &a.client_id).cmp(&(b.created, &b.client_id)));
        let list: Vec<Value> = clients.iter().map(describe).collect();
        Ok(json_reply(StatusCode::OK, json!({ "clients": list })))
    }

    pub(super) async fn delete_oauth2_client(
        &self,
        issuer: &str,
        id: &str,
    ) -> Result<Reply, AdminError> {
        self.registering_issuer(issuer)?;
        if !self.shared.store.delete_client(issuer, id).await? {
            return Err(ClientRefused::NoSuchClient(id.to_string()).into());
        }
        tracing::info!(target: "portero::admin", issuer, client_id = id, "a registered client deleted");
        Ok(json_reply(StatusCode::OK, json!({ "deleted": id })))
    }
}
