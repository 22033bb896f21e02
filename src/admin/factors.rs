//! `DELETE /admin/users/ISSUER/LOGIN/factors`: forgets a person's
//! passkeys, one-time code and recovery codes (a lost device, a takeover
//! undone), and revokes every token and sign-on session they hold at the
//! issuer, on every instance: their next sign-in is with their password,
//! then enrolling again where a second factor is required.

use http::StatusCode;
use serde_json::json;

use super::{json_reply, Admin, Reply};
use crate::auth::revocation::Revocation;
use crate::respond::AdminError;

/// The user a path names: `/admin/users/ISSUER/LOGIN/factors`, each
/// segment percent-encoded.
pub(super) fn factors_path(path: &str) -> Option<(String, String)> {
    let rest = path
        .strip_prefix("/admin/users/")?
        .strip_suffix("/factors")?;
    super::oauth2_clients::two_segments(rest)
}

impl Admin {
    pub(super) async fn reset_factors(
        &self,
        issuer: &str,
        login: &str,
    ) -> Result<Reply, AdminError> {
        self.remembering_issuer(issuer)?;
        let live = self.shared.live.load();
        let found = live.issuers().iter().find(|i| i.config.name == issuer);
        let (iss, identity) = match found {
            Some(i) => (i.config.iss.clone(), i.identity.clone()),
            None => {
                return Err(crate::respond::ClientRefused::NotAnAuthorizationServer(
                    issuer.to_string(),
                )
                .into())
            }
        };
        // Their tokens name them by subject: their own login, or their id.
        let sub = match &identity {
            Some(identity) => {
                let principal = identity.logins(&self.shared.store).principal(login).await;
                match principal {
                    Ok(Some(p)) => identity.accounts().subject_of(&p),
                    _ => login.to_string(),
                }
            }
            None => login.to_string(),
        };
        let deleted = self.shared.store.delete_factors(issuer, login).await?;
        let revoked = Revocation::Subject {
            iss,
            sub,
            before: self.shared.clock.unix() + 1,
        };
        self.shared
            .store
            .add_revocations(std::slice::from_ref(&revoked))
            .await?;
        self.shared.revocations.apply(&revoked);
        tracing::info!(target: "portero::admin", issuer, login = ?login, deleted, "factors reset and sessions revoked");
        Ok(json_reply(
            StatusCode::OK,
            json!({ "deleted": deleted, "revoked": [revoked] }),
        ))
    }
}
