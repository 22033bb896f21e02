//! `DELETE /admin/sessions?issuer=NAME&sub=SUB` (or `&sid=SID`): ends the
//! browser sessions a user (or one provider session) holds at the routes
//! that sign people in, on every instance.

use http::StatusCode;
use serde_json::json;

use super::{json_reply, Admin, Reply};
use crate::respond::{AdminError, SessionRefused};
use crate::store::SessionOwner;

impl Admin {
    pub(super) async fn end_sessions(&self, query: Option<&str>) -> Result<Reply, AdminError> {
        let mut issuer = None;
        let mut owner = None;
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*k {
                "issuer" => issuer = Some(v.into_owned()),
                "sub" if owner.is_none() => owner = Some(SessionOwner::Subject(v.into_owned())),
                "sid" if owner.is_none() => {
                    owner = Some(SessionOwner::ProviderSession(v.into_owned()))
                }
                "sub" | "sid" => return Err(SessionRefused::NoOwner.into()),
                _ => {}
            }
        }
        let (Some(issuer), Some(owner)) = (issuer, owner) else {
            return Err(SessionRefused::NoOwner.into());
        };
        let live = self.shared.live.load();
        let signs_in = live
            .issuers()
            .iter()
            .any(|i| i.config.name == issuer && i.login.is_some());
        if !signs_in {
            return Err(SessionRefused::NoSuchProvider(issuer).into());
        }
        let ended = self.shared.sessions.end_all(&issuer, &owner).await?;
        tracing::info!(target: "portero::admin", issuer, ended, "browser sessions ended");
        Ok(json_reply(StatusCode::OK, json!({ "ended": ended })))
    }
}
