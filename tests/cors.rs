//! CORS answered by the gateway: preflights decided without a token and
//! never forwarded; every response of a route with a policy, the gateway's
//! own errors included, carrying the policy's answer and nothing else.
//! A real gateway, a real upstream, a real HTTP client.

use crate::common;

use common::*;
use reqwest::{Method, StatusCode};

const APP: &str = "http://localhost:3000";

/// A protected route and a token endpoint with the `app` policy, a route
/// under `*.example.com` with credentials, and a route with no policy.
fn config(up: &Upstream, down: std::net::SocketAddr) -> String {
    format!(
        r#"
{issuers}
[issuers.login]
dialect = "session"
cors = "app"

[[issuers.login.principals]]
username = "admin"
# demo2024
secret_hash = "$argon2id$v=19$m=19456,t=2,p=1$Qjuz5wrj6kpexsL7r2rksQ$HShpY2SPpaNWMdsids0056qfxdkcOQZuZZ7preV457w"

[cors.app]
allow_origins = ["{APP}", "http://127.0.0.1:3000"]
allow_headers = ["authorization", "content-type", "x-request-id"]
expose_headers = ["x-request-id"]
max_age = "10m"

[cors.company]
allow_origins = ["https://*.example.com"]
allow_methods = ["GET", "PUT"]
allow_credentials = true

{up}
{down}
[[routes]]
name = "api"
path = "/api"
upstream = "up"
cors = "app"

[[routes]]
name = "company"
path = "/company"
upstream = "up"
cors = "company"

[[routes]]
name = "broken"
path = "/broken"
upstream = "down"
cors = "app"

[[routes]]
name = "plain"
path = "/plain"
upstream = "up"

[[routes]]
name = "admins"
path = "/admins"
upstream = "up"
cors = "app"
roles = ["AUDITOR"]
"#,
        issuers = issuers(),
        up = upstream("up", &[up.addr], ""),
        down = upstream("down", &[down], "health_check = \"none\""),
    )
}

async fn start() -> (Gateway, Upstream) {
    // The upstream answers with CORS headers of its own, which the gateway replaces.
    let upstream = Upstream::start_with_headers(
        "up",
        &[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-credentials", "false"),
            ("x-request-id", "req-1"),
        ],
    )
    .await;
    let down = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let gw = Gateway::start(&config(&upstream, down)).await;
    (gw, upstream)
}

fn preflight(
    gw: &Gateway,
    path: &str,
    origin: &str,
    method: &str,
    headers: &str,
) -> reqwest::RequestBuilder {
    let mut req = reqwest::Client::new()
        .request(Method::OPTIONS, gw.url(path))
        .header("origin", origin)
        .header("access-control-request-method", method);
    if !headers.is_empty() {
        req = req.header("access-control-request-headers", headers);
    }
    req
}

/// A login at the session endpoint, from a page on `origin` if given.
async fn login(gw: &Gateway, origin: Option<&str>, body: &'static str) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(gw.url("/api/Session/GetToken"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    req.send().await.unwrap()
}

const WRONG: &str = r#"{"username":"admin","password":"wrong"}"#;
const RIGHT: &str = r#"{"username":"admin","password":"demo2024"}"#;

fn header<'r>(r: &'r reqwest::Response, name: &str) -> Option<&'r str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

fn has_no_cors_headers(r: &reqwest::Response) -> bool {
    r.headers()
        .keys()
        .all(|k| !k.as_str().starts_with("access-control-"))
}

