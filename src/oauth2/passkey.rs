//! Passkeys at the sign-in page: the page offers the browser's passkey
//! prompt (no username typed), and the answer signs the person in alone,
//! as two factors. The ceremony's state is sealed into the page
//! (`ticket`), bound to the browser's form cookie, lasting five minutes,
//! and claimed once in the store on its answer: a challenge made on one
//! instance is answered on any other, and never twice. The passkey must
//! be one registered to the user its handle names, and its sign count
//! must not go backwards (a cloned authenticator: refused and logged).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use webauthn_rs::prelude::Passkey;

use super::auth_request::{Asked, AuthRequest};
use super::form::Form;
use super::{csrf, second_factor, sso, ticket, Answer, Endpoints, Request};
use crate::factors::passkeys::{Refused, RelyingParty};
use crate::identity::Reason;

/// How long a ceremony's challenge may be answered.
pub const CEREMONY_TTL: i64 = 300;
const SIGN_IN: &str = "passkey-sign-in";

/// A ceremony's state, as the page carries it.
#[derive(Serialize, Deserialize)]
pub struct Ceremony {
    /// Claimed once in the store when answered.
    pub id: String,
    pub binding: String,
    pub state: Value,
    pub expires_at: i64,
}

impl Ceremony {
    pub fn new(binding: &str, state: Value, now: i64) -> Ceremony {
        Ceremony {
            id: crate::tokens::random_id(16),
            binding: binding.to_string(),
            state,
            expires_at: now + CEREMONY_TTL,
        }
    }

    /// Whether it is live and `binding`'s; then claimed once, on every
    /// instance sharing the store.
    pub async fn claim(&self, ctx: &Endpoints<'_>, binding: &str, now: i64) -> bool {
        if self.expires_at <= now || binding.is_empty() || !csrf::same(Some(binding), &self.binding)
        {
            return false;
        }
        let key = format!("passkey-ceremony\0{}", self.id);
        let ttl = std::time::Duration::from_secs(CEREMONY_TTL as u64 + 60);
        ctx.issuer.store.claim(&key, ttl).await.unwrap_or(false)
    }
}

/// The issuer's relying party, where passkeys are on.
pub fn relying_party(ctx: &Endpoints<'_>) -> Option<RelyingParty> {
    let rp_id = ctx.settings.sign_in.passkeys.as_deref()?;
    let name = ctx
        .settings
        .sign_in
        .title
        .as_deref()
        .unwrap_or(&ctx.issuer.config.name);
    match RelyingParty::new(rp_id, &ctx.settings.public_url, name) {
        Ok(rp) => Some(rp),
        Err(e) => {
            tracing::warn!(issuer = %ctx.issuer.config.name, error = %e, "passkeys are off: the relying party cannot be made");
            None
        }
    }
}

/// The sign-in page's passkey button, for the browser `binding`: its
/// options and sealed ceremony, rendered.
pub async fn offer(ctx: &Endpoints<'_>, binding: &str, now: i64, label: &str) -> Option<String> {
    let rp = relying_party(ctx)?;
    let (options, state) = rp.start_sign_in().ok()?;
    let ceremony = ticket::seal(ctx, SIGN_IN, &Ceremony::new(binding, state, now))
        .await
        .ok()?;
    Some(super::page::passkey_button(
        "get",
        label,
        &options.to_string(),
        &ceremony,
    ))
}

