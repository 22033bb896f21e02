//! Roles where identity providers put them (`roles_claims`), nested claim
//! paths in requirements and identity headers, and route rules (CEL),
//! against the real gateway and a real upstream: tokens shaped as
//! Keycloak, Auth0, Okta and Entra ID issue them, signed by the test keys.

use crate::common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// One issuer per provider's shape, on the test keys, and a route each.
fn config(app: std::net::SocketAddr) -> String {
    format!(
        r#"{upstream}
[issuers.keycloak]
iss = "test-issuer"
roles_claims = ["realm_access.roles", 'resource_access."shop-api".roles']

[[issuers.keycloak.keys]]
kid = "hs-1"
alg = "HS256"
secret_env = "TEST_HS_SECRET"

[issuers.auth0]
iss = "auth0-issuer"
roles_claims = ['"https://example.com/roles"']

[[issuers.auth0.keys]]
kid = "rs-1"
alg = "RS256"
public_key_file = "{rs}"

[issuers.okta]
iss = "okta-issuer"
roles_claims = ["groups"]

[[issuers.okta.keys]]
kid = "es-1"
alg = "ES256"
public_key_file = "{es}"

[issuers.entra]
iss = "entra-issuer"
roles_claims = ["roles"]

[[issuers.entra.keys]]
kid = "ed-1"
alg = "EdDSA"
public_key_file = "{ed}"

[[routes]]
name = "admin"
path = "/admin-area"
upstream = "app"
roles = ["admin"]

[routes.headers]
x-user-sub = "sub"
x-realm-roles = "realm_access.roles"
x-client-roles = 'resource_access."shop-api".roles'
x-tenant = "org.tenant.id"

[[routes]]
name = "tenant"
path = "/tenant"
upstream = "app"
claims = {{ "org.tenant.id" = "acme", '"https://example.com/verified"' = "true" }}

[[routes]]
name = "guarded"
path = "/guarded"
upstream = "app"
rule = '!request.path.startsWith("/guarded/admin") || request.headers["x-user-sub"] == "root"'

[routes.headers]
x-user-sub = "sub"

[[routes]]
name = "ruled"
path = "/ruled"
upstream = "app"
rule = '"ops" in claims.groups && claims.email_verified == true && request.method != "DELETE"'
"#,
        upstream = upstream("app", &[app], ""),
        rs = fixture("rsa_public.pem").display(),
        es = fixture("ec_public.pem").display(),
        ed = fixture("ed_public.pem").display(),
    )
}

/// The rule of the route `ruled`, as `config` writes it.
const RULED: &str =
    "rule = '\"ops\" in claims.groups && claims.email_verified == true && request.method != \"DELETE\"'";

fn token(signer: Signer, iss: &str, extra: Value) -> String {
    let mut claims = json!({ "iss": iss, "sub": "u-1", "iat": now(), "exp": now() + 600 });
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    signer.sign(&claims)
}

