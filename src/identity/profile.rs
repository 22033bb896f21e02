//! What an account's tokens and userinfo say about it beside `sub`: its
//! profile, as the form of its issuer's accounts describes it
//! (`AccountForm::profile`). The standard server and the dialects mint
//! from it; nothing here tells one form from another by name.

use serde_json::{json, Map, Value};

use crate::config::{AccountForm, LegacyEndpoint, Principal, ProfileClaim};

/// The claims an account's tokens carry about it: what its form names,
/// `permissions` narrowed to the granted `scope`; a standard account its
/// own claims, then its `roles` (the claim a route's `roles` read).
pub fn claims(form: AccountForm, p: &Principal, scope: &[String]) -> Map<String, Value> {
    if form == AccountForm::Standard {
        let mut claims = p.claims.clone();
        if !p.roles.is_empty() {
            claims.insert("roles".into(), json!(p.roles));
        }
        return claims;
    }
    let mut claims = Map::new();
    for &(name, source) in form.profile() {
        let value = match source {
            ProfileClaim::Field | ProfileClaim::FieldIfSet => field(p, name),
            ProfileClaim::GrantedScope => json!(scope),
            ProfileClaim::Fixed(value) => json!(value),
        };
        if !(source == ProfileClaim::FieldIfSet && value.is_null()) {
            claims.insert(name.into(), value);
        }
    }
    claims
}

/// The principal's field `name`, as a claim (`null` when unset).
fn field(p: &Principal, name: &str) -> Value {
    match name {
        "id" => p.id.clone(),
        "username" => json!(p.username),
        "nombre" => json!(p.nombre),
        "role" => json!(p.role),
        "company" => json!(p.company),
        "business" => json!(p.business),
        "proyecto" => json!(p.proyecto),
        _ => Value::Null,
    }
}

/// The claims an account of `form` carries at userinfo beside `sub`.
pub fn claim_names(form: AccountForm) -> Vec<&'static str> {
    if form == AccountForm::Standard {
        return vec!["roles"];
    }
    let about = |(_, source): &&(&str, ProfileClaim)| !matches!(source, ProfileClaim::Fixed(_));
    form.profile()
        .iter()
        .filter(about)
        .map(|(name, _)| *name)
        .collect()
}

/// Whether an account may still log in by its profile: where its form
/// needs one, only while its company is one its endpoint knows.
pub fn company_known(endpoint: Option<&LegacyEndpoint>, p: &Principal) -> bool {
    match endpoint {
        Some(e) if AccountForm::Dialect(e.dialect).needs_known_company() => {
            p.company.as_ref().is_some_and(|c| e.companies.contains(c))
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dialect;

    /// Each dialect's account carries what the dialect's own tokens carry,
    /// in their order, and userinfo names them.
    #[test]
    fn an_account_carries_what_its_form_names() {
        let mut p = Principal::named("ana");
        p.username = Some("ana".into());
        p.role = Some("ADMIN".into());
        p.company = Some("acme".into());
        p.id = json!(7);
        let scope = vec!["read".to_string()];
        let of = |d: Dialect| Value::Object(claims(AccountForm::Dialect(d), &p, &scope));
        assert_eq!(
            of(Dialect::Session).to_string(),
            r#"{"id":7,"username":"ana","nombre":null,"role":"ADMIN"}"#
        );
        assert_eq!(
            of(Dialect::LoginRefresh).to_string(),
            r#"{"token_use":"access","username":"ana","role":"ADMIN"}"#
        );
        assert_eq!(
            of(Dialect::ClientFlat).to_string(),
            r#"{"company":"acme","permissions":["read"]}"#
        );
        assert_eq!(
            of(Dialect::Project).to_string(),
            r#"{"business":null,"proyecto":null}"#
        );
        assert_eq!(of(Dialect::ClientEnvelope).to_string(), "{}");
        // A session principal without a role carries none.
        p.role = None;
        assert!(!claims(AccountForm::Dialect(Dialect::Session), &p, &scope).contains_key("role"));
        let names = claim_names(AccountForm::Dialect(Dialect::LoginRefresh));
        assert_eq!(names, ["username", "role"]);
        assert_eq!(claim_names(AccountForm::Standard), ["roles"]);
    }
}
