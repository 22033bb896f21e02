//! portero as the decision point of a proxy that routes traffic itself: a
//! real nginx with `auth_request` in front of an upstream, asking portero's
//! forward-auth endpoint, and the Traefik and Envoy ways of naming the
//! original request. nginx comes from the system (`.ci/run` installs it);
//! without one the nginx test is skipped with a message, and fails
//! instead under `PORTERO_REQUIRE_NGINX=1`.

mod common;

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

const SERVER: &str = "forward_auth_path = \"/.portero/auth\"";

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

    async fn start(portero_port: u16, upstream_port: u16) -> Option<Nginx> {
        let Some(bin) = Nginx::find() else {
            let why = "no nginx binary (apt-get install nginx)";
            assert!(
                std::env::var("PORTERO_REQUIRE_NGINX").as_deref() != Ok("1"),
                "{why}"
            );
            eprintln!("skipped: {why}");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
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
    location / {{
      auth_request /_portero;
      auth_request_set $user_sub $upstream_http_x_user_sub;
      proxy_set_header X-User-Sub $user_sub;
      proxy_pass http://127.0.0.1:{upstream_port};
    }}
    location = /_portero {{
      internal;
      proxy_pass http://127.0.0.1:{portero_port}/.portero/auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-Host $host;
    }}
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
    let mut req = reqwest::Client::new().get(nginx.url(path));
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
    let gw = Gateway::start_with_server_settings(SERVER, &portero_config(up.addr)).await;
    let Some(nginx) = Nginx::start(gw.port, up.addr.port()).await else {
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
    let gw = Gateway::start_with_server_settings(SERVER, &portero_config(up.addr)).await;
    let client = reqwest::Client::new();
    let good = token("carol", "orders:read");

    // Traefik forwardAuth: X-Forwarded-Method / -Host / -Uri.
    let r = client
        .get(gw.url("/.portero/auth"))
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
        .get(gw.url("/.portero/auth"))
        .header("x-forwarded-uri", "/orders/9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));

    // Envoy ext_authz (HTTP): the original path after the endpoint's, the
    // original method kept.
    let r = client
        .post(gw.url("/.portero/auth/orders/9"))
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
            .get(gw.url("/.portero/auth/limited"))
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

    // A request naming no original is a clear 400; nothing went upstream.
    let r = client.get(gw.url("/.portero/auth")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(up.requests(), 0);
}
