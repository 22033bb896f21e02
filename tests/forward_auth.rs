//! portero as the decision point of a proxy that routes traffic itself: a
//! real nginx with `auth_request` in front of an upstream, asking portero's
//! forward-auth endpoint in each of the three conventions (nginx's own,
//! Traefik's headers, Envoy's path), and clients trying to steer it; and
//! routes that sign people in (`login`): the decision admits a browser's
//! session cookie, and nginx's `error_page 401` sends a browser without
//! one to portero's start of a sign-in. nginx comes from the system
//! (`.ci/run` installs it); without one the nginx test is skipped with a
//! message, and fails instead under `PORTERO_REQUIRE_NGINX=1`.

use crate::common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// portero in decision mode: `/orders` needs scope `orders:read` and
/// injects the subject; `/limited` allows two requests a minute.
fn portero_config(upstream_addr: std::net::SocketAddr) -> String {
    format!(
        r#"{}
{}
[[routes]]
name = "orders"
path = "/orders"
upstream = "api"
scopes = ["orders:read"]
headers = {{ "X-User-Sub" = "sub" }}

[[routes]]
name = "limited"
path = "/limited"
upstream = "api"
rate_limit = {{ requests = 2, per = "60s" }}

[[routes]]
name = "open"
path = "/open"
upstream = "api"
public = true
"#,
        issuers(),
        upstream("api", &[upstream_addr], "")
    )
}

/// The decision endpoint in one proxy's convention.
fn server(style: &str) -> String {
    format!("forward_auth_path = \"/.portero/auth\"\nforward_auth_style = \"{style}\"")
}

/// How the test's nginx asks portero: as docs/features.md shows for the nginx
/// style (other conventions' headers cleared), the same without clearing
/// them, or imitating Traefik's headers or Envoy's path.
#[derive(Clone, Copy)]
enum Asks {
    Nginx,
    NginxUncleared,
    Traefik,
    Envoy,
}

impl Asks {
    fn location(self, portero_port: u16) -> String {
        let endpoint = format!("http://127.0.0.1:{portero_port}/.portero/auth");
        let nginx = "proxy_set_header X-Original-URI $request_uri;\n      \
                     proxy_set_header X-Original-Method $request_method;\n      \
                     proxy_set_header X-Original-Host $http_host;";
        let cleared = "proxy_set_header X-Forwarded-Uri \"\";\n      \
                       proxy_set_header X-Forwarded-Method \"\";\n      \
                       proxy_set_header X-Forwarded-Host \"\";\n      \
                       proxy_set_header X-Original-URL \"\";";
        let traefik = "proxy_set_header X-Forwarded-Uri $request_uri;\n      \
                       proxy_set_header X-Forwarded-Method $request_method;\n      \
                       proxy_set_header X-Forwarded-Host $http_host;";
        match self {
            Asks::Nginx => format!("proxy_pass {endpoint};\n      {nginx}\n      {cleared}"),
            Asks::NginxUncleared => format!("proxy_pass {endpoint};\n      {nginx}"),
            Asks::Traefik => format!("proxy_pass {endpoint};\n      {traefik}"),
            Asks::Envoy => format!("proxy_pass {endpoint}$request_uri;"),
        }
    }
}

fn token(sub: &str, scope: &str) -> String {
    let mut c = claims(sub);
    c["scope"] = json!(scope);
    Signer::Hs.sign(&c)
}

