//! The users of a Keycloak realm export (`kc.sh export`, or the admin
//! console's partial export with users). Keycloak keeps a password as a
//! salt, a derived key and its parameters; they are rewritten, losslessly,
//! in the formats portero checks: PBKDF2 in passlib's form
//! (`$pbkdf2-sha256$<rounds>$<salt>$<key>`), argon2 in the PHC form.
//!
//! A user's keys: `username`, `id`, `enabled` (false imports it blocked),
//! `nombre` from `firstName` and `lastName`, and any attribute named as a
//! principal key (`role`, `company`, `business`, `proyecto`, `nombre`,
//! `permissions`, `client_id`).

use std::collections::HashMap;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::record::{from_text, from_value, Row};
use crate::principals::ImportedPrincipal;

#[derive(Deserialize)]
struct Export<'a> {
    #[serde(borrow, default)]
    users: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    username: Option<String>,
    id: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    first_name: Option<String>,
    last_name: Option<String>,
    #[serde(default)]
    attributes: HashMap<String, Vec<String>>,
    #[serde(default)]
    credentials: Vec<Credential>,
}

fn yes() -> bool {
    true
}

/// A credential as exported since Keycloak 11 (`secretData` and
/// `credentialData`, each a JSON document in a string), or before it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Credential {
    #[serde(rename = "type")]
    kind: String,
    secret_data: Option<String>,
    credential_data: Option<String>,
    // Before Keycloak 11.
    hashed_salted_value: Option<String>,
    salt: Option<String>,
    hash_iterations: Option<u32>,
    algorithm: Option<String>,
}

