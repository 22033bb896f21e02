//! WebSocket tunnels through the gateway with a real client
//! (tokio-tungstenite) and real upstreams (the built-in echo server and a
//! recording WebSocket server): the token checked at the handshake, from a
//! header or the query; messages of every kind relayed intact; and a tunnel
//! that ends, with a close frame, within a second of its token expiring or
//! being revoked (here, or on another instance through Redis).

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

/// Routes on the built-in echo upstream (`/ws`, `/open`) and on a recording
/// WebSocket server (`/rec`); no leeway, so a token ends at its `exp`.
fn config(recorder: &WsUpstream, extra: &str) -> String {
    format!(
        r#"
[auth]
leeway = "0s"

{issuers}
[upstreams.echo]
builtin = "echo"

{rec}
[cors.app]
allow_origins = ["http://localhost:3000"]

[[routes]]
name = "ws"
path = "/ws"
upstream = "echo"
token_from = ["bearer", "query:access_token"]
cors = "app"

[[routes]]
name = "rec"
path = "/rec"
upstream = "rec"
token_from = ["bearer", "query:access_token"]
headers = {{ x-user-sub = "sub" }}

[[routes]]
name = "open"
path = "/open"
upstream = "echo"
public = true

[[routes]]
name = "no-upgrades"
path = "/plain"
upstream = "echo"
upgrades = []
{extra}
"#,
        issuers = issuers(),
        rec = upstream("rec", &[recorder.addr], ""),
    )
}

async fn start() -> (Gateway, WsUpstream) {
    let recorder = WsUpstream::start().await;
    let gw = Gateway::start(&config(&recorder, "")).await;
    (gw, recorder)
}

fn ws_url(gw: &Gateway, path: &str) -> String {
    format!("ws://127.0.0.1:{}{path}", gw.port)
}

fn token_for(sub: &str, ttl: i64) -> String {
    let mut c = claims(sub);
    c["exp"] = json!(now() + ttl);
    Signer::Hs.sign(&c)
}

/// Revokes through `gw`'s admin API and expects `ws` to be closed for it
/// (1008) within a second.
async fn revoke_and_expect_close(gw: &Gateway, revocation: serde_json::Value, ws: &mut Client) {
    let revoked_at = Instant::now();
    assert!(gw.revoke(revocation).await.status().is_success());
    let close = close_code(ws, Duration::from_secs(3)).await;
    assert_eq!(close, Some((1008, "token revoked".to_string())));
    let took = revoked_at.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "closed {took:?} after the revocation"
    );
}

#[tokio::test]
async fn messages_of_every_kind_pass_intact_with_a_header_or_query_token() {
    let (gw, _rec) = start().await;
    let token = token_for("alice", 300);
    let bearer = format!("Bearer {token}");

    let mut ws = ws_connect(&ws_url(&gw, "/ws"), &[("authorization", &bearer)])
        .await
        .unwrap();
    assert_eq!(echo_text(&mut ws, "hello").await, "hello");

    // Binary, and large (4 MiB) both ways.
    let big: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(next_data(&mut ws).await, Message::binary(big));

    // A message in three fragments arrives as the one message it is.
    for (payload, opcode, fin) in [
        ("frag", OpCode::Data(Data::Text), false),
        ("men", OpCode::Data(Data::Continue), false),
        ("ted", OpCode::Data(Data::Continue), true),
    ] {
        let frame = Frame::message(payload.as_bytes().to_vec(), opcode, fin);
        ws.send(Message::Frame(frame)).await.unwrap();
    }
    assert_eq!(next_data(&mut ws).await, Message::text("fragmented"));

    // Ping from the client, pong from the upstream with the same payload.
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Message::Pong(p) = ws.next().await.unwrap().unwrap() {
                return p;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(&pong[..], b"are you there");

    // A close with a code goes through and comes back.
    ws.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: 4001u16.into(),
        reason: "done here".into(),
    }))
    .await
    .unwrap();
    assert_eq!(
        close_code(&mut ws, Duration::from_secs(5)).await,
        Some((4001, "done here".to_string()))
    );

    // The same with the token in the query, as a browser must send it.
    let url = format!("{}?access_token={token}", ws_url(&gw, "/ws"));
    let mut ws = ws_connect(&url, &[]).await.unwrap();
    assert_eq!(echo_text(&mut ws, "by query").await, "by query");

    // A public route tunnels without a token.
    let mut ws = ws_connect(&ws_url(&gw, "/open"), &[]).await.unwrap();
    assert_eq!(echo_text(&mut ws, "public").await, "public");
}

