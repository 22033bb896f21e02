//! What an account's tokens and userinfo say about it beside `sub`: its
//! profile, as the form of its issuer's accounts writes it. The standard
//! server and the dialects mint from it; only this file tells the
//! dialects' profiles apart.

use serde_json::{json, Map, Value};

use crate::config::{AccountForm, Dialect, LegacyEndpoint, Principal};

/// The claims an account's tokens carry about it: a dialect's principal
/// what the dialect's own tokens carry, so that a route's claim
/// requirements read the same from either kind of token (`permissions`
/// narrowed to the granted scope); a standard issuer's user its own.
pub fn claims(form: AccountForm, p: &Principal, scope: &[String]) -> Map<String, Value> {
    let dialect = match form {
        AccountForm::Dialect(dialect) => dialect,
        AccountForm::Standard => return own_claims(p),
    };
    let mut claims = Map::new();
    match dialect {
        Dialect::ClientFlat => {
            claims.insert("company".into(), json!(p.company));
            claims.insert("permissions".into(), json!(scope));
        }
        Dialect::Project => {
            claims.insert("business".into(), json!(p.business));
            claims.insert("proyecto".into(), json!(p.proyecto));
        }
        Dialect::ClientEnvelope => {}
        Dialect::Session => {
            claims.insert("id".into(), p.id.clone());
            claims.insert("username".into(), json!(p.username));
            claims.insert("nombre".into(), json!(p.nombre));
            if let Some(role) = &p.role {
                claims.insert("role".into(), json!(role));
            }
        }
        Dialect::LoginRefresh => {
            claims.insert("token_use".into(), json!("access"));
            claims.insert("username".into(), json!(p.username));
            claims.insert("role".into(), json!(p.role));
        }
    }
    claims
}

/// A standard issuer's user or client: its own claims as written, then
/// its `roles` (the claim a route's `roles` read).
fn own_claims(p: &Principal) -> Map<String, Value> {
    let mut claims = p.claims.clone();
    if !p.roles.is_empty() {
        claims.insert("roles".into(), json!(p.roles));
    }
    claims
}

/// The claims an account of `form` carries at userinfo beside `sub`.
pub fn claim_names(form: AccountForm) -> &'static [&'static str] {
    match form.dialect() {
        None => &["roles"],
        Some(Dialect::Session) => &["id", "username", "nombre", "role"],
        Some(Dialect::LoginRefresh) => &["username", "role"],
        Some(Dialect::ClientFlat) => &["company", "permissions"],
        Some(Dialect::Project) => &["business", "proyecto"],
        Some(Dialect::ClientEnvelope) => &[],
    }
}

/// Whether an account may still log in by its profile: a client-flat
/// client only while its company is one its endpoint knows (every other
/// account: yes).
pub fn company_known(endpoint: Option<&LegacyEndpoint>, p: &Principal) -> bool {
    match endpoint {
        Some(e) if e.dialect == Dialect::ClientFlat => {
            p.company.as_ref().is_some_and(|c| e.companies.contains(c))
        }
        _ => true,
    }
}
