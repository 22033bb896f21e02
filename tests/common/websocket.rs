//! WebSocket peers: a real echoing WebSocket server that records every
//! handshake it accepts, and a client that connects through the gateway.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a WebSocket upstream saw of one handshake.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// Path and query, as requested.
    pub uri: String,
    pub headers: Vec<(String, String)>,
}

impl Handshake {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A WebSocket server (tokio-tungstenite) that echoes every message.
pub struct WsUpstream {
    pub addr: SocketAddr,
    pub handshakes: Arc<Mutex<Vec<Handshake>>>,
    accept: AbortHandle,
}

impl WsUpstream {
    // The handshake callback's error type is tungstenite's own response.
    #[allow(clippy::result_large_err)]
    pub async fn start() -> WsUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handshakes: Arc<Mutex<Vec<Handshake>>> = Arc::default();
        let seen = handshakes.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let record = |req: &Request, resp: Response| {
                        seen.lock().unwrap().push(Handshake {
                            uri: req.uri().to_string(),
                            headers: req
                                .headers()
                                .iter()
                                .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
                                .collect(),
                        });
                        Ok(resp)
                    };
                    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, record).await else {
                        return;
                    };
                    let (mut tx, mut rx) = ws.split();
                    while let Some(Ok(m)) = rx.next().await {
                        if (m.is_text() || m.is_binary()) && tx.send(m).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        WsUpstream {
            addr,
            handshakes,
            accept: accept.abort_handle(),
        }
    }

    pub fn last_handshake(&self) -> Handshake {
        self.handshakes
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a handshake")
    }
}

impl Drop for WsUpstream {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Opens a WebSocket to `url` with extra request headers.
pub async fn ws_connect(
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
    let mut req = url.into_client_request().unwrap();
    for (name, value) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// The HTTP status a refused handshake got.
pub fn refused_status(err: tokio_tungstenite::tungstenite::Error) -> u16 {
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => resp.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

/// Sends a text message and reads the echo.
pub async fn echo_text(ws: &mut Client, text: &str) -> String {
    ws.send(Message::text(text)).await.unwrap();
    match next_data(ws).await {
        Message::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// The next message other than a ping or pong, within 5 s.
pub async fn next_data(ws: &mut Client) -> Message {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message within 5 s")
            .expect("the stream is open")
            .expect("a good frame");
        if !matches!(m, Message::Ping(_) | Message::Pong(_)) {
            return m;
        }
    }
}

/// Waits up to `limit` for the close frame portero sends, and returns its
/// code and reason (the connection ends after it).
pub async fn close_code(ws: &mut Client, limit: Duration) -> Option<(u16, String)> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next()).await.ok()?;
        match next {
            Some(Ok(Message::Close(Some(frame)))) => {
                return Some((u16::from(frame.code), frame.reason.to_string()))
            }
            Some(Ok(Message::Close(None))) => {
                return Some((u16::from(CloseCode::Status), String::new()))
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}
