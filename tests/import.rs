//! `portero import`: users from a CSV file, JSON lines and a Keycloak realm
//! export, into the embedded store (the gateway stopped) and into Redis
//! (the gateway running), then logging in through two dialects. Hashes
//! come from the libraries that write them (tests/password_formats.py,
//! tests/keycloak_export.py).

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use reqwest::StatusCode;

const PASSWORD: &str = "Secr3t pässword+%";
const SESSION_PATH: &str = "/api/Session/GetToken";
const APP_PATH: &str = "/api/auth/token";
/// The users of tests/keycloak_export.py that log in.
const KEYCLOAK_USERS: [&str; 5] = [
    "kc-pbkdf2-sha256",
    "kc-pbkdf2-sha512",
    "kc-pbkdf2",
    "kc-argon2",
    "kc-legacy",
];

/// A session and a login-refresh issuer with no principals of their own
/// but `twin`, whose config password is `config password`.
fn config(twin_hash: &str, store: &str) -> String {
    format!(
        "{store}\n\
         [issuers.people]\ndialect = \"session\"\npath = \"{SESSION_PATH}\"\nmax_failures = 100\n\n\
         [[issuers.people.principals]]\nusername = \"twin\"\nsecret_hash = '{twin_hash}'\nnombre = \"Twin of the config\"\n\n\
         [issuers.app]\ndialect = \"login-refresh\"\npath = \"{APP_PATH}\"\nmax_failures = 100\n\n\
         [upstreams.echo]\nbuiltin = \"echo\"\n\n[[routes]]\npath = \"/\"\nupstream = \"echo\"\n"
    )
}

/// An argon2id hash of `password`, as `portero hash-secret` writes it.
fn portero_hash(password: &str) -> String {
    portero::credentials::hash_password(password)
}

