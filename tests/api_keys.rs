//! API keys (`kind = "api_key"` issuers) against the real gateway and a
//! real upstream: made, used, listed, rotated and revoked through the
//! admin API; kept across a restart; imported; refused with a clear body
//! when unknown, revoked, expired or sent where only tokens go; and a key
//! revoked on one instance refused on another that shares its Redis.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// An `api_key` issuer, the test token issuers and routes that take
/// keys only, keys or tokens, and tokens only.
fn config(app: std::net::SocketAddr, store: &str) -> String {
    format!(
        r#"{store}
{upstream}
{issuers}
[issuers.partners]
kind = "api_key"

[issuers.internal]
kind = "api_key"

[[routes]]
name = "internal"
path = "/internal"
upstream = "app"
issuers = ["internal"]
token_from = ["header:X-API-Key"]

[[routes]]
name = "partner"
path = "/partner"
upstream = "app"
issuers = ["partners"]
token_from = ["header:X-API-Key"]
roles = ["reader"]

[routes.headers]
x-consumer = "sub"
x-tier = "tier"

[[routes]]
name = "writer"
path = "/write"
upstream = "app"
issuers = ["partners"]
token_from = ["header:X-API-Key"]
roles = ["writer"]

[[routes]]
name = "limited"
path = "/limited"
upstream = "app"
issuers = ["partners"]
token_from = ["header:X-API-Key"]
concurrency = {{ max_in_flight = 5, by = "sub" }}
rate_limit = {{ requests = 2, per = "60s", by = "sub" }}

[[routes]]
name = "mixed"
path = "/mixed"
upstream = "app"
issuers = ["partners", "test"]

[[routes]]
name = "tokens"
path = "/tokens"
upstream = "app"
"#,
        upstream = upstream("app", &[app], ""),
        issuers = issuers(),
    )
}

/// The `[store]` table of an instance on the Redis at `url`, its keys under `prefix`.
fn redis_store(url: &str, prefix: &str) -> String {
    format!("[store]\nbackend = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\ntimeout = \"300ms\"\n")
}

