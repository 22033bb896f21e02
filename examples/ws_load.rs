//! WebSocket echo load for `benches/protocols.sh`: `CONNECTIONS` clients,
//! each sending a `SIZE`-byte binary message and waiting for its echo, over
//! and over for `SECONDS`; prints `WSRESULT <messages/s> <p50 µs> <p99 µs>
//! <messages> <errors>`. One thread, like the other load generators here.
//!
//!   ws_load ws://127.0.0.1:18095/ws 50 10 128 [bearer token]

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: ws_load URL CONNECTIONS SECONDS SIZE [TOKEN]");
        std::process::exit(2);
    }
    let url = args[0].clone();
    let connections: usize = args[1].parse().expect("CONNECTIONS is a number");
    let seconds: u64 = args[2].parse().expect("SECONDS is a number");
    let size: usize = args[3].parse().expect("SIZE is a number");
    let token = args.get(4).cloned();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (latencies, errors) = runtime.block_on(async move {
        let end = Instant::now() + Duration::from_secs(seconds);
        let clients = (0..connections).map(|_| client(url.clone(), token.clone(), size, end));
        let results = futures_util::future::join_all(clients).await;
        let mut latencies = Vec::new();
        let mut errors = 0;
        for result in results {
            match result {
                Ok(l) => latencies.extend(l),
                Err(e) => {
                    errors += 1;
                    eprintln!("ws_load: {e}");
                }
            }
        }
        (latencies, errors)
    });
    let mut micros: Vec<u128> = latencies.iter().map(Duration::as_micros).collect();
    micros.sort_unstable();
    let at = |q: f64| {
        micros
            .get(((micros.len() as f64 * q) as usize).min(micros.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "WSRESULT {:.0} {} {} {} {}",
        micros.len() as f64 / seconds as f64,
        at(0.5),
        at(0.99),
        micros.len(),
        errors
    );
}

/// One connection's round trips until `end`.
async fn client(
    url: String,
    token: Option<String>,
    size: usize,
    end: Instant,
) -> Result<Vec<Duration>, String> {
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| e.to_string())?;
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().map_err(|_| "bad token")?;
        request.headers_mut().insert("authorization", value);
    }
    let host = request.uri().authority().ok_or("no host")?.to_string();
    let stream = TcpStream::connect(&host).await.map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .map_err(|e| e.to_string())?;
    let payload = vec![b'x'; size];
    let mut latencies = Vec::new();
    while Instant::now() < end {
        let sent = Instant::now();
        ws.send(Message::binary(payload.clone()))
            .await
            .map_err(|e| e.to_string())?;
        match ws.next().await {
            Some(Ok(Message::Binary(echo))) if echo.len() == size => latencies.push(sent.elapsed()),
            other => return Err(format!("no echo: {other:?}")),
        }
    }
    let _ = ws.close(None).await;
    Ok(latencies)
}