#[tokio::test]
async fn preflights_are_answered_by_the_gateway_without_a_token() {
    let (gw, upstream) = start().await;

    // Allowed origin, method and headers: 204 with the policy's answer.
    let r = preflight(
        &gw,
        "/api/orders",
        APP,
        "GET",
        "Authorization, X-Request-Id",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(APP));
    assert_eq!(
        header(&r, "access-control-allow-headers"),
        Some("authorization, x-request-id")
    );
    assert_eq!(
        header(&r, "access-control-allow-methods"),
        Some("GET, HEAD, POST, PUT, PATCH, DELETE")
    );
    assert_eq!(header(&r, "access-control-max-age"), Some("600"));
    assert_eq!(header(&r, "access-control-allow-credentials"), None);
    assert!(header(&r, "vary").unwrap().contains("Origin"));

    // The token endpoint's preflight, for the POST it only serves.
    let r = preflight(
        &gw,
        "/api/Session/GetToken",
        "http://127.0.0.1:3000",
        "POST",
        "content-type",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("http://127.0.0.1:3000")
    );

    // Refused: origin, header, method. No CORS header at all, so the browser blocks it.
    for (origin, method, headers, why) in [
        (
            "http://localhost:3001",
            "GET",
            "authorization",
            "origin not allowed",
        ),
        ("https://evil.example", "GET", "", "origin not allowed"),
        ("null", "GET", "", "origin not allowed"),
        (APP, "GET", "x-custom", "request header not allowed"),
    ] {
        let r = preflight(&gw, "/api/orders", origin, method, headers)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{origin} {headers}");
        assert!(has_no_cors_headers(&r), "{origin} {headers}");
        assert!(r.text().await.unwrap().contains(why));
    }
    let r = preflight(&gw, "/company/x", "https://app.example.com", "DELETE", "")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(has_no_cors_headers(&r));

    assert_eq!(upstream.requests(), 0, "a preflight is never forwarded");
}

#[tokio::test]
async fn suffix_patterns_and_credentials() {
    let (gw, _upstream) = start().await;
    for origin in ["https://app.example.com", "https://a.b.example.com"] {
        let r = preflight(&gw, "/company", origin, "PUT", "authorization")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{origin}");
        assert_eq!(header(&r, "access-control-allow-origin"), Some(origin));
        assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
        assert_eq!(header(&r, "access-control-allow-methods"), Some("GET, PUT"));
    }
    for origin in [
        "https://example.com",
        "http://app.example.com",
        "https://app.example.com.evil.net",
        "https://evilexample.com",
        "https://app.example.com:8443",
    ] {
        let r = preflight(&gw, "/company", origin, "PUT", "")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{origin}");
        assert!(has_no_cors_headers(&r), "{origin}");
    }
}

#[tokio::test]
async fn responses_carry_the_policys_answer_in_place_of_the_upstreams() {
    let (gw, _upstream) = start().await;
    let token = Signer::Hs.sign(&claims("alice"));
    let client = reqwest::Client::new();

    let r = client
        .get(gw.url("/api/orders"))
        .header("origin", APP)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let origins: Vec<_> = r
        .headers()
        .get_all("access-control-allow-origin")
        .iter()
        .collect();
    assert_eq!(
        origins,
        [APP],
        "the upstream's '*' is replaced, not added to"
    );
    assert_eq!(header(&r, "access-control-allow-credentials"), None);
    assert_eq!(
        header(&r, "access-control-expose-headers"),
        Some("x-request-id, www-authenticate")
    );
    assert_eq!(header(&r, "vary"), Some("Origin"));

    // A refused origin gets the response, with no CORS header: not even the upstream's.
    let r = client
        .get(gw.url("/api/orders"))
        .header("origin", "https://evil.example")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(has_no_cors_headers(&r));

    // Two `Origin`s are no origin, as at a preflight, whichever comes first.
    for (first, second) in [(APP, "https://evil.example"), ("https://evil.example", APP)] {
        let r = client
            .get(gw.url("/api/orders"))
            .header("origin", first)
            .header("origin", second)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(has_no_cors_headers(&r), "{:?}", r.headers());
        assert_eq!(header(&r, "vary"), Some("Origin"));
    }

    // With credentials, the origin itself and `true`.
    let r = client
        .get(gw.url("/company/1"))
        .header("origin", "https://app.example.com")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    // That policy names nothing to expose, and this answer does not challenge.
    assert_eq!(header(&r, "access-control-expose-headers"), None);
    let r = client
        .get(gw.url("/company/1"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&r, "access-control-expose-headers"),
        Some("www-authenticate")
    );

    // A route without a policy: the upstream's own headers pass, and a
    // preflight is an ordinary OPTIONS request that needs a token.
    let r = client
        .get(gw.url("/plain"))
        .header("origin", APP)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "access-control-allow-origin"), Some("*"));
    let r = preflight(&gw, "/plain", APP, "GET", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(has_no_cors_headers(&r));
}

