//! The built-in echo upstream: answers every request with the request it
//! received (method, path, query, headers) as JSON, and accepts WebSocket
//! upgrades, echoing every message back. For the demo, the tests and the
//! benchmarks; it listens on loopback only.

use std::collections::BTreeMap;
use std::convert::Infallible;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

/// Serves echo requests on `listener` until the runtime stops.
pub async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(|req| async { Ok::<_, Infallible>(echo(req).await) });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Header values repeat as a JSON array, in the order received; a single one is a string.
pub fn describe(req: &http::request::Parts) -> Value {
    let mut headers: BTreeMap<String, Value> = BTreeMap::new();
    for (name, value) in &req.headers {
        let value = Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned());
        match headers.remove(name.as_str()) {
            None => headers.insert(name.as_str().to_string(), value),
            Some(Value::Array(mut list)) => {
                list.push(value);
                headers.insert(name.as_str().to_string(), Value::Array(list))
            }
            Some(first) => headers.insert(name.as_str().to_string(), json!([first, value])),
        };
    }
    json!({
        "method": req.method.as_str(),
        "path": req.uri.path(),
        "query": req.uri.query().unwrap_or(""),
        "headers": headers,
    })
}

async fn echo(mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    if let Some(response) = websocket(&mut req) {
        return response;
    }
    let (parts, mut body) = req.into_parts();
    // Read to its end before answering, as an application does: hyper
    // closes a connection whose request body was left unread, just after
    // a response that said nothing of it, so a client that pooled the
    // connection meanwhile would find it closed under its next request.
    while let Some(Ok(_)) = body.frame().await {}
    let body = describe(&parts).to_string();
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

/// A WebSocket handshake (RFC 6455 §4.2) answered `101`, the connection
/// then echoing every data message; `None` for any other request.
fn websocket(req: &mut Request<Incoming>) -> Option<Response<Full<Bytes>>> {
    let asks = req
        .headers()
        .get(UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let key = req.headers().get(SEC_WEBSOCKET_KEY)?;
    if !asks {
        return None;
    }
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let (mut tx, mut rx) = ws.split();
        // The library answers pings and a close (with its code) itself, and
        // ends the stream once the close handshake is done.
        while let Some(Ok(message)) = rx.next().await {
            if (message.is_text() || message.is_binary()) && tx.send(message).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(CONNECTION, "upgrade")
        .header(UPGRADE, "websocket")
        .header(SEC_WEBSOCKET_ACCEPT, accept)
        .body(Full::new(Bytes::new()))
        .ok()
}