async fn admin(gw: &Gateway, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .request(method.parse().unwrap(), gw.admin_url(path))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A new key of `partners` for `consumer`; (id, key).
async fn make(gw: &Gateway, body: Value) -> (String, String) {
    let (status, v) = admin(gw, "POST", "/admin/api-keys", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    (
        v["id"].as_str().unwrap().to_string(),
        v["key"].as_str().unwrap().to_string(),
    )
}

async fn with_key(gw: &Gateway, path: &str, key: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .get(gw.url(path))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn acme() -> Value {
    json!({
        "issuer": "partners",
        "consumer": "acme",
        "roles": ["reader"],
        "scopes": ["orders:read"],
        "claims": { "tier": "gold" }
    })
}

#[tokio::test]
async fn a_key_is_made_used_listed_and_revoked() {
    let app = Upstream::start("app").await;
    let mut gw = Gateway::start(&config(app.addr, "")).await;
    let (id, key) = make(&gw, acme()).await;
    assert!(key.starts_with("prt_") && key.len() == 47, "{key}");
    assert!(id.starts_with("ak_"), "{id}");

    let (status, echo) = with_key(&gw, "/partner/orders", &key).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_eq!(echo["headers"]["x-consumer"], "acme", "{echo}");
    assert_eq!(echo["headers"]["x-tier"], "gold", "{echo}");
    // Another role is another route's.
    let (status, v) = with_key(&gw, "/write", &key).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");

    // Listed with its consumer and last use, never the key or its hash.
    let (status, list) = admin(&gw, "GET", "/admin/api-keys?issuer=partners", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let text = list.to_string();
    assert!(!text.contains(&key) && !text.contains("hash"), "{text}");
    let listed = &list["api_keys"][0];
    assert_eq!(
        (listed["id"].as_str(), listed["consumer"].as_str()),
        (Some(&*id), Some("acme"))
    );
    assert!(listed["last_used"].is_string(), "{listed}");
    assert!(!gw.log().contains(&key[4..]), "a key reached the log");

    // Kept across a restart: the store has its hash.
    gw.kill9_and_restart().await;
    assert_eq!(with_key(&gw, "/partner", &key).await.0, StatusCode::OK);

    let (status, v) = admin(&gw, "DELETE", &format!("/admin/api-keys/{id}"), None).await;
    assert_eq!((status, &v["revoked"]), (StatusCode::OK, &json!(id)), "{v}");
    let (status, v) = with_key(&gw, "/partner", &key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        v,
        json!({"error": "invalid_token", "error_description": "unknown or revoked API key"})
    );
    let (status, _) = admin(&gw, "DELETE", &format!("/admin/api-keys/{id}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        gw.metric(
            "portero_api_key_changes_total",
            &[("issuer", "partners"), ("change", "revoked")]
        )
        .await,
        1.0
    );
    gw.kill9_and_restart().await;
    assert_eq!(
        with_key(&gw, "/partner", &key).await.0,
        StatusCode::UNAUTHORIZED
    );
    // A key that never existed is refused alike, and counted apart: a
    // revoked key still in use is a client to chase, an unknown one a guess.
    let never = format!("prt_{}", "x".repeat(43));
    let (status, v) = with_key(&gw, "/partner", &never).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error_description"], "unknown or revoked API key");

    let m = gw.metrics().await;
    let denied = |reason| {
        let gw = &gw;
        async move {
            let labels = [("route", "partner"), ("result", "deny"), ("reason", reason)];
            gw.metric("portero_auth_decisions_total", &labels).await
        }
    };
    assert_eq!(denied("revoked_api_key").await, 1.0, "{m}");
    assert_eq!(denied("unknown_api_key").await, 1.0, "{m}");
}

#[tokio::test]
async fn keys_are_refused_where_they_do_not_belong() {
    let app = Upstream::start("app").await;
    let gw = Gateway::start(&config(app.addr, "")).await;
    let (_, key) = make(&gw, acme()).await;

    let unknown = format!("prt_{}", "x".repeat(43));
    let (status, v) = with_key(&gw, "/partner", &unknown).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );
    // A route that takes tokens only (no `issuers`) never takes a key.
    let bearer = |path: &'static str, key: String| {
        let url = gw.url(path);
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        bearer("/tokens", key.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    // One that takes both tells them by their shape.
    assert_eq!(bearer("/mixed", key.clone()).await, StatusCode::OK);
    let token = Signer::Hs.sign(&json!({"iss": "test-issuer", "sub": "u", "exp": now() + 60}));
    assert_eq!(bearer("/mixed", token).await, StatusCode::OK);
    // Sent twice, or spelled otherwise beside itself: refused.
    let twice = reqwest::Client::new()
        .get(gw.url("/partner"))
        .header("x-api-key", &key)
        .header("x_api_key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), StatusCode::BAD_REQUEST);
    // Nor may a client name itself the consumer the upstream sees.
    let spoofed = reqwest::Client::new()
        .get(gw.url("/partner"))
        .header("x-api-key", &key)
        .header("x-consumer", "root")
        .send()
        .await
        .unwrap();
    let echo: Value = spoofed.json().await.unwrap();
    assert_eq!(echo["headers"]["x-consumer"], "acme", "{echo}");

    // A key past its time.
    let expires = chrono::Utc::now() + chrono::Duration::seconds(2);
    let mut soon = acme();
    soon["expires"] = json!(expires.to_rfc3339());
    let (_, soon_key) = make(&gw, soon).await;
    assert_eq!(with_key(&gw, "/partner", &soon_key).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let (status, v) = with_key(&gw, "/partner", &soon_key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
}

#[tokio::test]
async fn a_rotated_key_lives_on_for_its_grace_only() {
    let app = Upstream::start("app").await;
    let gw = Gateway::start(&config(app.addr, "")).await;
    let (id, old) = make(&gw, acme()).await;
    let path = format!("/admin/api-keys/{id}/rotate");
    let rotate = |grace: &str| admin(&gw, "POST", &path, Some(json!({ "grace": grace })));
    let (status, v) = rotate("1h").await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let new = v["key"].as_str().unwrap().to_string();
    assert_eq!(v["id"], json!(id));
    assert!(v["previous_key_until"].is_string(), "{v}");
    assert_eq!(with_key(&gw, "/partner", &old).await.0, StatusCode::OK);
    let (status, echo) = with_key(&gw, "/partner", &new).await;
    assert_eq!(
        (status, &echo["headers"]["x-consumer"]),
        (StatusCode::OK, &json!("acme"))
    );

    let (status, v) = rotate("0s").await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let newest = v["key"].as_str().unwrap().to_string();
    // Only the key it replaced lives on; the one before is gone.
    assert_eq!(
        with_key(&gw, "/partner", &old).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        with_key(&gw, "/partner", &new).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(with_key(&gw, "/partner", &newest).await.0, StatusCode::OK);

    for (grace, want) in [("31d", "grace: at most 30d"), ("soon", "grace:")] {
        let (status, v) = rotate(grace).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["error"].as_str().unwrap().starts_with(want), "{v}");
    }
    let (status, _) = admin(
        &gw,
        "POST",
        "/admin/api-keys/ak_none/rotate",
        Some(json!({"grace": "1h"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A revocation racing a rotation of the same key on another instance:
/// whichever the store takes first, a revoked key (and the key its
/// rotation made) stays refused everywhere, a new instance included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_racing_a_rotation_is_never_undone() {
    let Some(url) = common::redis::shared() else {
        return;
    };
    let app = Upstream::start("app").await;
    let store = redis_store(&url, &common::shared_store::prefix());
    let body = config(app.addr, &store);
    let (a, b) = futures_util::join!(Gateway::start(&body), Gateway::start(&body));
    let mut refused = Vec::new();
    for _ in 0..20 {
        let (id, key) = make(&a, acme()).await;
        let rotate_path = format!("/admin/api-keys/{id}/rotate");
        let delete_path = format!("/admin/api-keys/{id}");
        let ((rotated, v), (revoked, _)) = futures_util::join!(
            admin(&a, "POST", &rotate_path, Some(json!({"grace": "1h"}))),
            admin(&b, "DELETE", &delete_path, None),
        );
        let expected = [
            StatusCode::CREATED,
            StatusCode::NOT_FOUND,
            StatusCode::CONFLICT,
        ];
        assert!(expected.contains(&rotated), "{rotated} {v}");
        assert_eq!(revoked, StatusCode::OK, "the key was live until now");
        refused.push(key);
        if let Some(new) = v["key"].as_str() {
            refused.push(new.to_string());
        }
    }
    let c = Gateway::start(&body).await;
    for gw in [&a, &b, &c] {
        for key in &refused {
            assert_eq!(
                with_key(gw, "/partner", key).await.0,
                StatusCode::UNAUTHORIZED
            );
        }
    }
    let (_, list) = admin(&c, "GET", "/admin/api-keys", None).await;
    assert_eq!(
        list["api_keys"],
        json!([]),
        "a revoked key is listed nowhere"
    );
}

#[tokio::test]
async fn a_bad_key_request_is_refused_and_makes_nothing() {
    let app = Upstream::start("app").await;
    let gw = Gateway::start(&config(app.addr, "")).await;
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = acme();
        change(&mut body);
        body
    };
    let cases = [
        (
            with(&|b| b["issuer"] = json!("test")),
            "no api_key issuer named \"test\"",
        ),
        (
            with(&|b| b["issuer"] = json!("nobody")),
            "no api_key issuer named \"nobody\"",
        ),
        (with(&|b| b["consumer"] = json!("")), "consumer:"),
        (
            with(&|b| b["consumer"] = json!("a\r\nx-admin: 1")),
            "consumer:",
        ),
        (with(&|b| b["roles"] = json!(["a b"])), "roles:"),
        (
            with(&|b| b["claims"] = json!({"sub": "root"})),
            "claims: \"sub\"",
        ),
        // Roles and scopes are granted as such, checked as such.
        (
            with(&|b| b["claims"] = json!({"role": "admin"})),
            "claims: \"role\"",
        ),
        (
            with(&|b| b["claims"] = json!({"scp": ["write"]})),
            "claims: \"scp\"",
        ),
        (
            with(&|b| b["claims"] = json!({"tenant": "t1\r\nx-evil: 1"})),
            "control character",
        ),
        // A header loses the spaces around a value: the upstream would read another consumer.
        (with(&|b| b["consumer"] = json!(" root")), "consumer:"),
        (with(&|b| b["roles"] = json!(["adm\u{a0}in"])), "roles:"),
        (
            with(&|b| b["expires"] = json!("2001-01-01T00:00:00Z")),
            "expires:",
        ),
        (with(&|b| b["expires"] = json!("next week")), "expires:"),
        (with(&|b| b["owner"] = json!("x")), "invalid JSON"),
        (json!({"issuer": "partners"}), "invalid JSON"),
    ];
    for (body, want) in cases {
        let (status, v) = admin(&gw, "POST", "/admin/api-keys", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(want), "{body}: {v}");
    }
    let (_, list) = admin(&gw, "GET", "/admin/api-keys", None).await;
    assert_eq!(list["api_keys"], json!([]));
    // The admin token guards the API.
    let r = reqwest::Client::new()
        .post(gw.admin_url("/admin/api-keys"))
        .json(&acme())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_consumer_is_held_to_its_own_rate() {
    let app = Upstream::start("app").await;
    let gw = Gateway::start(&config(app.addr, "")).await;
    let (_, acme_key) = make(&gw, acme()).await;
    let mut other = acme();
    other["consumer"] = json!("globex");
    let (_, globex_key) = make(&gw, other).await;
    for _ in 0..2 {
        assert_eq!(with_key(&gw, "/limited", &acme_key).await.0, StatusCode::OK);
    }
    assert_eq!(
        with_key(&gw, "/limited", &acme_key).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        with_key(&gw, "/limited", &globex_key).await.0,
        StatusCode::OK
    );
    assert_eq!(
        gw.metric(
            "portero_api_key_requests_total",
            &[("issuer", "partners"), ("consumer", "acme")]
        )
        .await,
        3.0,
        "the refused third request presented a valid key too"
    );
}

#[tokio::test]
async fn keys_are_imported_as_keys_or_their_sha256() {
    use sha2::Digest;
    let app = Upstream::start("app").await;
    let mut gw = Gateway::start(&config(app.addr, "")).await;
    gw.stop().await;
    let plain = "legacy-key-0123456789";
    let hashed = "another-legacy-key-9876";
    let sha: String = sha2::Sha256::digest(hashed.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let file = gw_file(
        &gw,
        "keys.jsonl",
        &format!(
            "{}\n{}\n{}\n{}\n{}\n",
            json!({"consumer": "acme", "key": plain, "roles": ["reader"]}),
            json!({"consumer": "globex", "key_sha256": sha, "roles": ["reader"], "claims": {"tier": "silver"}}),
            json!({"consumer": "short", "key": "abc"}),
            json!({"consumer": "twice", "key": plain}),
            json!({"consumer": "later", "key": "a-key-made-in-2099-xyz", "created": "2099-01-01T00:00:00Z"}),
        ),
    );
    let (ok, _, stderr) = gw.command(&["import", "--issuer", "partners", &file]);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("line 3: key: at least 16 characters"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 4: the same key is on line 1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 5: created: is in the future"),
        "{stderr}"
    );
    let (ok, stdout, stderr) = gw.command(&["import", "--issuer", "partners", "--partial", &file]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("2 added"), "{stdout}");
    let (ok, stdout, _) = gw.command(&["import", "--issuer", "partners", "--partial", &file]);
    assert!(
        ok && stdout.contains("0 added, 0 changed, 2 unchanged"),
        "{stdout}"
    );
    gw.respawn().await;

    assert_eq!(with_key(&gw, "/partner", plain).await.0, StatusCode::OK);
    let (status, echo) = with_key(&gw, "/partner", hashed).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&echo["headers"]["x-consumer"], &echo["headers"]["x-tier"]),
        (&json!("globex"), &json!("silver"))
    );
    let (_, list) = admin(&gw, "GET", "/admin/api-keys", None).await;
    let listed = list["api_keys"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2, "{list}");

    // Revoked, then the same file again: the key stays revoked; and a
    // row may not take over another issuer's key by its id.
    let acme = listed.iter().find(|k| k["consumer"] == "acme").unwrap();
    let acme_id = acme["id"].as_str().unwrap().to_string();
    let (status, _) = admin(&gw, "DELETE", &format!("/admin/api-keys/{acme_id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let internal = json!({"issuer": "internal", "consumer": "ops"});
    let (internal_id, internal_key) = make(&gw, internal).await;
    // Rotated twice: a later import of the file must not undo it.
    let globex = listed.iter().find(|k| k["consumer"] == "globex").unwrap();
    let rotate = format!("/admin/api-keys/{}/rotate", globex["id"].as_str().unwrap());
    admin(&gw, "POST", &rotate, Some(json!({"grace": "0s"}))).await;
    let (_, rotated) = admin(&gw, "POST", &rotate, Some(json!({"grace": "0s"}))).await;
    let globex_key = rotated["key"].as_str().unwrap().to_string();
    gw.stop().await;
    let again = gw_file(
        &gw,
        "again.jsonl",
        &format!(
            "{}\n{}\n{}\n{}\n",
            json!({"consumer": "acme", "key": plain, "roles": ["reader"]}),
            json!({"consumer": "mallory", "key": "mallory-chosen-key-0001", "id": internal_id}),
            json!({"consumer": "globex", "key_sha256": sha, "roles": ["reader"]}),
            json!({"consumer": "dotted", "key": "legacy.dotted.key-0123456789"}),
        ),
    );
    let renamed = gw_file(
        &gw,
        "renamed.jsonl",
        &format!(
            "{}\n",
            json!({"consumer": "acme", "key": plain, "id": "ak_fresh-id"})
        ),
    );
    let (ok, _, stderr) = gw.command(&["import", "--issuer", "partners", "--partial", &again]);
    assert!(ok, "{stderr}");
    let (ok, _, renamed) = gw.command(&["import", "--issuer", "partners", &renamed]);
    assert!(!ok, "{renamed}");
    for (want, said) in [
        (format!("line 1: id \"{acme_id}\" was revoked"), &stderr),
        ("line 3: id".to_string(), &stderr),
        ("holds another key now".to_string(), &stderr),
        (
            format!("line 2: id \"{internal_id}\" is a key of issuer \"internal\""),
            &stderr,
        ),
        (
            format!("line 1: this key was revoked (as \"{acme_id}\")"),
            &renamed,
        ),
    ] {
        assert!(said.contains(&want), "{want} not in {said}");
    }
    gw.respawn().await;
    assert_eq!(
        with_key(&gw, "/partner", plain).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        with_key(&gw, "/internal", &internal_key).await.0,
        StatusCode::OK
    );
    let mallory = with_key(&gw, "/partner", "mallory-chosen-key-0001").await;
    assert_eq!(mallory.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        with_key(&gw, "/partner", hashed).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        with_key(&gw, "/partner", &globex_key).await.0,
        StatusCode::OK
    );
    // A key shaped as a JWT is still a key where the route takes both.
    let dotted = reqwest::Client::new()
        .get(gw.url("/mixed"))
        .bearer_auth("legacy.dotted.key-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(dotted.status(), StatusCode::OK);
}

/// Writes `text` into a file beside the gateway's config; its path.
fn gw_file(gw: &Gateway, name: &str, text: &str) -> String {
    let path = gw.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn an_api_key_issuer_takes_no_token_settings() {
    let (ok, stderr) = check(
        "[issuers.partners]\nkind = \"api_key\"\ndialect = \"client-flat\"\n\n[issuers.odd]\nkind = \"apikey\"\n",
    );
    assert!(!ok);
    assert!(
        stderr.contains(".toml:3: issuers.partners.dialect"),
        "{stderr}"
    );
    assert!(
        stderr.contains("issuers.odd.kind")
            && stderr.contains("jwt (the default), oauth2 or api_key"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_instance_is_refused_on_another() {
    let Some(url) = common::redis::shared() else {
        return;
    };
    let app = Upstream::start("app").await;
    let store = redis_store(&url, &common::shared_store::prefix());
    let body = config(app.addr, &store);
    let (a, b) = futures_util::join!(Gateway::start(&body), Gateway::start(&body));
    let (id, key) = make(&a, acme()).await;
    let made = Instant::now();
    while with_key(&b, "/partner", &key).await.0 != StatusCode::OK {
        assert!(made.elapsed() < Duration::from_secs(2), "{}", b.log());
    }
    eprintln!(
        "a key made on one instance was accepted on the other after {:?}",
        made.elapsed()
    );
    let (status, _) = admin(&a, "DELETE", &format!("/admin/api-keys/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let revoked = Instant::now();
    while with_key(&b, "/partner", &key).await.0 != StatusCode::UNAUTHORIZED {
        assert!(
            revoked.elapsed() < Duration::from_millis(500),
            "still accepted on the other instance"
        );
    }
    eprintln!(
        "a key revoked on one instance was refused on the other after {:?}",
        revoked.elapsed()
    );
}

/// A Redis restarted empty loses every record, tombstones too: the
/// instances write back the tombstones they hold, and an import of the
/// original key file into that empty store revives nothing, on running
/// instances or on one started after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_stays_revoked_when_redis_restarts_empty() {
    let Some(mut server) = common::redis::RedisServer::start() else {
        return;
    };
    let app = Upstream::start("app").await;
    let store = redis_store(&server.url(), &common::shared_store::prefix());
    let body = config(app.addr, &store);
    let (a, b) = futures_util::join!(Gateway::start(&body), Gateway::start(&body));
    let plain = "legacy-key-0123456789";
    let file = gw_file(
        &a,
        "keys.jsonl",
        &format!(
            "{}\n",
            json!({"consumer": "acme", "key": plain, "roles": ["reader"]})
        ),
    );
    let (ok, _, stderr) = a.command(&["import", "--issuer", "partners", &file]);
    assert!(ok, "{stderr}");
    poll_key(&b, plain, StatusCode::OK).await;
    let (_, list) = admin(&a, "GET", "/admin/api-keys", None).await;
    let id = list["api_keys"][0]["id"].as_str().unwrap().to_string();
    let (status, _) = admin(&a, "DELETE", &format!("/admin/api-keys/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    poll_key(&b, plain, StatusCode::UNAUTHORIZED).await;

    // Redis comes back empty; the instances write their tombstone back.
    server.restart();
    for gw in [&a, &b] {
        gw.wait_readiness("ready").await;
    }
    let (ok, stdout, stderr) = a.command(&["import", "--issuer", "partners", "--partial", &file]);
    // Refused outright once written back; if the import won the race, the
    // instances bury it again at once.
    eprintln!("import after the restart: ok={ok} {stdout} {stderr}");
    for gw in [&a, &b] {
        for _ in 0..20 {
            assert_eq!(
                with_key(gw, "/partner", plain).await.0,
                StatusCode::UNAUTHORIZED
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let c = Gateway::start(&body).await;
    assert_eq!(
        with_key(&c, "/partner", plain).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (ok, _, stderr) = c.command(&["import", "--issuer", "partners", &file]);
    assert!(!ok && stderr.contains("was revoked"), "{stderr}");
    let restored = "writing their tombstones back";
    assert!(a.log().contains(restored) || b.log().contains(restored));
}

/// Waits up to two seconds for `key` at `/partner` to answer `status`.
async fn poll_key(gw: &Gateway, key: &str, status: StatusCode) {
    let start = Instant::now();
    while with_key(gw, "/partner", key).await.0 != status {
        assert!(start.elapsed() < Duration::from_secs(2), "{}", gw.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A key is a long-lived secret the upstream has no use for: it is
/// stripped before forwarding unless the route sets `forward_token = true`,
/// while a token on the same route goes on as before.
#[tokio::test]
async fn a_key_stays_at_the_gateway_unless_the_route_forwards_it() {
    let app = Upstream::start("app").await;
    let gw = Gateway::start(&config(app.addr, "")).await;
    let (_, key) = make(&gw, acme()).await;
    let (status, echo) = with_key(&gw, "/partner", &key).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert!(echo["headers"].get("x-api-key").is_none(), "{echo}");
    // On a route of keys and tokens: the key (as a bearer) is stripped,
    // a token is forwarded.
    let mixed = |credential: &str| {
        reqwest::Client::new()
            .get(gw.url("/mixed"))
            .bearer_auth(credential)
            .send()
    };
    let echo: Value = mixed(&key).await.unwrap().json().await.unwrap();
    assert!(echo["headers"].get("authorization").is_none(), "{echo}");
    let token = Signer::Hs.sign(&claims("alice"));
    let echo: Value = mixed(&token).await.unwrap().json().await.unwrap();
    assert_eq!(echo["headers"]["authorization"], format!("Bearer {token}"));

    let forwarding = config(app.addr, "").replace(
        "name = \"partner\"",
        "name = \"partner\"\nforward_token = true",
    );
    let gw = Gateway::start(&forwarding).await;
    let (_, key) = make(&gw, acme()).await;
    let (status, echo) = with_key(&gw, "/partner", &key).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_eq!(echo["headers"]["x-api-key"], key.as_str());
}

/// An instance cut off while Redis restarts empty, and a gateway started
/// meanwhile that makes a new API-key secret: a revoked key imported
/// under it works there until the instance that saw the revocation comes
/// back, finds the secret replaced, and buries what was written under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revived_under_a_new_secret_is_buried_when_its_revoker_returns() {
    let Some(mut server) = common::redis::RedisServer::start() else {
        return;
    };
    let relay = common::redis::Relay::start(server.addr()).await;
    let app = Upstream::start("app").await;
    let prefix = common::shared_store::prefix();
    let store = |url: &str| redis_store(url, &prefix);
    let a = Gateway::start(&config(app.addr, &store(&relay.url()))).await;
    let (id, key) = make(&a, acme()).await;
    let (status, _) = admin(&a, "DELETE", &format!("/admin/api-keys/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);

    relay.cut();
    server.restart();
    let c = Gateway::start(&config(app.addr, &store(&server.url()))).await;
    let file = gw_file(
        &c,
        "keys.jsonl",
        &format!(
            "{}\n",
            json!({"consumer": "revived", "key": key, "roles": ["reader"]})
        ),
    );
    let (ok, stdout, stderr) = c.command(&["import", "--issuer", "partners", &file]);
    assert!(ok && stdout.contains("1 added"), "{stdout}{stderr}");
    poll_key(&c, &key, StatusCode::OK).await;

    relay.restore().await;
    let start = Instant::now();
    while with_key(&c, "/partner", &key).await.0 != StatusCode::UNAUTHORIZED {
        assert!(start.elapsed() < Duration::from_secs(5), "{}", a.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        with_key(&a, "/partner", &key).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(a.log().contains("the keys written under it are revoked"));
}
