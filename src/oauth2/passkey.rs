//! Passkeys at portero's pages: the issuer's relying party, a ceremony's
//! state as a page carries it (sealed into the page by `ticket`, bound to
//! the browser or session, lasting five minutes, and claimed once in the
//! store on its answer: made on one instance, answered on any other,
//! never twice), and the sign-in page's passkey button. Signing in with
//! the answer is `passkey_sign_in`; registering one, `account`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{csrf, ticket, Endpoints};
use crate::factors::passkeys::RelyingParty;

/// How long a ceremony's challenge may be answered.
pub const CEREMONY_TTL: i64 = 300;
/// The sign-in page's ceremonies' ticket purpose.
pub const SIGN_IN: &str = "passkey-sign-in";

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
    let name = super::page::site_name(ctx);
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
        &ctx.settings.sign_in,
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