/// A credential id as the store names it.
pub fn id_text(id: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

/// The passkey's answer posted on the sign-in page.
pub async fn sign_in(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    form: &Form,
    r: &AuthRequest,
    asked: &Asked,
) -> Answer {
    match signed_in(ctx, req, form).await {
        Ok((user, amr)) => second_factor::finish(ctx, req, r, asked, &user, amr).await,
        Err(why) => {
            let failed = (StatusCode::UNAUTHORIZED, why, "");
            super::sign_in::show(ctx, req, r, &asked.scope, None, Some(failed)).await
        }
    }
}

/// Who the answer signs in, and how (`amr`); or what the page says.
async fn signed_in(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    form: &Form,
) -> Result<(std::sync::Arc<crate::config::Principal>, Vec<String>), &'static str> {
    const NOT_SIGNED_IN: &str =
        "That passkey could not sign you in. Try again, or use your password.";
    let rp = relying_party(ctx).ok_or(NOT_SIGNED_IN)?;
    let ceremony: Ceremony = ticket::open(ctx, SIGN_IN, form.get("ceremony").unwrap_or_default())
        .await
        .ok()
        .flatten()
        .ok_or(NOT_SIGNED_IN)?;
    let binding = sso::cookie(req, &sso::cookie_name(ctx, "portero-form")).unwrap_or_default();
    if !ceremony.claim(ctx, binding, req.now).await {
        return Err("That passkey prompt has ended or was used. Try again.");
    }
    let (answer, handle, id) = rp
        .identify(form.get("passkey").unwrap_or_default())
        .map_err(|_| NOT_SIGNED_IN)?;
    let store = ctx.issuer.store;
    let issuer = &ctx.issuer.config.name;
    let refuse = |login: &str, why: &str| {
        tracing::warn!(target: "portero::login", issuer = %issuer, login = ?login, why, "passkey sign-in refused");
        ctx.issuer.logins.note(Reason::WrongCode);
        NOT_SIGNED_IN
    };
    let login = match store.login_of_handle(issuer, &handle.to_string()).await {
        Ok(Some(login)) => login,
        Ok(None) => return Err(refuse("", "no user has the passkey's user handle")),
        Err(_) => return Err("The service is unavailable. Try again later."),
    };
    // On the second step's page: only the passkey of the person whose
    // password it follows.
    if let Some(expected) = second_factor::pending_login(ctx, req, form).await {
        if expected != login {
            return Err(refuse(
                &login,
                "the passkey is another person's than the password's",
            ));
        }
    }
    let id = id_text(&id);
    for _ in 0..3 {
        let held = store
            .factors(issuer, &login)
            .await
            .map_err(|_| NOT_SIGNED_IN)?;
        let Some(held) = held.filter(|h| h.handle == handle.to_string()) else {
            return Err(refuse(&login, "the user has no passkeys"));
        };
        let Some(at) = held.passkeys.iter().position(|p| p.id == id) else {
            return Err(refuse(
                &login,
                "not a passkey registered to the user its handle names",
            ));
        };
        let mut passkey: Passkey = serde_json::from_value(held.passkeys[at].credential.clone())
            .map_err(|_| NOT_SIGNED_IN)?;
        let result = match rp.finish_sign_in(&answer, &ceremony.state, &passkey) {
            Ok(result) => result,
            Err(Refused::Cloned) => {
                return Err(refuse(
                    &login,
                    "its sign count went backwards: the authenticator may have been cloned",
                ));
            }
            Err(Refused::Invalid(e)) => {
                tracing::debug!(error = %e, "passkey answer refused");
                return Err(refuse(&login, "the answer does not verify"));
            }
        };
        passkey.update_credential(&result);
        let mut next = held.clone();
        next.version += 1;
        next.passkeys[at].credential = serde_json::to_value(&passkey).map_err(|_| NOT_SIGNED_IN)?;
        next.passkeys[at].used_at = Some(req.now);
        // The sign count is written over the record read: two answers of
        // one authenticator at once cannot both move it.
        if !store
            .swap_factors(&next, held.version)
            .await
            .map_err(|_| NOT_SIGNED_IN)?
        {
            continue;
        }
        let user = super::mint::live_user(ctx, &login)
            .await
            .ok()
            .flatten()
            .ok_or_else(|| refuse(&login, "the user may not sign in"))?;
        let kind = if result.backup_eligible() {
            "swk"
        } else {
            "hwk"
        };
        let _ = ctx.issuer.logins.signed_in(&user.login).await;
        return Ok((user, vec![kind.to_string(), "mfa".to_string()]));
    }
    Err("The service is busy. Try again.")
}