/// An nginx of this test's own, in the foreground, killed on drop.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn find() -> Option<String> {
        ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
            .iter()
            .find(|p| std::path::Path::new(p).exists())
            .map(|p| p.to_string())
    }

    async fn start(portero_port: u16, upstream_port: u16, asks: Asks) -> Option<Nginx> {
        let ask = asks.location(portero_port);
        let locations = format!(
            r#"
    location / {{
      auth_request /_portero;
      auth_request_set $user_sub $upstream_http_x_user_sub;
      proxy_set_header X-User-Sub $user_sub;
      proxy_pass http://127.0.0.1:{upstream_port};
    }}
    location = /_portero {{
      internal;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      {ask}
    }}"#
        );
        Nginx::launch(free_port(), &locations).await
    }

    /// nginx on `port` with `locations` in its one server block.
    async fn launch(port: u16, locations: &str) -> Option<Nginx> {
        let Some(bin) = Nginx::find() else {
            skipped(Outside::Nginx, "no nginx binary");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let conf = format!(
            r#"
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
{locations}
  }}
}}
"#
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new(bin)
            .arg("-c")
            .arg(&path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(Nginx {
            child,
            port,
            _dir: dir,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn through(nginx: &Nginx, path: &str, token: Option<&str>, spoof: bool) -> (u16, Value) {
    through_with(nginx, path, token, spoof, &[]).await
}

async fn through_with(
    nginx: &Nginx,
    path: &str,
    token: Option<&str>,
    spoof: bool,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(nginx.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if spoof {
        req = req.header("x-user-sub", "admin");
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn nginx_auth_request_in_front_of_an_upstream_asks_portero() {
    let up = Upstream::start("api").await;
    let gw = Gateway::start_with_server_settings(&server("nginx"), &portero_config(up.addr)).await;
    let Some(nginx) = Nginx::start(gw.port, up.addr.port(), Asks::Nginx).await else {
        return;
    };

    // No token, a forged one, one without the scope: the upstream hears nothing.
    assert_eq!(through(&nginx, "/orders/7", None, true).await.0, 401);
    let forged = format!("{}x", token("alice", "orders:read"));
    assert_eq!(
        through(&nginx, "/orders/7", Some(&forged), false).await.0,
        401
    );
    assert_eq!(
        through(&nginx, "/orders/7", Some(&token("alice", "profile")), false)
            .await
            .0,
        403
    );
    assert_eq!(up.requests(), 0);

    // A good token: through, with the subject portero vouched for, not
    // the one the client wrote.
    let (status, seen) = through(
        &nginx,
        "/orders/7?x=1",
        Some(&token("alice", "orders:read")),
        true,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(seen["path"], "/orders/7");
    assert_eq!(seen["headers"]["x-user-sub"], "alice");
    assert_eq!(up.requests(), 1);
    assert_eq!(through(&nginx, "/open/x", None, false).await.0, 200);

    // Rate limits count decisions; nginx's auth_request passes only 401
    // and 403 on, and answers 500 for a 429.
    let t = token("bob", "");
    let got: Vec<u16> = futures_util::future::join_all(
        (0..3).map(|_| async { through(&nginx, "/limited", Some(&t), false).await.0 }),
    )
    .await;
    assert_eq!(got.iter().filter(|s| **s == 200).count(), 2, "{got:?}");
    assert_eq!(got.iter().filter(|s| **s == 500).count(), 1, "{got:?}");
    let decisions = gw
        .metric(
            "portero_http_requests_total",
            &[("route", "orders"), ("method", "GET"), ("status", "200")],
        )
        .await;
    assert_eq!(decisions, 1.0);
}

#[tokio::test]
async fn traefik_and_envoy_name_the_original_request_their_own_way() {
    let up = Upstream::start("api").await;
    let traefik =
        Gateway::start_with_server_settings(&server("traefik"), &portero_config(up.addr)).await;
    let client = reqwest::Client::new();
    let good = token("carol", "orders:read");

    // Traefik forwardAuth: X-Forwarded-Method / -Host / -Uri.
    let r = client
        .get(traefik.url("/.portero/auth"))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-host", "shop.example")
        .header("x-forwarded-uri", "/orders/9")
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-user-sub"], "carol");
    let r = client
        .get(traefik.url("/.portero/auth"))
        .header("x-forwarded-uri", "/orders/9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    // A request naming no original is a clear 400.
    let r = client
        .get(traefik.url("/.portero/auth"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Envoy ext_authz (HTTP): the original path after the endpoint's, the
    // original method kept.
    let envoy =
        Gateway::start_with_server_settings(&server("envoy"), &portero_config(up.addr)).await;
    let r = client
        .post(envoy.url("/.portero/auth/orders/9"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-user-sub"], "carol");

    // A rate-limited route says so with its headers.
    let t = token("dan", "");
    let ask = || {
        client
            .get(envoy.url("/.portero/auth/limited"))
            .bearer_auth(&t)
            .send()
    };
    for _ in 0..2 {
        assert_eq!(ask().await.unwrap().status(), StatusCode::OK);
    }
    let r = ask().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    assert!(r.headers().contains_key("ratelimit"));
    assert_eq!(up.requests(), 0);
}

/// The client writes another convention's naming headers to make a
/// protected request look like a public one. Whatever nginx passes on, the
/// protected request never reaches the upstream without a token: the
/// docs/features.md's nginx config clears them (portero decides on the real request),
/// and without that portero refuses the decision (400, nginx's 500).
#[tokio::test]
async fn client_headers_in_another_proxys_naming_cannot_steer_the_decision() {
    let up = Upstream::start("api").await;
    let decoys = [
        ("x-forwarded-uri", "/open/x"),
        ("x-forwarded-method", "GET"),
        ("x-original-uri", "/open/x"),
        ("x-original-url", "/open/x"),
    ];
    for (style, asks, refused) in [
        ("nginx", Asks::Nginx, 401),
        ("nginx", Asks::NginxUncleared, 500),
        ("traefik", Asks::Traefik, 500),
        ("envoy", Asks::Envoy, 500),
    ] {
        let gw =
            Gateway::start_with_server_settings(&server(style), &portero_config(up.addr)).await;
        let Some(nginx) = Nginx::start(gw.port, up.addr.port(), asks).await else {
            return;
        };
        let before = up.requests();
        for decoy in decoys {
            let (status, _) = through_with(&nginx, "/orders/secret", None, false, &[decoy]).await;
            // A style's own headers are written by the asking proxy over the
            // client's, so the decision is about the real request.
            let own = match style {
                "nginx" => decoy.0.starts_with("x-original-") && decoy.0 != "x-original-url",
                "traefik" => decoy.0.starts_with("x-forwarded-"),
                _ => false,
            };
            let want = if own { 401 } else { refused };
            assert_eq!(status, want, "{style} asked as {decoy:?}");
        }
        assert_eq!(
            up.requests(),
            before,
            "{style}: the upstream heard a request"
        );
        // The honest requests still pass.
        assert_eq!(
            through(&nginx, "/open/x", None, false).await.0,
            200,
            "{style}"
        );
        let good = token("erin", "orders:read");
        let (status, seen) = through(&nginx, "/orders/7", Some(&good), true).await;
        assert_eq!(
            (status, &seen["headers"]["x-user-sub"]),
            (200, &json!("erin")),
            "{style}"
        );
    }
}

/// A path under the endpoint is a decision however it is written: never a
/// routed request for the path its dot segments would make.
#[tokio::test]
async fn a_path_under_the_endpoint_is_never_routed() {
    let up = Upstream::start("api").await;
    let config = format!(
        "{}\n[[routes]]\nname = \"inner\"\npath = \"/.portero/open\"\nupstream = \"api\"\npublic = true\n",
        portero_config(up.addr)
    );
    for style in ["nginx", "traefik", "envoy"] {
        let gw = Gateway::start_with_server_settings(&server(style), &config).await;
        for path in [
            "/.portero/auth/../open/x",
            "/.portero/auth/%2e%2e/open/x",
            "/.portero/auth/./../open/x",
        ] {
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: gw\r\nX-Original-URI: /open/x\r\n\
                 X-Forwarded-Uri: /open/x\r\nConnection: close\r\n\r\n"
            );
            let (status, _) = raw_http(gw.port, request.as_bytes()).await;
            assert_eq!(status, 400, "{style}: {path}");
        }
        // The original request's path is normalised and refused as any path is.
        if style == "nginx" {
            let r = reqwest::Client::new()
                .get(gw.url("/.portero/auth"))
                .header("x-original-uri", "/open/%25%32%65%25%32%65/orders")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        }
        // The route beside the endpoint is served as usual.
        let r = reqwest::get(gw.url("/.portero/open/x")).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{style}");
    }
    assert_eq!(up.requests(), 3);
}

/// nginx passes the original request target on to the application as the
/// client wrote it, while portero would route a dot segment, an encoded
/// unreserved character, an empty segment or a `;` parameter away: a
/// decision about such a path would be about another route than the one
/// the application serves. In every style, with and without a token, it is
/// refused (400, which nginx answers as 500) and the application hears
/// nothing; paths already in routing form are decided as before.
#[tokio::test]
async fn paths_the_application_would_read_otherwise_are_never_decided() {
    let up = Upstream::start("api").await;
    let good = token("frank", "orders:read");
    for (style, asks) in [
        ("nginx", Asks::Nginx),
        ("traefik", Asks::Traefik),
        ("envoy", Asks::Envoy),
    ] {
        let gw =
            Gateway::start_with_server_settings(&server(style), &portero_config(up.addr)).await;
        let Some(nginx) = Nginx::start(gw.port, up.addr.port(), asks).await else {
            return;
        };
        let before = up.requests();
        for path in [
            "/orders/7/../../open/x",
            "/orders/7/%2e%2e/%2e%2e/open/x",
            "/open/x/../../orders/7",
            "/%6fpen/x",
            "/open;x",
            "/;x/open/x",
            "//open/x",
            "/.//open/x",
            "/orders/%37",
        ] {
            for auth in [None, Some(&good)] {
                let auth = auth
                    .map(|t| format!("Authorization: Bearer {t}\r\n"))
                    .unwrap_or_default();
                let request = format!(
                    "POST {path} HTTP/1.1\r\nHost: shop\r\n{auth}\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let (status, text) = raw_http(nginx.port, request.as_bytes()).await;
                assert_eq!(status, 500, "{style}: {path} ({auth:?}): {text}");
            }
        }
        assert_eq!(up.requests(), before, "{style}: the application heard one");
        // Asked directly, the refusal says why.
        if style == "traefik" {
            let r = reqwest::Client::new()
                .get(gw.url("/.portero/auth"))
                .header("x-forwarded-uri", "/orders/7/../../open/x")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
            let body: Value = r.json().await.unwrap();
            assert!(
                body["error_description"]
                    .as_str()
                    .unwrap()
                    .contains("normal form"),
                "{body}"
            );
        }
        // Paths in routing form are decided as before.
        assert_eq!(through(&nginx, "/open/x", None, false).await.0, 200);
        assert_eq!(through(&nginx, "/orders/7", None, false).await.0, 401);
        let (status, seen) = through(&nginx, "/orders/7/", Some(&good), true).await;
        assert_eq!(
            (status, &seen["headers"]["x-user-sub"]),
            (200, &json!("frank"))
        );
        assert_eq!(seen["path"], "/orders/7/");
    }
}

/// A decision about a path below a token endpoint (legacy or OAuth 2.0) is
/// the decision for an ordinary path: the demo's protected catch-all wants
/// a token, so an application's own `/auth/admin/users` behind the asking
/// proxy is not opened. The exact endpoint paths are allowed as before.
#[tokio::test]
async fn paths_below_a_token_endpoint_need_what_their_route_needs() {
    let gw = Gateway::start_with_server_settings(&server("traefik"), &demo_body()).await;
    let client = reqwest::Client::new();
    let ask = |method: &'static str, uri: &'static str, token: Option<String>| {
        let mut req = client
            .get(gw.url("/.portero/auth"))
            .header("x-forwarded-method", method)
            .header("x-forwarded-uri", uri);
        if let Some(t) = token {
            req = req.header("authorization", t);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    for (method, uri) in [
        ("POST", "/auth"),
        ("POST", "/api/auth/token"),
        ("POST", "/api/auth/refreshtoken"),
        ("POST", "/oauth2/login-refresh/token"),
        ("POST", "/oauth2/client-flat/introspect"),
        (
            "GET",
            "/.well-known/oauth-authorization-server/oauth2/client-flat",
        ),
    ] {
        assert_eq!(ask(method, uri, None).await, 200, "{method} {uri}");
    }
    assert_eq!(ask("GET", "/auth", None).await, 405);
    // Not in routing form: the application behind would read it otherwise.
    assert_eq!(ask("POST", "//auth", None).await, 400);
    let below = [
        ("POST", "/auth/admin/users"),
        ("DELETE", "/auth/admin/users/1"),
        ("GET", "/auth/"),
        ("POST", "/api/auth/token/x"),
        ("POST", "/oauth2/login-refresh"),
        ("POST", "/oauth2/login-refresh/anything"),
        ("GET", "/oauth2/client-flat/token/x"),
        (
            "GET",
            "/.well-known/oauth-authorization-server/oauth2/client-flat/x",
        ),
    ];
    for (method, uri) in below {
        assert_eq!(ask(method, uri, None).await, 401, "{method} {uri}");
    }
    // With a token the catch-all accepts, they are allowed like any path.
    let (status, body) = post(
        &gw,
        "/api/auth/token",
        None,
        r#"{"username": "admin", "password": "abcd1234"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = parse(&body)["accessToken"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    for (method, uri) in below {
        let status = ask(method, uri, Some(format!("Bearer {token}"))).await;
        assert_eq!(status, 200, "{method} {uri}");
    }
}

/// At an OAuth 2.0 endpoint's exact path, a decision is what the proxy
/// itself answers: a method the endpoint does not take is 405 with its
/// `Allow` (nginx's 500), never a pass for the application behind.
#[tokio::test]
async fn oauth2_endpoints_are_decided_as_the_proxy_answers_them() {
    let gw = Gateway::start_with_server_settings(&server("traefik"), &demo_body()).await;
    let client = reqwest::Client::new();
    for (method, uri, allow) in [
        ("GET", "/oauth2/login-refresh/token", "POST"),
        ("GET", "/oauth2/client-flat/token", "POST"),
        ("PUT", "/oauth2/client-flat/token", "POST"),
        ("DELETE", "/oauth2/client-flat/revoke", "POST"),
        ("GET", "/oauth2/client-flat/introspect", "POST"),
        (
            "POST",
            "/oauth2/client-flat/.well-known/openid-configuration",
            "GET",
        ),
        (
            "HEAD",
            "/.well-known/oauth-authorization-server/oauth2/client-flat",
            "GET",
        ),
        (
            "DELETE",
            "/.well-known/oauth-authorization-server/oauth2/client-flat",
            "GET",
        ),
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let direct = client.request(m, gw.url(uri)).send().await.unwrap();
        assert_eq!(direct.status(), 405, "{method} {uri}");
        assert_eq!(direct.headers()["allow"], allow, "{method} {uri}");
        let decided = client
            .get(gw.url("/.portero/auth"))
            .header("x-forwarded-method", method)
            .header("x-forwarded-uri", uri)
            .send()
            .await
            .unwrap();
        assert_eq!(decided.status(), 405, "decided: {method} {uri}");
        assert_eq!(decided.headers()["allow"], allow, "decided: {method} {uri}");
    }
    // Through nginx, the application behind never hears them.
    let up = Upstream::start("api").await;
    let gw = Gateway::start_with_server_settings(&server("nginx"), &demo_body()).await;
    let Some(nginx) = Nginx::start(gw.port, up.addr.port(), Asks::Nginx).await else {
        return;
    };
    let (status, _) = through(&nginx, "/oauth2/client-flat/token", None, false).await;
    assert_eq!((status, up.requests()), (500, 0));
}

/// A method the application could read otherwise than portero routes it
/// is never decided: a standard method in another case, or any
/// method-override header (the asking proxy passes the client's headers
/// on, and the application may honour it), in every style.
#[tokio::test]
async fn methods_the_application_would_read_otherwise_are_never_decided() {
    let up = Upstream::start("api").await;
    let good = token("gina", "orders:read");
    let traefik =
        Gateway::start_with_server_settings(&server("traefik"), &portero_config(up.addr)).await;
    let client = reqwest::Client::new();
    let ask = |method: &'static str, headers: &'static [(&'static str, &'static str)]| {
        let mut req = client
            .get(traefik.url("/.portero/auth"))
            .header("x-forwarded-method", method)
            .header("x-forwarded-uri", "/orders/7")
            .bearer_auth(&good);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(ask("DELETE", &[]).await, 200);
    for (method, headers) in [
        ("delete", &[][..]),
        ("Delete", &[]),
        ("POST", &[("x-http-method-override", "DELETE")]),
        ("POST", &[("x-method-override", "DELETE")]),
        ("POST", &[("x_http_method", "DELETE")]),
        ("GET", &[("X-HTTP-Method-Override", "GET")]),
    ] {
        assert_eq!(ask(method, headers).await, 400, "{method} {headers:?}");
    }
    // A `_method` in the original query, in any spelling an application reads.
    for uri in [
        "/orders/7?_method=DELETE",
        "/orders/7?_%6Dethod=DELETE",
        "/orders/7?_method%00=DELETE",
        "/orders/7?x=1;_method=DELETE",
        "/orders/7?[_method]=DELETE",
        "/orders/7?_method[]=DELETE",
    ] {
        let status = client
            .get(traefik.url("/.portero/auth"))
            .header("x-forwarded-method", "POST")
            .header("x-forwarded-uri", uri)
            .bearer_auth(&good)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 400, "{uri}");
    }
    // Envoy keeps the method of the request it asks with.
    let envoy =
        Gateway::start_with_server_settings(&server("envoy"), &portero_config(up.addr)).await;
    for request in [
        "delete /.portero/auth/orders/7 HTTP/1.1\r\n",
        "POST /.portero/auth/orders/7 HTTP/1.1\r\nX-HTTP-Method-Override: DELETE\r\n",
    ] {
        let request = format!(
            "{request}Host: shop\r\nAuthorization: Bearer {good}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let (status, text) = raw_http(envoy.port, request.as_bytes()).await;
        assert_eq!(status, 400, "{text}");
    }
    // nginx: the override reaches the decision with the client's headers.
    let gw = Gateway::start_with_server_settings(&server("nginx"), &portero_config(up.addr)).await;
    let Some(nginx) = Nginx::start(gw.port, up.addr.port(), Asks::Nginx).await else {
        return;
    };
    let request = format!(
        "POST /orders/7 HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer {good}\r\n\
         X-HTTP-Method-Override: DELETE\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let (status, text) = raw_http(nginx.port, request.as_bytes()).await;
    assert_eq!((status, up.requests()), (500, 0), "{text}");
    let request = format!(
        "POST /orders/7?_m%65thod=DELETE HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer {good}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let (status, text) = raw_http(nginx.port, request.as_bytes()).await;
    assert_eq!((status, up.requests()), (500, 0), "{text}");
}

/// nginx hands the application the request target as the client wrote
/// it, a `#fragment` included, while a URI parser drops it: an original
/// URI with a fragment is never decided (400, nginx's 500), so
/// `/open/x#/../../orders/7` is not decided as the public `/open/x`.
#[tokio::test]
async fn an_original_uri_with_a_fragment_is_never_decided() {
    let up = Upstream::start("api").await;
    for (style, name) in [("nginx", "x-original-uri"), ("traefik", "x-forwarded-uri")] {
        let gw =
            Gateway::start_with_server_settings(&server(style), &portero_config(up.addr)).await;
        for uri in ["/open/x#/../../orders/7", "/open/x#", "/open/x?a=1#b"] {
            let r = reqwest::Client::new()
                .get(gw.url("/.portero/auth"))
                .header(name, uri)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{style}: {uri}");
        }
    }
    let gw = Gateway::start_with_server_settings(&server("nginx"), &portero_config(up.addr)).await;
    let Some(nginx) = Nginx::start(gw.port, up.addr.port(), Asks::Nginx).await else {
        return;
    };
    let request = "GET /open/x#/../../orders/7 HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n";
    let (status, text) = raw_http(nginx.port, request.as_bytes()).await;
    assert_eq!((status, up.requests()), (500, 0), "{text}");
}

/// A route that signs people in (`login`) at portero's own issuer, for
/// a site whose public URL is `public`: its client's one redirect URI is
/// `<public>/.portero/callback`. `/app` injects the subject and roles;
/// `/open` is public.
fn sign_in_config(public: &str, upstream_addr: std::net::SocketAddr) -> String {
    let hash = portero::credentials::hash_fast(standard::USER_PASSWORD);
    format!(
        r#"{}
[issuers.app]
kind = "oauth2"
login_client_id = "portal"

[[issuers.app.users]]
username = "{user}"
secret_hash = "{hash}"
roles = ["admin"]

[[issuers.app.clients]]
client_id = "portal"
redirect_uris = ["{public}/.portero/callback"]

[[routes]]
name = "app"
path = "/app"
upstream = "api"
login = "app"
roles = ["admin"]
headers = {{ "X-User-Sub" = "sub", "X-User-Roles" = "roles" }}

[[routes]]
name = "metered"
path = "/metered"
upstream = "api"
login = "app"
rate_limit = {{ requests = 2, per = "1h" }}

[[routes]]
name = "open"
path = "/open"
upstream = "api"
public = true
"#,
        upstream("api", &[upstream_addr], ""),
        user = standard::USER,
    )
}

/// Signs `standard::USER` in at the own issuer's page the `302` at
/// `location` leads to, each URL of the site's public name sent to `at`
/// (portero itself, or the nginx in front); returns where the callback
/// sent the browser back to, with the session cookie in the browser.
async fn sign_in_from(
    browser: &mut standard::Browser,
    location: &str,
    at: impl Fn(&str) -> String,
) -> String {
    let (status, _, page) = browser.get(&at(location)).await;
    assert_eq!(status, 200, "{page}");
    let (action, mut fields) = standard::form_of(&page);
    fields.push(("username".into(), standard::USER.into()));
    fields.push(("password".into(), standard::USER_PASSWORD.into()));
    let (status, callback, body) = browser.post_form(&at(&action), &fields).await;
    assert_eq!(status, 303, "{body}");
    let callback = callback.unwrap();
    assert!(callback.contains("/.portero/callback?"), "{callback}");
    let (status, back, body) = browser.get(&at(&callback)).await;
    assert_eq!(status, 303, "{body}");
    back.unwrap()
}

/// The browser's cookie `name` (or its `__Host-` twin).
fn cookie_in(browser: &standard::Browser, name: &str) -> Option<(String, String)> {
    let host = format!("__Host-{name}");
    browser
        .cookies
        .iter()
        .find(|(n, _)| *n == name || *n == host)
        .cloned()
}

/// portero's own endpoints, asked directly: the decision on a route with
/// `login` admits a browser's session cookie (`200` with the identity
/// headers) and says no without one (`401`, never a redirect: the proxy
/// sends the browser on); `start_path` sends a browser to sign in for a
/// page of this site, and only of this site.
#[tokio::test]
async fn a_route_that_signs_people_in_is_decided_by_the_session_and_started_at_portero() {
    let up = Upstream::start("api").await;
    let public = "https://app.example";
    let settings = format!("{}\npublic_url = \"{public}\"", server("nginx"));
    let gw = Gateway::start_with_server_settings(&settings, &sign_in_config(public, up.addr)).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let decide = |cookie: Option<String>, uri: &'static str| {
        let mut req = http
            .get(gw.url("/.portero/auth"))
            .header("x-original-uri", uri)
            .header("x-original-method", "GET")
            .header("x-original-host", "app.example")
            .header("accept", "text/html")
            .header("sec-fetch-mode", "navigate");
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        async move { req.send().await.unwrap() }
    };

    // Without a session: no, even for a browser's navigation.
    let r = decide(None, "/app/page").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("location").is_none());
    assert!(r.headers().get("set-cookie").is_none());
    let r = decide(
        Some("__Host-portero-session=not-a-session".into()),
        "/app/page",
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The start: to the provider, with the pending sign-in's cookie.
    let mut browser = standard::Browser::default();
    let (status, location, body) = browser
        .get(&gw.url("/.portero/start?rd=%2Fapp%2Fpage%3Fx%3D1"))
        .await;
    assert_eq!(status, 302, "{body}");
    let location = location.unwrap();
    assert!(
        location.starts_with(&format!("{public}/oauth2/app/authorize?")),
        "{location}"
    );
    let q = standard::query_of(&location);
    assert_eq!(
        (q["response_type"].as_str(), q["client_id"].as_str()),
        ("code", "portal")
    );
    assert_eq!(q["redirect_uri"], format!("{public}/.portero/callback"));
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(cookie_in(&browser, "portero-login").is_some());
    // Signed in, back to the page first asked for.
    let back = sign_in_from(&mut browser, &location, |u| standard::on(&gw, u)).await;
    assert_eq!(back, "/app/page?x=1");
    let (name, id) = cookie_in(&browser, "portero-session").expect("a session cookie");
    let session = format!("{name}={id}");

    // With it: yes, with the identity headers to inject.
    let r = decide(Some(session.clone()), "/app/page").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-user-sub"], standard::USER);
    assert_eq!(r.headers()["x-user-roles"], "admin");
    // Not a bearer token: a session opens only the routes with `login`.
    let r = http
        .get(gw.url("/.portero/auth"))
        .header("x-original-uri", "/app/page")
        .header("authorization", format!("Bearer {id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Pages of another origin, or none: refused.
    for rd in [
        "%2F%2Fevil.example",
        "%2F%2Fevil.example%2Fapp",
        "https%3A%2F%2Fevil.example%2F",
        "https://evil.example/",
        "%2F%5Cevil.example",
        "app%2Fpage",
        "",
    ] {
        let r = http
            .get(gw.url(&format!("/.portero/start?rd={rd}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "rd={rd}");
        assert!(r.headers().get("location").is_none(), "rd={rd}");
    }
    let r = http.get(gw.url("/.portero/start")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // A page no route with `login` serves: nothing to sign in to.
    let r = http
        .get(gw.url("/.portero/start?rd=/open/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(up.requests(), 0);
}

/// A decision on a session with a credential beside it (which the proxy
/// would pass on unchecked) is refused before anything counts the
/// session's use: however many such requests come, the user's own rate
/// (by `sub`) is whole.
#[tokio::test]
async fn a_credential_beside_a_session_is_refused_before_the_users_rate_is_charged() {
    let up = Upstream::start("api").await;
    let public = "https://app.example";
    let settings = format!("{}\npublic_url = \"{public}\"", server("nginx"));
    let gw = Gateway::start_with_server_settings(&settings, &sign_in_config(public, up.addr)).await;
    let mut browser = standard::Browser::default();
    let (status, location, body) = browser
        .get(&gw.url("/.portero/start?rd=%2Fmetered%2Fpage"))
        .await;
    assert_eq!(status, 302, "{body}");
    let back = sign_in_from(&mut browser, &location.unwrap(), |u| standard::on(&gw, u)).await;
    assert_eq!(back, "/metered/page");
    let (name, id) = cookie_in(&browser, "portero-session").expect("a session cookie");
    let http = reqwest::Client::new();
    let decide = |uri: &str, authorization: Option<&str>| {
        let mut req = http
            .get(gw.url("/.portero/auth"))
            .header("x-original-uri", uri)
            .header("x-original-method", "GET")
            .header("x-original-host", "app.example")
            .header("cookie", format!("{name}={id}"));
        if let Some(value) = authorization {
            req = req.header("authorization", value);
        }
        async move { req.send().await.unwrap().status() }
    };
    for _ in 0..4 {
        assert_eq!(
            decide("/metered/page", Some("Bearer junk")).await,
            StatusCode::BAD_REQUEST
        );
    }
    // The user's two requests an hour are still there, and no more.
    assert_eq!(decide("/metered/page", None).await, StatusCode::OK);
    assert_eq!(decide("/metered/page", None).await, StatusCode::OK);
    assert_eq!(
        decide("/metered/page", None).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// The full round through nginx: a page behind `auth_request` without a
/// session is sent (nginx's `error_page 401`) to portero's start, signs in
/// at portero's own issuer (its pages, and the callback, reached through
/// nginx at the site's public URL), comes back to the page and is let
/// through with the subject portero vouched for; a logout ends it.
#[tokio::test]
async fn nginx_sends_a_browser_without_a_session_to_sign_in_and_lets_it_through_after() {
    let up = Upstream::start("api").await;
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let settings = format!("{}\npublic_url = \"{public}\"", server("nginx"));
    let gw =
        Gateway::start_with_server_settings(&settings, &sign_in_config(&public, up.addr)).await;
    let portero = format!("http://127.0.0.1:{}", gw.port);
    let ask = Asks::Nginx.location(gw.port);
    let locations = format!(
        r#"
    location / {{
      auth_request /_portero;
      auth_request_set $user_sub $upstream_http_x_user_sub;
      proxy_set_header X-User-Sub $user_sub;
      error_page 401 = /.portero/start?rd=$request_uri;
      proxy_pass http://127.0.0.1:{upstream};
    }}
    location = /_portero {{
      internal;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      {ask}
    }}
    location /.portero/ {{
      proxy_pass {portero};
      proxy_set_header Host $http_host;
    }}
    location /oauth2/ {{
      proxy_pass {portero};
      proxy_set_header Host $http_host;
    }}"#,
        upstream = up.addr.port(),
    );
    let Some(nginx) = Nginx::launch(port, &locations).await else {
        return;
    };

    // No session: to portero's start, which sends the browser to sign in.
    let mut browser = standard::Browser::default();
    let (status, location, body) = browser.get(&nginx.url("/app/page?x=1")).await;
    assert_eq!(status, 302, "{body}");
    let location = location.unwrap();
    assert!(
        location.starts_with(&format!("{public}/oauth2/app/authorize?")),
        "{location}"
    );
    assert!(cookie_in(&browser, "portero-login").is_some());
    assert_eq!(up.requests(), 0);
    // Signed in through nginx, back to the page.
    let back = sign_in_from(&mut browser, &location, str::to_string).await;
    assert_eq!(back, "/app/page?x=1");
    assert!(cookie_in(&browser, "portero-session").is_some());
    let (status, _, body) = browser.get(&nginx.url(&back)).await;
    assert_eq!(status, 200, "{body}");
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["path"], "/app/page");
    assert_eq!(seen["headers"]["x-user-sub"], standard::USER);
    assert_eq!(up.requests(), 1);
    // Another page of the route: through, without a new sign-in.
    let (status, _, _) = browser.get(&nginx.url("/app/other")).await;
    assert_eq!(status, 200);

    // The logout, posted from the site's page.
    let r = browser
        .http
        .post(nginx.url("/.portero/logout"))
        .header("origin", &public)
        .header("cookie", {
            let (n, v) = cookie_in(&browser, "portero-session").unwrap();
            format!("{n}={v}")
        })
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let ended = cookie_in(&browser, "portero-session").unwrap();
    // The old cookie opens nothing: the browser is sent to sign in again.
    let mut again = standard::Browser {
        cookies: vec![ended],
        ..standard::Browser::default()
    };
    let (status, location, _) = again.get(&nginx.url("/app/page")).await;
    assert_eq!(status, 302);
    assert!(location
        .unwrap()
        .starts_with(&format!("{public}/oauth2/app/authorize?")));
    assert_eq!(up.requests(), 2);
}
