//! Users keep the hashes their old service wrote: every format portero
//! checks, each made by the library that writes it in the wild
//! (tests/password_formats.py: bcrypt, argon2-cffi, Django, passlib; the
//! PHC pbkdf2 form by RustCrypto's `pbkdf2`), logs its user in through two
//! dialects, and refuses a wrong password.

use crate::common;

use std::collections::BTreeMap;

use common::*;
use reqwest::StatusCode;

/// Every byte class a password may hold: non-ASCII, `+`, `%`, a space.
const PASSWORD: &str = "Secr3t pässword+%";

/// format -> hash, from the Python libraries and RustCrypto's `pbkdf2`;
/// `None` (skip) without the libraries.
fn library_and_phc_hashes() -> Option<BTreeMap<String, String>> {
    let mut hashes = library_hashes(PASSWORD)?;
    // The PHC form of PBKDF2 (`$pbkdf2-sha256$i=...,l=32$...`), as RustCrypto writes it.
    use pbkdf2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
    for (name, algorithm) in [
        ("phc-pbkdf2-sha256", pbkdf2::Algorithm::Pbkdf2Sha256),
        ("phc-pbkdf2-sha512", pbkdf2::Algorithm::Pbkdf2Sha512),
    ] {
        let params = pbkdf2::Params {
            rounds: 10_000,
            output_length: 32,
        };
        let hash = pbkdf2::Pbkdf2
            .hash_password_customized(
                PASSWORD.as_bytes(),
                Some(algorithm.ident()),
                None,
                params,
                &salt,
            )
            .unwrap();
        hashes.insert(name.into(), hash.to_string());
    }
    Some(hashes)
}

/// The session and login-refresh issuers, a principal per format named after it.
fn config(hashes: &BTreeMap<String, String>) -> String {
    let mut config = String::new();
    for (issuer, dialect) in [
        ("legacy-session", "session"),
        ("legacy-users", "login-refresh"),
    ] {
        let path = match dialect {
            "session" => "/api/Session/GetToken",
            _ => "/api/auth/token",
        };
        config += &format!("[issuers.{issuer}]\ndialect = \"{dialect}\"\npath = \"{path}\"\nmax_failures = 100\n\n");
        // Only the session dialect reads a name.
        let nombre = |format: &str| match dialect {
            "session" => format!("nombre = \"{format}\"\n"),
            _ => String::new(),
        };
        for (n, (format, hash)) in hashes.iter().enumerate() {
            config += &format!(
                "[[issuers.{issuer}.principals]]\nusername = \"{format}\"\nsecret_hash = '{hash}'\nid = {n}\n{}\n",
                nombre(format)
            );
        }
    }
    config
        + "[upstreams.echo]\nbuiltin = \"echo\"\n\n[[routes]]\npath = \"/\"\nupstream = \"echo\"\n"
}

#[tokio::test]
async fn every_format_logs_in_through_two_dialects_and_refuses_a_wrong_password() {
    let Some(hashes) = library_and_phc_hashes() else {
        return;
    };
    assert_eq!(hashes.len(), 13, "{hashes:?}");
    let gw = Gateway::start(&config(&hashes)).await;
    for format in hashes.keys() {
        for (path, name_field) in [
            ("/api/Session/GetToken", "username"),
            ("/api/auth/token", "username"),
        ] {
            let login = |password: &str| {
                serde_json::json!({ name_field: format, "password": password }).to_string()
            };
            let (status, body) = post(&gw, path, None, &login(PASSWORD)).await;
            assert_eq!(status, StatusCode::OK, "{format} at {path}: {body}");
            let (status, body) = post(&gw, path, None, &login("Secr3t pässword+")).await;
            assert_ne!(status, StatusCode::OK, "{format} at {path}: {body}");
        }
    }
}