#[derive(Deserialize)]
struct SecretData {
    value: String,
    salt: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CredentialData {
    hash_iterations: u32,
    algorithm: String,
    #[serde(default)]
    additional_parameters: HashMap<String, Vec<String>>,
}

/// The principal keys a user's attributes may set.
const ATTRIBUTES: [&str; 6] = [
    "role",
    "company",
    "business",
    "proyecto",
    "nombre",
    "client_id",
];

/// Each user of the export, with the line its object starts on.
pub fn rows(text: &str) -> Result<Vec<Row>, String> {
    let export: Export =
        from_text(text).map_err(|e| format!("not a Keycloak realm export: {e}"))?;
    let users = export
        .users
        .ok_or("not a Keycloak realm export with users: no \"users\" list")?;
    Ok(users
        .into_iter()
        .map(|raw| Row {
            line: line_of(text, raw.get()),
            record: from_text::<User>(raw.get()).and_then(principal),
        })
        .collect())
}

/// The line `part`, a slice of `text`, starts on.
fn line_of(text: &str, part: &str) -> usize {
    let offset = part.as_ptr() as usize - text.as_ptr() as usize;
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn principal(user: User) -> Result<ImportedPrincipal, String> {
    let password = user
        .credentials
        .iter()
        .find(|c| c.kind == "password")
        .ok_or("no password credential")?;
    let mut object = Map::new();
    let mut set = |key: &str, value: Value| {
        object.insert(key.to_string(), value);
    };
    set("secret_hash", secret_hash(password)?.into());
    if let Some(username) = user.username {
        set("username", username.into());
    }
    if let Some(id) = user.id {
        set("id", id.into());
    }
    let full_name = [user.first_name, user.last_name]
        .into_iter()
        .flatten()
        .filter(|n| !n.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if !full_name.is_empty() {
        set("nombre", full_name.into());
    }
    for key in ATTRIBUTES {
        if let Some(value) = user.attributes.get(key).and_then(|v| v.first()) {
            set(key, value.as_str().into());
        }
    }
    if let Some(permissions) = user.attributes.get("permissions") {
        set("permissions", permissions.clone().into());
    }
    set("blocked", (!user.enabled).into());
    from_value(Value::Object(object))
}

/// The credential's hash in a format portero checks.
fn secret_hash(c: &Credential) -> Result<String, String> {
    let (value, salt, data) = match (&c.secret_data, &c.credential_data) {
        (Some(secret), Some(data)) => {
            let secret: SecretData = from_text(secret).map_err(|e| format!("secretData: {e}"))?;
            let data: CredentialData =
                from_text(data).map_err(|e| format!("credentialData: {e}"))?;
            (secret.value, secret.salt, data)
        }
        _ => match (
            &c.hashed_salted_value,
            &c.salt,
            c.hash_iterations,
            &c.algorithm,
        ) {
            (Some(value), Some(salt), Some(iterations), Some(algorithm)) => (
                value.clone(),
                salt.clone(),
                CredentialData {
                    hash_iterations: iterations,
                    algorithm: algorithm.clone(),
                    additional_parameters: HashMap::new(),
                },
            ),
            _ => return Err("password credential without secretData and credentialData".into()),
        },
    };
    let decode = |what: &str, b64: &str| {
        STANDARD
            .decode(b64)
            .map_err(|_| format!("secretData: {what} is not base64"))
    };
    let (value, salt) = (decode("value", &value)?, decode("salt", &salt)?);
    let rounds = data.hash_iterations;
    match data.algorithm.as_str() {
        "pbkdf2" => Ok(passlib_pbkdf2("pbkdf2", rounds, &salt, &value)),
        "pbkdf2-sha256" => Ok(passlib_pbkdf2("pbkdf2-sha256", rounds, &salt, &value)),
        "pbkdf2-sha512" => Ok(passlib_pbkdf2("pbkdf2-sha512", rounds, &salt, &value)),
        "argon2" => argon2(&data, &salt, &value),
        _ => Err(
            "credentialData: the algorithm is not one portero reads (pbkdf2, \
                  pbkdf2-sha256, pbkdf2-sha512, argon2)"
                .into(),
        ),
    }
}

/// passlib's form: its "adapted base64" has `.` for `+` and no padding.
fn passlib_pbkdf2(id: &str, rounds: u32, salt: &[u8], key: &[u8]) -> String {
    let ab64 = |b: &[u8]| STANDARD_NO_PAD.encode(b).replace('+', ".");
    format!("${id}${rounds}${}${}", ab64(salt), ab64(key))
}

/// The PHC form of Keycloak's argon2 (its parameters: `type`, `version`,
/// `memory` in KiB, `parallelism`; `hashIterations` is argon2's passes).
fn argon2(data: &CredentialData, salt: &[u8], key: &[u8]) -> Result<String, String> {
    let param = |name: &str, default: &str| -> String {
        data.additional_parameters
            .get(name)
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    let variant = match param("type", "id").as_str() {
        "id" => "argon2id",
        "i" => "argon2i",
        "d" => "argon2d",
        _ => return Err("credentialData: the argon2 type is not id, i or d".into()),
    };
    let version = match param("version", "1.3").as_str() {
        "1.3" => 19,
        "1.0" => 16,
        _ => return Err("credentialData: the argon2 version is not 1.3 or 1.0".into()),
    };
    let number = |name: &str, default: &str| {
        param(name, default)
            .parse::<u32>()
            .map_err(|_| format!("credentialData: argon2 {name} is not a number"))
    };
    Ok(format!(
        "${variant}$v={version}$m={},t={},p={}${}${}",
        number("memory", "7168")?,
        data.hash_iterations,
        number("parallelism", "1")?,
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(key),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_keep_their_lines_and_keys() {
        let text = r#"{
  "realm": "demo",
  "users": [ {
    "username": "ana", "id": "b601", "enabled": false,
    "firstName": "Ana", "lastName": "Gil",
    "attributes": { "role": ["admin"], "permissions": ["read", "write"] },
    "credentials": [ {
      "type": "password",
      "secretData": "{\"value\":\"3Z83Ic8JUztntTF9PBmLJW02MIxLxTYPg2mt5N2TgwA=\",\"salt\":\"8qeAg8keMTB9ctgwRYBQ8w==\",\"additionalParameters\":{}}",
      "credentialData": "{\"hashIterations\":27500,\"algorithm\":\"pbkdf2-sha256\",\"additionalParameters\":{}}"
    } ]
  }, {
    "username": "bo",
    "credentials": [ { "type": "otp" } ]
  } ]
}"#;
        let rows = rows(text).unwrap();
        assert_eq!((rows[0].line, rows[1].line), (3, 12));
        let ana = rows[0].record.as_ref().unwrap();
        assert_eq!(ana.nombre.as_deref(), Some("Ana Gil"));
        assert_eq!(ana.role.as_deref(), Some("admin"));
        assert_eq!(ana.permissions, ["read", "write"]);
        assert!(ana.blocked);
        assert!(ana
            .secret_hash
            .starts_with("$pbkdf2-sha256$27500$8qeAg8keMTB9ctgwRYBQ8w$"));
        assert_eq!(
            rows[1].record.as_ref().unwrap_err(),
            "no password credential"
        );
    }
}
