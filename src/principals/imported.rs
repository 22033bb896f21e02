//! A principal as `portero import` keeps it in the store: the keys of a
//! config principal, as JSON. Written in one canonical form, so importing
//! the same file again finds every record unchanged.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{secret_hash, AccountForm, Principal};

/// The keys a record may have; any other is refused.
pub const KEYS: [&str; 13] = [
    "username",
    "client_id",
    "business",
    "proyecto",
    "secret_hash",
    "id",
    "nombre",
    "role",
    "company",
    "permissions",
    "active",
    "blocked",
    "rate_limit",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportedPrincipal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proyecto: Option<String>,
    pub secret_hash: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub id: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nombre: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub blocked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// A standard issuer's user: its roles and its own claims.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub claims: serde_json::Map<String, Value>,
}

fn yes() -> bool {
    true
}

impl ImportedPrincipal {
    /// The login it is known by among accounts of `form`, or why it has none.
    pub fn login(&self, form: AccountForm) -> Result<String, String> {
        form.login_of(
            self.username.as_deref(),
            self.client_id.as_deref(),
            self.business.as_deref(),
            self.proyecto.as_deref(),
        )
        .ok_or_else(|| format!("the {} dialect needs {}", form.name(), form.login_fields()))
    }

    /// The principal it stands for among accounts of `form`, or why it
    /// stands for none. The reason names a hash's format, never the hash.
    pub fn to_principal(&self, form: AccountForm) -> Result<Principal, String> {
        let login = self.login(form)?;
        let secret = secret_hash(&self.secret_hash).map_err(|why| format!("secret_hash: {why}"))?;
        if let Some(name) = crate::config::reserved_claim(&self.claims) {
            return Err(format!(
                "claims: {name:?} is a claim portero sets or reads itself"
            ));
        }
        Ok(Principal {
            login,
            secret,
            id: self.id.clone(),
            username: self.username.clone(),
            nombre: self.nombre.clone(),
            role: self.role.clone(),
            business: self.business.clone(),
            proyecto: self.proyecto.clone(),
            client_id: self.client_id.clone(),
            company: self.company.clone(),
            permissions: self.permissions.clone(),
            active: self.active,
            blocked: self.blocked,
            rate_limit: self.rate_limit.filter(|n| *n > 0),
            stored_hash: None,
            // What an OAuth 2.0 client may do beyond the ordinary stays in
            // the config, where a reviewer sees it.
            auth_method: None,
            introspect: false,
            roles: self.roles.clone(),
            claims: self.claims.clone(),
            client: Default::default(),
        })
    }

    /// The principal a stored record stands for among accounts of `form`.
    pub fn decode(record: &str, form: AccountForm) -> Result<Principal, String> {
        serde_json::from_str::<ImportedPrincipal>(record)
            .map_err(|e| format!("unreadable record: {e}"))?
            .to_principal(form)
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a record serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dialect;

    #[test]
    fn a_record_round_trips_in_one_form() {
        let written = r#"{"blocked":false,"username":"ana","secret_hash":"$2b$04$abcdefghijklmnopqrstuu5Jm1uF0wGbTe4CHqzGr3xJQQbYhKOy6","active":true}"#;
        let record: ImportedPrincipal = serde_json::from_str(written).unwrap();
        let encoded = record.encode();
        let again: ImportedPrincipal = serde_json::from_str(&encoded).unwrap();
        assert_eq!(again, record);
        assert_eq!(again.encode(), encoded);
        assert_eq!(
            record
                .login(AccountForm::Dialect(Dialect::Session))
                .unwrap(),
            "ana"
        );
        assert!(record
            .login(AccountForm::Dialect(Dialect::ClientFlat))
            .is_err());
    }

    #[test]
    fn a_standard_users_record_keeps_its_roles_and_claims_but_no_reserved_one() {
        let hash = "$2b$04$abcdefghijklmnopqrstuu5Jm1uF0wGbTe4CHqzGr3xJQQbYhKOy6";
        let written = format!(
            r#"{{"username":"ana","secret_hash":"{hash}","roles":["admin"],"claims":{{"team":"core"}}}}"#
        );
        let record: ImportedPrincipal = serde_json::from_str(&written).unwrap();
        let ana = record.to_principal(AccountForm::Standard).unwrap();
        assert_eq!(ana.roles, vec!["admin"]);
        assert_eq!(ana.claims["team"], "core");
        for reserved in ["scp", "sub", "roles", "aud"] {
            let written = format!(
                r#"{{"username":"ana","secret_hash":"{hash}","claims":{{"{reserved}":"x"}}}}"#
            );
            let record: ImportedPrincipal = serde_json::from_str(&written).unwrap();
            let refused = record.to_principal(AccountForm::Standard).unwrap_err();
            assert!(refused.contains(reserved), "{refused}");
        }
    }
}
