//! Password hashes made by the libraries that write them in the wild
//! (tests/password_formats.py, tests/keycloak_export.py); the tests that
//! need them are skipped without the libraries, unless
//! `PORTERO_REQUIRE_HASH_LIBRARIES=1`.

use std::collections::BTreeMap;
use std::process::Command;

use super::{outside_program, Outside};

/// What `script` printed for `password`, or `None` (skip) without the libraries.
fn run(script: &str, password: &str) -> Option<Vec<u8>> {
    let script = format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3").args([&script, password]).output();
    let missing = match &out {
        Ok(o) if o.status.success() => None,
        _ => Some("the hashing libraries are not installed".to_string()),
    };
    outside_program(Outside::HashLibraries, missing).then(|| out.unwrap().stdout)
}

/// format -> a hash of `password` in it, from bcrypt, argon2-cffi, Django and passlib.
pub fn library_hashes(password: &str) -> Option<BTreeMap<String, String>> {
    let out = run("password_formats.py", password)?;
    Some(serde_json::from_slice(&out).expect("one JSON object"))
}

/// A Keycloak realm export whose users all have `password`.
pub fn keycloak_export(password: &str) -> Option<String> {
    run("keycloak_export.py", password).map(|out| String::from_utf8(out).unwrap())
}
