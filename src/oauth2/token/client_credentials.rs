//! RFC 6749 §4.4: a client's own token, with at most its scopes, for the
//! resource it names.

use serde_json::json;

use super::super::form::Form;
use super::super::mint::{answer, mint, narrowed, Cnf};
use super::super::{Answer, Endpoints, Error, Request};
use crate::config::Principal;
use crate::identity::profile;

pub(super) fn grant(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    form: &Form,
    client: &Principal,
    bound: Option<Cnf<'_>>,
) -> Result<Answer, Error> {
    let scope = narrowed(form.get("scope"), &client.permissions)?;
    let mut claims = profile::claims(ctx.issuer.accounts.form, client, &scope);
    if let Some(resource) = super::super::auth_request::resource(ctx, form.get("resource"))? {
        claims.insert("aud".into(), json!(resource));
    }
    super::super::mint::bind(&mut claims, bound);
    let minted = mint(ctx, req.now, &client.login, claims, client, &scope, None)?;
    Ok(answer(req.now, minted, &scope, &[]))
}
