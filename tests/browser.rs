//! A real browser against the gateway: headless Chromium, driven through
//! WebDriver (chromedriver), loads a page from one origin and runs seed
//! 000's documented `fetch` code against the gateway on another origin,
//! then calls a protected path with the token, reads a `401`'s
//! `WWW-Authenticate` header from JavaScript, and talks over a WebSocket
//! that carries the token in its query. The same page from an origin the
//! policy does not name fails in the browser.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs
//! them). Without them the test is skipped with a message, unless
//! `PORTERO_REQUIRE_BROWSER=1` (as in CI), where it fails.

use crate::common;

use std::convert::Infallible;

use bytes::Bytes;
use common::chromium::Driver;
use common::*;
use fantoccini::Client;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};

/// The page: seed 000's example as written (only its host is the
/// gateway's), then the calls a single-page app makes with the token.
fn page(gateway: &str) -> String {
    let ws = gateway.replace("http://", "ws://");
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>portero CORS walk-through</title></head>
<body><pre id="out">running</pre>
<script>
async function seedExample() {{
const response = await fetch('{gateway}/api/Session/GetToken', {{
  method: 'POST',
  headers: {{
    'Content-Type': 'application/json'
  }},
  body: JSON.stringify({{
    username: 'admin',
    password: 'demo2024'
  }})
}});

const data = await response.json();
const token = data.tokenValido;
return token;
}}

async function walkThrough() {{
  const token = await seedExample();
  const api = await fetch('{gateway}/orders/42', {{
    headers: {{ 'Authorization': 'Bearer ' + token }}
  }});
  const echoed = await api.json();
  const denied = await fetch('{gateway}/orders/42');
  const deniedBody = await denied.json();
  const message = await new Promise((resolve, reject) => {{
    const ws = new WebSocket('{ws}/ws/chat?access_token=' + encodeURIComponent(token));
    ws.onopen = () => ws.send('hello over the tunnel');
    ws.onmessage = (e) => {{ resolve(e.data); ws.close(); }};
    ws.onerror = () => reject(new Error('websocket failed'));
  }});
  return {{
    token_parts: token.split('.').length,
    api_status: api.status,
    echoed_path: echoed.path,
    echoed_sub: echoed.headers['x-user-sub'],
    denied_status: denied.status,
    challenge: denied.headers.get('WWW-Authenticate'),
    denied_error: deniedBody.error,
    websocket: message,
  }};
}}
</script></body></html>"#
    )
}

/// The session issuer of the demo, a CORS policy naming `allowed` only,
/// every path protected and forwarded to the built-in echo upstream.
fn config(allowed: &str) -> String {
    format!(
        r#"
[upstreams.echo]
builtin = "echo"

[cors.app]
allow_origins = ["{allowed}"]

[issuers.session]
dialect = "session"
cors = "app"

[[issuers.session.principals]]
username = "admin"
# demo2024
secret_hash = "$argon2id$v=19$m=19456,t=2,p=1$Qjuz5wrj6kpexsL7r2rksQ$HShpY2SPpaNWMdsids0056qfxdkcOQZuZZ7preV457w"
id = 1
nombre = "Administrador"

[[routes]]
name = "ws"
path = "/ws"
upstream = "echo"
token_from = ["bearer", "query:access_token"]
cors = "app"

[[routes]]
name = "api"
path = "/"
upstream = "echo"
cors = "app"

[routes.headers]
x-user-sub = "sub"
"#
    )
}

/// Serves `html` at `/` on `listener`: the page's origin.
fn serve_page(listener: tokio::net::TcpListener, html: String) {
    let html = Bytes::from(html);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let html = html.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req: Request<_>| {
                    let html = html.clone();
                    async move {
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "text/html; charset=utf-8")
                                .body(Full::new(html))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// Loads `page_url` and runs its walk-through; the promise's value, or
/// `{"error": ...}` when it rejects.
async fn run_page(browser: &Client, page_url: &str) -> Value {
    browser.goto(page_url).await.unwrap();
    browser
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             walkThrough().then(done, (e) => done({ error: String(e) }));",
            vec![],
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_page_on_an_allowed_origin_logs_in_and_calls_the_api_in_chromium() {
    let Some(driver) = Driver::start().await else {
        return;
    };
    // Two page origins, bound first so the gateway's policy can name one;
    // the pages then name the gateway.
    let allowed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (allowed_page, refused_page) =
        (allowed.local_addr().unwrap(), refused.local_addr().unwrap());
    let gw = Gateway::start(&config(&format!("http://{allowed_page}"))).await;
    let gateway = format!("http://127.0.0.1:{}", gw.port);
    serve_page(allowed, page(&gateway));
    serve_page(refused, page(&gateway));

    let browser = driver.browser(true).await;
    let result = run_page(&browser, &format!("http://{allowed_page}/")).await;
    assert_eq!(result["token_parts"], 3, "{result}");
    assert_eq!(result["api_status"], 200, "{result}");
    assert_eq!(result["echoed_path"], "/orders/42", "{result}");
    assert_eq!(result["echoed_sub"], "admin", "{result}");
    assert_eq!(result["denied_status"], 401, "{result}");
    // Both challenges, as the page's fetch joins them: Bearer, and DPoP
    // with the algorithms a proof may use (RFC 9449 §7.1).
    let dpop =
        r#"DPoP realm="portero", algs="ES256 ES384 EdDSA RS256 RS384 RS512 PS256 PS384 PS512""#;
    let challenge = format!(r#"Bearer realm="portero", {dpop}"#);
    assert_eq!(result["challenge"], challenge, "{result}");
    assert_eq!(result["denied_error"], "unauthorized", "{result}");
    assert_eq!(result["websocket"], "hello over the tunnel", "{result}");

    let result = run_page(&browser, &format!("http://{refused_page}/")).await;
    assert_eq!(
        result,
        json!({"error": "TypeError: Failed to fetch"}),
        "a page on a refused origin must fail in the browser"
    );
    browser.close().await.unwrap();
}