#[tokio::test]
async fn the_gateways_own_errors_carry_cors_headers() {
    let (gw, _upstream) = start().await;
    let client = reqwest::Client::new();
    let allowed = |r: &reqwest::Response| header(r, "access-control-allow-origin") == Some(APP);

    // 401 without a token: readable, challenge exposed.
    let r = client
        .get(gw.url("/api/orders"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(allowed(&r));
    assert!(header(&r, "access-control-expose-headers")
        .unwrap()
        .contains("www-authenticate"));
    assert!(header(&r, "www-authenticate").is_some());

    // 401 for a forged token.
    let forged = format!("{}x", Signer::Hs.sign(&claims("alice")));
    let r = client
        .get(gw.url("/api/orders"))
        .header("origin", APP)
        .bearer_auth(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(allowed(&r));

    // 403 for a good token without the route's role.
    let r = client
        .get(gw.url("/admins"))
        .header("origin", APP)
        .bearer_auth(Signer::Hs.sign(&claims("alice")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(allowed(&r));

    // 502 from an upstream that is down.
    let token = Signer::Hs.sign(&claims("alice"));
    let r = client
        .get(gw.url("/broken"))
        .header("origin", APP)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(allowed(&r));

    // The token endpoint's errors in its own shape: 401 code 1, and 400 for non-JSON.
    let r = login(&gw, Some(APP), WRONG).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(allowed(&r));
    assert_eq!(parse(&r.text().await.unwrap())["error"], 1);
    let r = login(&gw, Some(APP), "{not json").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(allowed(&r));

    // Locked out after five failures: the dialect's 403 (code 2), readable too.
    for _ in 0..6 {
        login(&gw, None, WRONG).await;
    }
    let r = login(&gw, Some(APP), RIGHT).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(allowed(&r));
    assert_eq!(parse(&r.text().await.unwrap())["error"], 2);
}

#[tokio::test]
async fn a_successful_login_is_readable_by_the_page() {
    let (gw, _upstream) = start().await;
    let r = login(&gw, Some(APP), RIGHT).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(APP));
}

#[test]
fn unknown_cors_keys_are_errors() {
    let (ok, out) = check(&format!(
        "{}\n[cors.app]\nallow_origins = [\"http://localhost:3000\"]\nallow_origin = [\"*\"]\n",
        issuers()
    ));
    assert!(!ok);
    assert!(out.contains("allow_origin"), "{out}");
}

#[test]
fn cors_problems_are_each_named() {
    let (ok, out) = check(&format!(
        "{}\n[upstreams.up]\nservers = [\"127.0.0.1:9\"]\n\n\
         [cors.open]\nallow_origins = [\"*\"]\nallow_credentials = true\n\n\
         [cors.bad]\nallow_origins = [\"https://app.example.com/\", \"null\"]\nmax_age = \"soon\"\n\n\
         [[routes]]\npath = \"/\"\nupstream = \"up\"\ncors = \"missing\"\n",
        issuers()
    ));
    assert!(!ok);
    for needle in [
        "cors.open.allow_origins: \"*\" cannot go with allow_credentials",
        "cors.bad.allow_origins[0]",
        "cors.bad.allow_origins[1]",
        "cors.bad.max_age",
        "routes[0].cors: no [cors.missing] table",
    ] {
        assert!(out.contains(needle), "{needle} missing from:\n{out}");
    }
}

/// The demo config: pages on a local front-end dev server may call every
/// token endpoint and protected path; `/ws/` tunnels with a query token.
#[tokio::test]
async fn the_demo_lets_a_local_dev_server_call_everything() {
    let gw = demo(|body| body).await;
    let token_endpoints = [
        ("/api/Session/GetToken", None),
        ("/api/auth/token", None),
        ("/api/auth/refreshtoken", None),
        ("/auth", None),
        ("/api/auth/token", Some("maxpoint.localhost")),
        ("/api/v1/auth", None),
    ];
    for origin in ["http://localhost:3000", "http://127.0.0.1:3000"] {
        for (path, host) in token_endpoints {
            let mut req = preflight(&gw, path, origin, "POST", "content-type");
            if let Some(h) = host {
                req = req.header("host", h);
            }
            let r = req.send().await.unwrap();
            assert_eq!(
                r.status(),
                StatusCode::NO_CONTENT,
                "{origin} {path} {host:?}"
            );
            assert_eq!(header(&r, "access-control-allow-origin"), Some(origin));
        }
        let r = preflight(&gw, "/facturas", origin, "GET", "authorization")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{origin}");
    }
    let r = preflight(
        &gw,
        "/api/v1/auth",
        "http://localhost:8000",
        "POST",
        "content-type",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(has_no_cors_headers(&r));

    // Seed 004's client logs in, then talks to the echo over a WebSocket.
    let (status, body) = post(
        &gw,
        "/api/v1/auth",
        None,
        r#"{"client_id": "demo_client_123", "client_secret": "demo_secret_456_ABCDEFGH"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let token = parse(&body)["access_token"].as_str().unwrap().to_string();
    let url = format!("ws://127.0.0.1:{}/ws/chat?access_token={token}", gw.port);
    let mut ws = ws_connect(&url, &[("origin", "http://localhost:3000")])
        .await
        .unwrap();
    assert_eq!(echo_text(&mut ws, "hola").await, "hola");
}

/// An HTTP/2 upstream of the test's own that answers every request with
/// `ok` and trailers: gRPC's status, a field of its own, and what an
/// upstream must not say in them (a CORS answer, a cookie of portero's).
async fn trailing_h2_upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((_, mut respond))) = conn.accept().await {
                    let head = http::Response::builder()
                        .header("access-control-allow-origin", "https://head.evil")
                        .body(())
                        .unwrap();
                    let Ok(mut body) = respond.send_response(head, false) else {
                        continue;
                    };
                    let _ = body.send_data(bytes::Bytes::from_static(b"ok"), false);
                    let mut trailers = http::HeaderMap::new();
                    for (name, value) in [
                        ("access-control-allow-origin", "https://trailer.evil"),
                        ("access-control-allow-credentials", "true"),
                        ("access-control-x-own", "1"),
                        ("set-cookie", "portero-session=planted; Path=/"),
                        ("grpc-status", "0"),
                        ("x-kept", "1"),
                    ] {
                        trailers.append(name, value.parse().unwrap());
                    }
                    let _ = body.send_trailers(trailers);
                }
            });
        }
    });
    addr
}