#[tokio::test]
async fn handshakes_without_a_good_token_are_refused() {
    let (gw, rec) = start().await;
    let status = |r: Result<Client, _>| refused_status(r.expect_err("refused"));
    assert_eq!(status(ws_connect(&ws_url(&gw, "/rec"), &[]).await), 401);
    let forged = format!("{}x", token_for("alice", 300));
    let url = format!("{}?access_token={forged}", ws_url(&gw, "/rec"));
    assert_eq!(status(ws_connect(&url, &[]).await), 401);
    let expired = token_for("alice", -60);
    let url = format!("{}?access_token={expired}", ws_url(&gw, "/rec"));
    assert_eq!(status(ws_connect(&url, &[]).await), 401);
    // The token from two sources at once.
    let good = token_for("alice", 300);
    let url = format!("{}?access_token={good}", ws_url(&gw, "/rec"));
    let bearer = format!("Bearer {good}");
    assert_eq!(
        status(ws_connect(&url, &[("authorization", &bearer)]).await),
        400
    );
    assert!(
        rec.handshakes.lock().unwrap().is_empty(),
        "none reached the upstream"
    );

    // A page on an origin the route's CORS policy refuses cannot open one.
    let bearer = format!("Bearer {good}");
    let r = ws_connect(
        &ws_url(&gw, "/ws"),
        &[
            ("authorization", &bearer),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    assert_eq!(status(r), 403);
    let mut ok = ws_connect(
        &ws_url(&gw, "/ws"),
        &[
            ("authorization", &bearer),
            ("origin", "http://localhost:3000"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(echo_text(&mut ok, "allowed").await, "allowed");
}

#[tokio::test]
async fn the_query_token_never_reaches_the_upstream_or_the_log() {
    let (gw, rec) = start().await;
    let token = token_for("carol", 300);
    let url = format!("{}/room?a=1&access_token={token}&b=2", ws_url(&gw, "/rec"));
    let mut ws = ws_connect(&url, &[("x-user-sub", "mallory")])
        .await
        .unwrap();
    assert_eq!(echo_text(&mut ws, "hi").await, "hi");
    let seen = rec.last_handshake();
    assert_eq!(seen.uri, "/rec/room?a=1&b=2");
    assert_eq!(
        seen.header("x-user-sub"),
        Some("carol"),
        "spoofed identity replaced"
    );
    assert!(seen.headers.iter().all(|(_, v)| !v.contains(&token)));
    drop(ws);
    let signature = token.rsplit('.').next().unwrap();
    let log = gw.log_with("route=rec").await;
    assert!(!log.contains(signature), "the token is in the log:\n{log}");
}

#[tokio::test]
async fn an_expiring_token_ends_its_tunnel_within_a_second() {
    let (gw, _rec) = start().await;
    let exp = now() + 2;
    let mut c = claims("dave");
    c["exp"] = json!(exp);
    let token = Signer::Hs.sign(&c);
    let bearer = format!("Bearer {token}");
    let mut ws = ws_connect(&ws_url(&gw, "/ws"), &[("authorization", &bearer)])
        .await
        .unwrap();
    assert_eq!(echo_text(&mut ws, "still valid").await, "still valid");
    let close = close_code(&mut ws, Duration::from_secs(5)).await;
    let ended = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert_eq!(close, Some((1008, "token expired".to_string())));
    let late = ended - exp as f64;
    assert!((0.0..1.0).contains(&late), "ended {late:.3} s after exp");
    gw.wait_metric(
        "portero_tunnels_closed_total",
        &[("route", "ws"), ("reason", "token_expired")],
        1.0,
    )
    .await;
}

#[tokio::test]
async fn a_revoked_token_ends_its_tunnel_within_a_second() {
    let (gw, _rec) = start().await;
    let mut c = claims("erin");
    c["jti"] = json!("ws-revoked-1");
    let token = Signer::Hs.sign(&c);
    let url = format!("{}?access_token={token}", ws_url(&gw, "/ws"));
    let mut ws = ws_connect(&url, &[]).await.unwrap();
    let mut bystander = ws_connect(
        &format!(
            "{}?access_token={}",
            ws_url(&gw, "/ws"),
            token_for("frank", 300)
        ),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(echo_text(&mut ws, "before").await, "before");
    revoke_and_expect_close(&gw, json!({"jti": "ws-revoked-1"}), &mut ws).await;
    assert_eq!(echo_text(&mut bystander, "unaffected").await, "unaffected");

    // Revoking the subject ends a tunnel too.
    let subject = json!({"sub": "frank", "issuer": "test"});
    revoke_and_expect_close(&gw, subject, &mut bystander).await;
}

/// A tunnel opened with an API key ends when the key is rotated out or revoked.
#[tokio::test]
async fn a_revoked_api_key_ends_its_tunnel_within_a_second() {
    let recorder = WsUpstream::start().await;
    let extra = r#"
[issuers.partners]
kind = "api_key"

[[routes]]
name = "ws-keys"
path = "/ws-keys"
upstream = "echo"
issuers = ["partners"]
token_from = "header:X-API-Key"
"#;
    let gw = Gateway::start(&config(&recorder, extra)).await;
    let made: serde_json::Value = reqwest::Client::new()
        .post(gw.admin_url("/admin/api-keys"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"issuer": "partners", "consumer": "acme"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, key) = (made["id"].as_str().unwrap(), made["key"].as_str().unwrap());
    let mut ws = ws_connect(&ws_url(&gw, "/ws-keys"), &[("x-api-key", key)])
        .await
        .unwrap();
    assert_eq!(echo_text(&mut ws, "before").await, "before");

    // Rotated out at once: the tunnel opened with the old key ends too.
    let rotated: serde_json::Value = reqwest::Client::new()
        .post(gw.admin_url(&format!("/admin/api-keys/{id}/rotate")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"grace": "0s"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let close = close_code(&mut ws, Duration::from_secs(3)).await;
    assert_eq!(close, Some((1008, "token revoked".to_string())));
    let key = rotated["key"].as_str().unwrap();
    let mut ws = ws_connect(&ws_url(&gw, "/ws-keys"), &[("x-api-key", key)])
        .await
        .unwrap();
    assert_eq!(echo_text(&mut ws, "before").await, "before");
    let revoked_at = Instant::now();
    let r = reqwest::Client::new()
        .delete(gw.admin_url(&format!("/admin/api-keys/{id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let close = close_code(&mut ws, Duration::from_secs(3)).await;
    assert_eq!(close, Some((1008, "token revoked".to_string())));
    let took = revoked_at.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "closed {took:?} after the revocation"
    );
}

#[tokio::test]
async fn a_revocation_pushed_from_another_instance_ends_the_tunnel() {
    let Some(url) = redis::shared() else { return };
    let recorder = WsUpstream::start().await;
    let prefix = format!(
        "portero-ws-{}-{:x}:",
        std::process::id(),
        rand::random::<u32>()
    );
    let store =
        format!("[store]\nbackend = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\n");
    let body = format!("{store}\n{}", config(&recorder, ""));
    let (a, b) = futures_util::join!(Gateway::start(&body), Gateway::start(&body));
    let mut c = claims("grace");
    c["jti"] = json!("ws-pushed-1");
    let token = Signer::Hs.sign(&c);
    let url = format!("{}?access_token={token}", ws_url(&a, "/ws"));
    let mut ws = ws_connect(&url, &[]).await.unwrap();
    assert_eq!(echo_text(&mut ws, "on a").await, "on a");
    // Revoked on the other instance: pushed to this one through Redis.
    revoke_and_expect_close(&b, json!({"jti": "ws-pushed-1"}), &mut ws).await;
}

#[tokio::test]
async fn many_concurrent_tunnels_are_counted_while_open() {
    let (gw, _rec) = start().await;
    const TUNNELS: usize = 200;
    let token = token_for("henry", 300);
    let url = format!("{}?access_token={token}", ws_url(&gw, "/ws"));
    let mut tunnels = Vec::new();
    for _ in 0..TUNNELS {
        tunnels.push(ws_connect(&url, &[]).await.unwrap());
    }
    let rounds = tunnels
        .into_iter()
        .enumerate()
        .map(|(i, mut ws)| async move {
            for n in 0..5 {
                let text = format!("tunnel {i} message {n}");
                assert_eq!(echo_text(&mut ws, &text).await, text);
            }
            ws
        });
    let tunnels = futures_util::future::join_all(rounds).await;
    assert_eq!(
        gw.metric("portero_tunnels_open", &[("route", "ws")]).await,
        TUNNELS as f64
    );
    for mut ws in tunnels {
        ws.close(None).await.unwrap();
    }
    assert_eq!(
        gw.wait_metric("portero_tunnels_open", &[("route", "ws")], 0.0)
            .await,
        0.0
    );
    assert_eq!(
        gw.metric(
            "portero_tunnels_closed_total",
            &[("route", "ws"), ("reason", "closed")]
        )
        .await,
        TUNNELS as f64
    );
}

#[tokio::test]
async fn an_idle_tunnel_is_closed_and_other_upgrades_are_not_tunneled() {
    let recorder = WsUpstream::start().await;
    let gw = Gateway::start_with_server_settings(
        "tunnel_idle_timeout = \"500ms\"",
        &config(&recorder, ""),
    )
    .await;
    let token = token_for("ivan", 300);
    let url = format!("{}?access_token={token}", ws_url(&gw, "/ws"));
    let mut ws = ws_connect(&url, &[]).await.unwrap();
    assert_eq!(echo_text(&mut ws, "then silence").await, "then silence");
    let close = close_code(&mut ws, Duration::from_secs(3)).await;
    assert_eq!(close, Some((1001, "idle timeout".to_string())));

    // A route that tunnels nothing, and an h2c upgrade anywhere: the
    // request goes upstream as a plain request, without its Upgrade.
    let bearer = format!("Bearer {token}");
    let r = ws_connect(&ws_url(&gw, "/plain"), &[("authorization", &bearer)]).await;
    assert_eq!(refused_status(r.err().unwrap()), 200);
    let echoed: serde_json::Value = reqwest::Client::new()
        .get(gw.url("/open"))
        .header("connection", "Upgrade, HTTP2-Settings")
        .header("upgrade", "h2c")
        .header("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let headers = echoed["headers"].as_object().unwrap();
    assert!(!headers.contains_key("upgrade"), "{headers:?}");
    assert!(!headers.contains_key("http2-settings"), "{headers:?}");
}

#[tokio::test]
async fn a_draining_gateway_closes_its_tunnels_as_going_away() {
    let (mut gw, _rec) = start().await;
    let url = format!(
        "{}?access_token={}",
        ws_url(&gw, "/ws"),
        token_for("judy", 300)
    );
    let mut ws = ws_connect(&url, &[]).await.unwrap();
    assert_eq!(echo_text(&mut ws, "before").await, "before");
    gw.signal("TERM");
    let close = close_code(&mut ws, Duration::from_secs(3)).await;
    assert_eq!(close, Some((1001, "gateway shutting down".to_string())));
    assert!(
        gw.wait_exit(Duration::from_secs(5)).await.is_some(),
        "it exits"
    );
}

#[test]
fn h2c_cannot_be_tunneled() {
    let (ok, out) = check(&format!(
        "{}\n[upstreams.up]\nservers = [\"127.0.0.1:9\"]\n\n[[routes]]\npath = \"/\"\nupstream = \"up\"\n\
         upgrades = [\"websocket\", \"h2c\"]\ntoken_from = [\"bearer\", \"authorization\"]\n",
        issuers()
    ));
    assert!(!ok);
    assert!(
        out.contains("routes[0].upgrades: \"h2c\" cannot be tunneled"),
        "{out}"
    );
    assert!(out.contains("both read the Authorization header"), "{out}");
    // Only WebSocket: portero reads its frames to end a tunnel with its token.
    let (ok, out) = check(&format!(
        "{}\n[upstreams.up]\nservers = [\"127.0.0.1:9\"]\n\n[[routes]]\npath = \"/\"\nupstream = \"up\"\n\
         upgrades = [\"WebSocket\", \"irc\"]\n",
        issuers()
    ));
    assert!(!ok);
    assert!(
        out.contains(
            "routes[0].upgrades: \"irc\" cannot be tunneled: portero tunnels \"websocket\" only"
        ),
        "{out}"
    );
}