async fn call(gw: &Gateway, method: &str, path: &str, token: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .request(method.parse().unwrap(), gw.url(path))
        .bearer_auth(token)
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

#[tokio::test]
async fn roles_are_read_where_each_provider_puts_them() {
    let app = Upstream::start("app").await;
    let gw = Gateway::start(&config(app.addr)).await;
    let admitted = [
        (
            Signer::Hs,
            "test-issuer",
            json!({ "realm_access": { "roles": ["user", "admin"] } }),
        ),
        (
            Signer::Hs,
            "test-issuer",
            json!({ "resource_access": { "shop-api": { "roles": ["admin"] } } }),
        ),
        (
            Signer::Rs,
            "auth0-issuer",
            json!({ "https://example.com/roles": ["admin"] }),
        ),
        (
            Signer::Es,
            "okta-issuer",
            json!({ "groups": ["Everyone", "admin"] }),
        ),
        (Signer::Ed, "entra-issuer", json!({ "roles": ["admin"] })),
    ];
    for (signer, iss, claims) in admitted {
        let (status, _) = call(
            &gw,
            "GET",
            "/admin-area/x",
            &token(signer, iss, claims.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{iss} {claims}");
    }
    let refused = [
        // Another client's role, a realm role named elsewhere.
        (
            Signer::Hs,
            "test-issuer",
            json!({ "resource_access": { "billing": { "roles": ["admin"] } } }),
        ),
        (
            Signer::Hs,
            "test-issuer",
            json!({ "roles": ["admin"], "role": "admin" }),
        ),
        // A string where a list belongs.
        (
            Signer::Hs,
            "test-issuer",
            json!({ "realm_access": { "roles": "admin" } }),
        ),
        (Signer::Es, "okta-issuer", json!({ "groups": "admin" })),
        // The namespaced claim read as a path would be `https://example` > `com/roles`.
        (
            Signer::Rs,
            "auth0-issuer",
            json!({ "https://example": { "com/roles": ["admin"] } }),
        ),
        (Signer::Ed, "entra-issuer", json!({ "groups": ["admin"] })),
    ];
    for (signer, iss, claims) in refused {
        let (status, body) = call(
            &gw,
            "GET",
            "/admin-area/x",
            &token(signer, iss, claims.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{iss} {claims}");
        assert_eq!(body["error_description"], "required role missing");
    }
}

#[tokio::test]
async fn nested_claims_reach_the_upstream_and_meet_requirements() {
    let app = Upstream::start("app").await;
    let gw = Gateway::start(&config(app.addr)).await;
    let t = token(
        Signer::Hs,
        "test-issuer",
        json!({
            "realm_access": { "roles": ["admin", "auditor"] },
            "resource_access": { "shop-api": { "roles": ["viewer"] } },
            "org": { "tenant": { "id": "acme" } },
            "https://example.com/verified": true,
        }),
    );
    let (status, echo) = call(&gw, "GET", "/admin-area/x", &t).await;
    assert_eq!(status, StatusCode::OK);
    let seen = &echo["headers"];
    assert_eq!(seen["x-realm-roles"], "admin,auditor");
    assert_eq!(seen["x-client-roles"], "viewer");
    assert_eq!(seen["x-tenant"], "acme");
    assert_eq!(call(&gw, "GET", "/tenant", &t).await.0, StatusCode::OK);

    let other = token(
        Signer::Hs,
        "test-issuer",
        json!({ "org": { "tenant": { "id": "evil" } }, "https://example.com/verified": true }),
    );
    assert_eq!(
        call(&gw, "GET", "/tenant", &other).await.0,
        StatusCode::FORBIDDEN
    );
    let flat = token(
        Signer::Hs,
        "test-issuer",
        json!({ "org.tenant.id": "acme", "https://example.com/verified": true }),
    );
    assert_eq!(
        call(&gw, "GET", "/tenant", &flat).await.0,
        StatusCode::FORBIDDEN
    );
    // A spoofed copy of a nested-claim header never reaches the upstream.
    let r = reqwest::Client::new()
        .get(gw.url("/admin-area/y"))
        .bearer_auth(token(
            Signer::Hs,
            "test-issuer",
            json!({ "realm_access": { "roles": ["admin"] } }),
        ))
        .header("x-tenant", "spoofed")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let echo: Value = r.json().await.unwrap();
    assert_eq!(echo["headers"]["x-tenant"], Value::Null, "{echo}");
}

#[tokio::test]
async fn a_rule_admits_only_when_it_is_true() {
    let app = Upstream::start("app").await;
    let gw = Gateway::start(&config(app.addr)).await;
    let good = json!({ "groups": ["dev", "ops"], "email_verified": true });
    let t = token(Signer::Hs, "test-issuer", good);
    assert_eq!(call(&gw, "GET", "/ruled/a", &t).await.0, StatusCode::OK);
    let (status, body) = call(&gw, "DELETE", "/ruled/a", &t).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(
        body["error_description"],
        "the route's rule refused the request"
    );
    for claims in [
        // False.
        json!({ "groups": ["dev"], "email_verified": true }),
        json!({ "groups": ["ops"], "email_verified": false }),
        // Not evaluable: a claim missing, a value of the wrong type.
        json!({ "groups": ["ops"] }),
        json!({ "email_verified": true }),
        json!({ "groups": "ops", "email_verified": true }),
        json!({ "groups": ["ops"], "email_verified": "true" }),
    ] {
        let t = token(Signer::Hs, "test-issuer", claims.clone());
        assert_eq!(
            call(&gw, "GET", "/ruled/a", &t).await.0,
            StatusCode::FORBIDDEN,
            "{claims}"
        );
    }
    let refused = gw
        .metric(
            "portero_auth_decisions_total",
            &[
                ("route", "ruled"),
                ("result", "deny"),
                ("reason", "rule_refused"),
            ],
        )
        .await;
    assert_eq!(refused, 7.0);
}

/// A rule in standard CEL's spellings passes `portero check` and runs
/// (`.5`, `0x1F`, the smallest integer, `claims` as a map), and a double
/// in a token is the double it spells, not a neighbour.
#[tokio::test]
async fn a_rule_reads_numbers_and_claims_as_cel_does() {
    let app = Upstream::start("app").await;
    let rule = r#"rule = 'claims.x != 0.9509489954070259 && claims.half == .5 && claims.mask == 0x1F && claims.low > -9223372036854775808 && "x" in claims && size(claims) > 4'"#;
    let text = config(app.addr).replace(RULED, rule);
    let (ok, out) = check(&listening(&text));
    assert!(ok, "{out}");
    let gw = Gateway::start(&text).await;
    let with_x = |x: f64| {
        let claims = json!({ "x": x, "half": 0.5, "mask": 31, "low": 0 });
        token(Signer::Hs, "test-issuer", claims)
    };
    assert_eq!(
        call(&gw, "GET", "/ruled/a", &with_x(0.95)).await.0,
        StatusCode::OK
    );
    let (status, body) = call(&gw, "GET", "/ruled/a", &with_x(0.9509489954070259)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["error_description"],
        "the route's rule refused the request"
    );
}

/// `body` as a whole configuration file, as `portero check` reads one.
fn listening(body: &str) -> String {
    format!("[[listen]]\naddr = \"127.0.0.1:0\"\n{body}")
}

#[test]
fn check_names_a_rule_or_path_that_does_not_parse_with_its_line() {
    let app = "127.0.0.1:9".parse().unwrap();
    for (broken, line_of, expected) in [
        (
            "rule = '\"ops\" in claims.groups &&'",
            "rule = '\"ops\" in claims.groups &&'",
            "routes[3].rule: column 26: the rule ends where a value belongs",
        ),
        (
            "rule = 'claims.age < 1 && \"a\" < 2'",
            "rule = 'claims.age",
            "routes[3].rule: orders numbers with numbers",
        ),
        (
            "rule = 'user.admin'",
            "rule = 'user",
            "routes[3].rule: column 1: unknown name \"user\"",
        ),
        (
            "[routes.headers]\nx-roles = \"https://example.com/roles\"",
            "x-roles",
            "routes[3].headers.x-roles: \"https://example.com/roles\": ':' in a name; quote a name",
        ),
        (
            "claims = { \"a..b\" = \"x\" }",
            "claims = { \"a..b\"",
            "routes[3].claims.\"a..b\": \"a..b\": an empty name",
        ),
    ] {
        let text = listening(&config(app)).replace(RULED, broken);
        let line = text.lines().position(|l| l.starts_with(line_of)).unwrap() + 1;
        let (ok, out) = check(&text);
        assert!(!ok, "{broken}: {out}");
        assert!(
            out.contains(&format!(":{line}: {expected}")),
            "{broken}: want line {line}: {expected}\n{out}"
        );
    }
    let text = listening(&config(app)).replace(
        "roles_claims = [\"groups\"]",
        "roles_claims = [\"groups\", 'a.\"b']",
    );
    let (ok, out) = check(&text);
    assert!(
        !ok && out.contains("issuers.okta.roles_claims: \"a.\\\"b\": a quoted name is not closed"),
        "{out}"
    );
}

/// The Keycloak-shaped example of docs/features.md, appended to the demo
/// configuration as it says, with its secret from the test's environment.
#[tokio::test]
async fn the_keycloak_example_in_features_md_runs_on_the_demo() {
    let features =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/features.md")).unwrap();
    let start = features
        .find("# Tokens shaped as Keycloak issues them")
        .unwrap();
    let block = &features[start..start + features[start..].find("```").unwrap()];
    let gw = Gateway::start(&format!(
        "{}\n{}",
        demo_body(),
        block.replace("KEYCLOAK_DEMO_SECRET", "TEST_HS_SECRET")
    ))
    .await;
    let kc = |sub: &str, extra: Value| {
        let mut claims = json!({
            "iss": "https://sso.example.com/realms/shop", "sub": sub,
            "iat": now(), "exp": now() + 600, "email_verified": true,
        });
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        sign_with(Signer::Hs, Some("demo"), &claims)
    };
    let auditor = kc("ann", json!({ "realm_access": { "roles": ["auditor"] } }));
    let (status, echo) = call(&gw, "GET", "/reports/q3", &auditor).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_eq!(echo["headers"]["x-user-sub"], "ann", "{echo}");
    assert_eq!(echo["headers"]["x-user-realm-roles"], "auditor", "{echo}");
    let client = kc(
        "cy",
        json!({ "resource_access": { "shop-api": { "roles": ["report-reader"] } } }),
    );
    assert_eq!(
        call(&gw, "HEAD", "/reports/q3", &client).await.0,
        StatusCode::OK
    );
    let (status, body) = call(&gw, "POST", "/reports/q3", &auditor).await;
    assert_eq!(
        (status, body["error_description"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some("the route's rule refused the request")
        )
    );
    let other = kc(
        "bob",
        json!({ "resource_access": { "billing": { "roles": ["auditor"] } } }),
    );
    let (status, body) = call(&gw, "GET", "/reports/q3", &other).await;
    assert_eq!(
        (status, body["error_description"].as_str()),
        (StatusCode::FORBIDDEN, Some("required role missing"))
    );
}

/// A forward-auth decision applies the rule to the original request.
#[tokio::test]
async fn forward_auth_decisions_apply_the_rule_to_the_original_request() {
    let app = Upstream::start("app").await;
    let server = "forward_auth_path = \"/.portero/auth\"\nforward_auth_style = \"nginx\"";
    let gw = Gateway::start_with_server_settings(server, &config(app.addr)).await;
    let t = token(
        Signer::Hs,
        "test-issuer",
        json!({ "groups": ["ops"], "email_verified": true }),
    );
    let decide = |method: &'static str| {
        reqwest::Client::new()
            .get(gw.url("/.portero/auth"))
            .bearer_auth(&t)
            .header("x-original-uri", "/ruled/a")
            .header("x-original-method", method)
            .header("x-original-host", "api.example.com")
            .send()
    };
    assert_eq!(decide("GET").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        decide("DELETE").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

/// A rule changes with the file on a reload, and a rule that no longer
/// parses keeps the running one (never a route without its rule).
#[tokio::test]
async fn rules_reload_with_the_config() {
    let app = Upstream::start("app").await;
    let body = config(app.addr);
    let gw = Gateway::start(&body).await;
    let t = token(
        Signer::Hs,
        "test-issuer",
        json!({ "groups": ["ops"], "email_verified": true }),
    );
    assert_eq!(call(&gw, "GET", "/ruled/a", &t).await.0, StatusCode::OK);

    let stricter = body.replace("\"ops\" in claims.groups", "\"sre\" in claims.groups");
    gw.rewrite_config(&stricter);
    gw.signal("HUP");
    let refused = poll(
        std::time::Duration::from_secs(5),
        || call(&gw, "GET", "/ruled/a", &t),
        |(s, _)| *s == StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(refused.0, StatusCode::FORBIDDEN, "{}", gw.log());

    gw.rewrite_config(&body.replace("\"ops\" in claims.groups &&", "\"ops\" in &&"));
    gw.signal("HUP");
    gw.wait_metric("portero_config_reloads_total", &[("result", "error")], 1.0)
        .await;
    assert_eq!(
        call(&gw, "GET", "/ruled/a", &t).await.0,
        StatusCode::FORBIDDEN
    );
}

/// A rule reads the request as the upstream gets it: the path as routed
/// (`//`, `;` parameters), no client copy of a header portero writes, and
/// nested claims that name a key once.
#[tokio::test]
async fn rules_read_the_request_as_the_upstream_gets_it() {
    let app = Upstream::start("app").await;
    let gw = Gateway::start(&config(app.addr)).await;
    let t = token(Signer::Hs, "test-issuer", json!({ "groups": ["ops"] }));
    let get = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer {t}\r\n\
             X-User-Sub: root\r\nConnection: close\r\n\r\n"
        )
    };
    assert_eq!(raw_http(gw.port, get("/guarded/x").as_bytes()).await.0, 200);
    for path in [
        "/guarded/admin",
        "/guarded/admin/",
        "/guarded/admin/x",
        "//guarded/admin/x",
        "/guarded//admin/x",
        "/guarded;v=1/admin/x",
        "/guarded/admin;x/y",
    ] {
        let (status, text) = raw_http(gw.port, get(path).as_bytes()).await;
        assert_eq!(status, 403, "{path}: {text}");
    }
    // A key twice in a nested claim: the token is malformed, whichever copy a
    // role would have come from.
    let header = r#"{"alg":"HS256","typ":"JWT","kid":"hs-1"}"#;
    let payload = format!(
        r#"{{"iss":"test-issuer","sub":"u-1","exp":{},"realm_access":{{"roles":["user"],"roles":["admin"]}}}}"#,
        now() + 600
    );
    let twice = sign_raw(header, &payload);
    let (status, body) = call(&gw, "GET", "/admin-area/x", &twice).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

/// A token of exactly this header and payload text, HS256 with the test secret.
fn sign_raw(header: &str, payload: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HS_SECRET.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

/// `strip_headers` patterns: `*` only at the end (one elsewhere matched
/// nothing, silently), and `_` read as `-` as names are compared; a
/// header a pattern strips reads as absent to a rule.
#[tokio::test]
async fn strip_patterns_mean_what_they_say_to_the_upstream_and_to_rules() {
    let app = Upstream::start("app").await;
    let (ok, out) = check(&listening(&format!(
        "[auth]\nstrip_headers = [\"x-*-id\"]\n{}",
        config(app.addr)
    )));
    assert!(
        !ok && out.contains(":4: auth.strip_headers: a name, or a prefix ending in '*'"),
        "{out}"
    );
    // Entries that match no header name, and one that matches every one.
    for entry in ["x-debug-mode ", "x-a, x-b", "x-debug:mode", "x-déb*", "*"] {
        let (ok, out) = check(&listening(&format!(
            "[auth]\nstrip_headers = [{entry:?}]\n{}",
            config(app.addr)
        )));
        assert!(
            !ok && out.contains(":4: auth.strip_headers: "),
            "{entry:?}: {out}"
        );
    }

    let body = format!(
        "[auth]\nstrip_headers = [\"x_legacy_*\"]\n{}",
        config(app.addr).replace(
            "rule = '!request.path.startsWith(\"/guarded/admin\") || request.headers[\"x-user-sub\"] == \"root\"'",
            "rule = '!(\"x-legacy-user\" in request.headers)'",
        )
    );
    let gw = Gateway::start(&body).await;
    let t = token(Signer::Hs, "test-issuer", json!({}));
    let r = reqwest::Client::new()
        .get(gw.url("/guarded/x"))
        .bearer_auth(&t)
        .header("x-legacy-user", "root")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let echo: Value = r.json().await.unwrap();
    assert_eq!(echo["headers"]["x-legacy-user"], Value::Null, "{echo}");
}

/// An identity header written with `_`, and a header that `Connection`
/// names sent in another spelling: neither reaches the upstream as the
/// client sent it, nor a rule.
#[tokio::test]
async fn no_spelling_of_a_stripped_header_reaches_the_upstream_or_a_rule() {
    let app = Upstream::start("app").await;
    let body = config(app.addr).replace(
        "[[routes]]\nname = \"ruled\"",
        "[[routes]]\nname = \"legacy\"\npath = \"/legacy\"\nupstream = \"app\"\n\
         underscores_in_headers = true\nrule = '!(\"x-debug-mode\" in request.headers)'\n\n\
         [routes.headers]\nx_remote_user = \"sub\"\n\n[[routes]]\nname = \"ruled\"",
    );
    let gw = Gateway::start(&body).await;
    let t = token(Signer::Hs, "test-issuer", json!({}));
    let send = |headers: &'static [(&'static str, &'static str)]| {
        let mut r = reqwest::Client::new()
            .get(gw.url("/legacy/x"))
            .bearer_auth(&t);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send()
    };
    // The injected header is portero's alone: a client's copy, in any
    // spelling, never reaches the upstream beside it.
    for spoof in [
        &[("x-remote-user", "admin")][..],
        &[("X_Remote_User", "admin")][..],
    ] {
        let r = send(spoof).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{spoof:?}");
        let echo: Value = r.json().await.unwrap();
        assert_eq!(echo["headers"]["x_remote_user"], "u-1", "{spoof:?}: {echo}");
        assert_eq!(
            echo["headers"]["x-remote-user"],
            Value::Null,
            "{spoof:?}: {echo}"
        );
    }
    // A header sent is seen by the rule in any spelling...
    let r = send(&[("x_debug_mode", "1")]).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // ...and one that `Connection` names, in any spelling, is absent to the
    // rule because the upstream never gets it.
    let r = send(&[("connection", "x-debug-mode"), ("x_debug_mode", "1")])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let echo: Value = r.json().await.unwrap();
    assert_eq!(echo["headers"]["x_debug_mode"], Value::Null, "{echo}");
}