/// The response head and trailers of a GET over HTTP/2 with `origin`.
async fn h2_get(port: u16, origin: &str) -> (http::HeaderMap, http::HeaderMap) {
    let mut client = h2_client(port).await;
    let request = http::Request::builder()
        .uri(format!("http://127.0.0.1:{port}/grpcish"))
        .header("origin", origin)
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let (head, mut body) = response.await.unwrap().into_parts();
    while let Some(chunk) = body.data().await {
        chunk.unwrap();
    }
    let trailers = body.trailers().await.unwrap().unwrap_or_default();
    (head.headers, trailers)
}

/// An HTTP/2 upstream's trailers are relayed (gRPC's status among them)
/// without a CORS answer or a `Set-Cookie`: those are the head's, where the
/// gateway answers them, for an allowed origin and a refused one alike.
#[tokio::test]
async fn an_http2_upstreams_trailers_carry_no_cors_answer_and_no_cookie() {
    let up = trailing_h2_upstream().await;
    let gw = Gateway::start(&format!(
        "[upstreams.h2]\nservers = [\"{up}\"]\nprotocol = \"h2c\"\nhealth_check = \"none\"\n\n\
         [cors.app]\nallow_origins = [\"{APP}\"]\n\n\
         [[routes]]\npath = \"/grpcish\"\nupstream = \"h2\"\npublic = true\ncors = \"app\"\n"
    ))
    .await;
    for (origin, allowed) in [(APP, true), ("https://evil.example", false)] {
        let (head, trailers) = h2_get(gw.port, origin).await;
        let answer: Vec<_> = head.get_all("access-control-allow-origin").iter().collect();
        match allowed {
            true => assert_eq!(answer, [APP], "{head:?}"),
            false => assert!(answer.is_empty(), "{head:?}"),
        }
        assert_eq!(trailers.get("grpc-status").unwrap(), "0", "{trailers:?}");
        assert_eq!(trailers.get("x-kept").unwrap(), "1", "{trailers:?}");
        assert!(
            trailers
                .keys()
                .all(|n| !n.as_str().starts_with("access-control-") && n != "set-cookie"),
            "{origin}: {trailers:?}"
        );
    }
}