fn write(gw: &Gateway, name: &str, text: &str) -> PathBuf {
    let path = gw.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A CSV row per format, `username` named after it.
fn csv(hashes: &BTreeMap<String, String>) -> String {
    let mut csv = "username,secret_hash,id,nombre,role,permissions\n".to_string();
    for (n, (format, hash)) in hashes.iter().enumerate() {
        csv += &format!("{format},\"{hash}\",{n},Name of {format},USER,\"read write\"\n");
    }
    csv
}

/// A JSON line per format.
fn json_lines(hashes: &BTreeMap<String, String>) -> String {
    hashes
        .iter()
        .map(|(format, hash)| {
            serde_json::json!({ "username": format, "secret_hash": hash, "role": "APP" })
                .to_string()
                + "\n"
        })
        .collect()
}

fn import(gw: &Gateway, issuer: &str, file: &Path, more: &[&str]) -> (bool, String, String) {
    let mut args = vec!["import", "--issuer", issuer];
    args.extend(more);
    args.push(file.to_str().unwrap());
    gw.command(&args)
}

#[tokio::test]
async fn imported_users_log_in_in_every_format_through_two_dialects() {
    let Some(hashes) = library_hashes(PASSWORD) else {
        return;
    };
    let Some(realm) = keycloak_export(PASSWORD) else {
        return;
    };
    let mut gw = Gateway::start(&config(&portero_hash("config password"), "")).await;
    let csv = write(&gw, "people.csv", &csv(&hashes));
    let lines = write(&gw, "app.jsonl", &json_lines(&hashes));
    let realm = write(&gw, "realm.json", &realm);

    // The embedded store is the running gateway's.
    let (ok, _, err) = import(&gw, "people", &csv, &[]);
    assert!(!ok && err.contains("stop it to import"), "{err}");

    gw.stop().await;
    let (ok, out, err) = import(&gw, "people", &csv, &[]);
    assert!(ok, "{err}");
    let rows = hashes.len();
    assert!(
        out.contains(&format!(
            "{rows} rows for issuer \"people\": {rows} added, 0 changed, 0 unchanged, 0 refused"
        )),
        "{out}"
    );
    let (ok, out, err) = import(&gw, "app", &lines, &[]);
    assert!(ok && out.contains(&format!("{rows} added")), "{out}{err}");
    for issuer in ["people", "app"] {
        let (ok, out, err) = import(&gw, issuer, &realm, &[]);
        assert!(
            ok && out.contains("6 rows") && out.contains("6 added"),
            "{out}{err}"
        );
    }
    gw.respawn().await;

    for user in hashes.keys().map(String::as_str).chain(KEYCLOAK_USERS) {
        for path in [SESSION_PATH, APP_PATH] {
            let (status, body) = user_login(&gw, path, user, PASSWORD).await;
            assert_eq!(status, StatusCode::OK, "{user} at {path}: {body}");
            let (status, _) = user_login(&gw, path, user, "Secr3t pässword+").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{user} at {path}");
        }
    }
    // The rows' other keys: the CSV's and the realm export's names and roles.
    let (_, body) = user_login(&gw, SESSION_PATH, "bcrypt-2y", PASSWORD).await;
    assert_eq!(parse(&body)["usuario"]["nombre"], "Name of bcrypt-2y");
    let (_, body) = user_login(&gw, SESSION_PATH, "kc-pbkdf2-sha256", PASSWORD).await;
    let session = parse(&body);
    assert_eq!(session["usuario"]["nombre"], "Ana Gil");
    let claims = claims_of(session["tokenValido"].as_str().unwrap());
    assert_eq!(claims["role"], "admin", "{claims}");
    // A user disabled in Keycloak is imported blocked.
    let (status, body) = user_login(&gw, SESSION_PATH, "kc-disabled", PASSWORD).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(parse(&body)["error"], 2);
}

#[tokio::test]
async fn a_file_with_bad_rows_imports_nothing_unless_partial_and_imports_again() {
    let Some(hashes) = library_hashes(PASSWORD) else {
        return;
    };
    let mut gw = Gateway::start(&config(&portero_hash("config password"), "")).await;
    gw.stop().await;
    let good = &hashes["bcrypt-2b"];
    let plain = "plain-text-secret-in-a-bad-row";
    let text = format!(
        "username,secret_hash,nombre\n\
         ana,{good},Ana\n\
         md5,$1$saltsalt$2vN1m4GnqV.Z2p0YFqVO3/,MD5 crypt\n\
         plain,{plain},Plain text\n\
         ,{good},No username\n\
         ana,{good},Ana again\n\
         bo,{good},Bo\n\
         ANA ,{good},Ana shouting\n\
         Twin,{good},Twin of the config\n\
         slow,$2b$31$abcdefghijklmnopqrstuu5Jm1uF0wGbTe4CHqzGr3xJQQbYhKOy6,Slow\n"
    );
    let file = write(&gw, "users.csv", &text);

    let (ok, out, err) = import(&gw, "people", &file, &[]);
    assert!(!ok, "{out}");
    for expected in [
        "refused line 3: secret_hash: a hash of a format not known",
        "refused line 4: secret_hash: not a known hash format",
        "refused line 5: the session dialect needs username",
        "refused line 6: login \"ana\" is on line 2 too",
        "refused line 8: login \"ANA\" is on line 2 too (as \"ana\")",
        "refused line 9: login \"Twin\" differs from the config's \"twin\" only in case",
        "refused line 10: secret_hash: bcrypt hash with cost 31, over the limit of 16",
        "nothing imported: 7 of 9 rows refused",
    ] {
        assert!(err.contains(expected), "{expected:?} in:\n{err}");
    }
    assert!(
        !err.contains(plain) && !err.contains(good),
        "a secret in:\n{err}"
    );

    // Nothing was written: the good rows are new to --partial...
    let (ok, out, err) = import(&gw, "people", &file, &["--partial"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("9 rows for issuer \"people\": 2 added, 0 changed, 0 unchanged, 7 refused"),
        "{out}"
    );
    // ...and the same file again changes nothing.
    let (ok, out, _) = import(&gw, "people", &file, &["--partial"]);
    assert!(
        ok && out.contains("0 added, 0 changed, 2 unchanged, 7 refused"),
        "{out}"
    );
    // A fixed file: one row changed, the rest as they were.
    let fixed = write(
        &gw,
        "fixed.jsonl",
        &format!(
            "{{\"username\":\"ana\",\"secret_hash\":\"{good}\",\"nombre\":\"Ana\"}}\n\
             {{\"username\":\"bo\",\"secret_hash\":\"{good}\",\"nombre\":\"Bo\",\"blocked\":true}}\n"
        ),
    );
    let (ok, out, err) = import(&gw, "people", &fixed, &[]);
    assert!(
        ok && out.contains("0 added, 1 changed, 1 unchanged, 0 refused"),
        "{out}{err}"
    );

    // A file that is not what it says refuses at once.
    let wrong = write(&gw, "users2.csv", "username,password\nana,x\n");
    let (ok, _, err) = import(&gw, "people", &wrong, &[]);
    assert!(
        !ok && err.contains("line 1: column \"password\" is not a principal key"),
        "{err}"
    );
    let (ok, _, err) = import(&gw, "nobody", &fixed, &[]);
    assert!(!ok && err.contains("no issuer named \"nobody\""), "{err}");

    gw.respawn().await;
    let (status, _) = user_login(&gw, SESSION_PATH, "ana", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = user_login(&gw, SESSION_PATH, "bo", PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "bo was blocked by the second file"
    );
}

#[tokio::test]
async fn into_redis_while_running_and_the_config_wins_a_clash() {
    let Some(hashes) = library_hashes(PASSWORD) else {
        return;
    };
    let Some(url) = redis::shared() else { return };
    use rand::RngCore;
    let prefix = format!("portero-test-import-{:08x}:", rand::thread_rng().next_u32());
    let store =
        format!("[store]\nbackend = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\n");
    let gw = Gateway::start(&config(&portero_hash("config password"), &store)).await;
    let (status, _) = user_login(&gw, APP_PATH, "argon2id", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "not imported yet");

    let mut lines = json_lines(&hashes);
    lines +=
        &serde_json::json!({ "username": "twin", "secret_hash": hashes["argon2id"] }).to_string();
    let file = write(&gw, "users.jsonl", &lines);
    let (ok, out, err) = import(&gw, "app", &file, &[]);
    assert!(ok, "{err}");
    let (ok, out_people, err_people) = import(&gw, "people", &file, &[]);
    assert!(ok, "{err_people}");
    assert!(
        out.contains(&format!("{} added", hashes.len() + 1)),
        "{out}"
    );
    // The config names twin for people: the import says so.
    assert!(
        err_people.contains(&format!(
            "warning line {}: \"twin\" is also a principal in the config",
            hashes.len() + 1
        )),
        "{out_people}{err_people}"
    );

    // Imported into a running gateway: they log in at once.
    for format in hashes.keys() {
        let (status, body) = user_login(&gw, APP_PATH, format, PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{format}: {body}");
    }
    // The config's twin logs in through people; the imported twin only
    // where the config has none.
    let (status, _) = user_login(&gw, SESSION_PATH, "twin", PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the imported twin's password"
    );
    let (status, body) = user_login(&gw, SESSION_PATH, "twin", "config password").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(parse(&body)["usuario"]["nombre"], "Twin of the config");
    let (status, _) = user_login(&gw, APP_PATH, "twin", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
}

/// Values typed in the wrong place (a secret in `active`, a hash as a
/// number, an API key's expiry) are refused by field and line, never
/// shown: a refusal is printed, and may be logged or pasted anywhere.
#[tokio::test]
async fn a_refused_value_is_named_by_its_field_never_shown() {
    let config =
        config(&portero_hash("config password"), "") + "\n[issuers.partners]\nkind = \"api_key\"\n";
    let mut gw = Gateway::start(&config).await;
    gw.stop().await;
    let hash = portero_hash(PASSWORD);
    let secrets = [
        "123456789012",
        "Hunter2-active",
        "Hunter2-blocked",
        "Hunter2-rate",
        "Hunter2-permissions",
        "Hunter2-csv-active",
        "Hunter2-csv-rate",
        "Hunter2-enabled",
        "Hunter2-expires",
        "98765432109876543",
        "Hunter2-created",
        "Hunter2-algorithm",
    ];
    let lines = [
        r#"{"username":"a","secret_hash":123456789012}"#.to_string(),
        format!(r#"{{"username":"b","secret_hash":"{hash}","active":"Hunter2-active"}}"#),
        format!(r#"{{"username":"c","secret_hash":"{hash}","blocked":"Hunter2-blocked"}}"#),
        format!(r#"{{"username":"d","secret_hash":"{hash}","rate_limit":"Hunter2-rate"}}"#),
        format!(r#"{{"username":"e","secret_hash":"{hash}","permissions":"Hunter2-permissions"}}"#),
    ];
    let file = write(&gw, "users.jsonl", &(lines.join("\n") + "\n"));
    let (ok, _, err) = import(&gw, "people", &file, &[]);
    assert!(!ok);
    for expected in [
        "refused line 1: secret_hash: expected a string, not a number",
        "refused line 2: active: expected a boolean, not a string",
        "refused line 3: blocked: expected a boolean, not a string",
        "refused line 4: rate_limit: expected u32, not a string",
        "refused line 5: permissions: expected a sequence, not a string",
    ] {
        assert!(err.contains(expected), "{expected:?} in:\n{err}");
    }
    let csv = format!(
        "username,secret_hash,active,rate_limit\nf,\"{hash}\",Hunter2-csv-active,\ng,\"{hash}\",,Hunter2-csv-rate\n"
    );
    let file = write(&gw, "users.csv", &csv);
    let (ok, _, csv_err) = import(&gw, "people", &file, &[]);
    assert!(!ok);
    for expected in [
        "refused line 2: active: not true or false",
        "refused line 3: rate_limit: not a whole number",
    ] {
        assert!(csv_err.contains(expected), "{expected:?} in:\n{csv_err}");
    }
    let realm = r#"{"users": [
  {"username": "h", "enabled": "Hunter2-enabled", "credentials": []},
  {"username": "i", "credentials": [{"type": "password",
    "secretData": "{\"value\":\"AAAA\",\"salt\":\"AAAA\"}",
    "credentialData": "{\"hashIterations\":1,\"algorithm\":\"Hunter2-algorithm\"}"}]}
]}"#;
    let file = write(&gw, "realm.json", realm);
    let (ok, _, realm_err) = import(&gw, "people", &file, &[]);
    assert!(!ok);
    for expected in [
        "refused line 2: enabled: expected a boolean, not a string",
        "refused line 3: credentialData: the algorithm is not one portero reads",
    ] {
        assert!(
            realm_err.contains(expected),
            "{expected:?} in:\n{realm_err}"
        );
    }
    let keys = [
        r#"{"consumer":"acme","key":"legacy-key-0123456789","expires":"Hunter2-expires"}"#,
        r#"{"consumer":"acme","key":98765432109876543}"#,
        r#"{"consumer":"acme","key":"legacy-key-9876543210","created":"Hunter2-created"}"#,
    ];
    let file = write(&gw, "keys.jsonl", &(keys.join("\n") + "\n"));
    let (ok, _, keys_err) = import(&gw, "partners", &file, &["--format", "jsonl"]);
    assert!(!ok);
    for expected in [
        "refused line 1: expires: not an RFC 3339 instant",
        "refused line 2: key: expected a string, not a number",
        "refused line 3: created: not an RFC 3339 instant",
    ] {
        assert!(keys_err.contains(expected), "{expected:?} in:\n{keys_err}");
    }
    let said = [err, csv_err, realm_err, keys_err].concat();
    for secret in secrets {
        assert!(!said.contains(secret), "{secret} in:\n{said}");
    }
}
