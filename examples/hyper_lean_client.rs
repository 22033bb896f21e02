//! hyper's HTTP/1.1 server in front of a minimal upstream client (one
//! shared list of idle connections, heads written and parsed by hand with
//! `httparse`), no auth: beside `hyper_passthrough` (hyper on both sides)
//! it shows which half of hyper's cost is the client's. A measurement tool:
//! `Content-Length` responses only, no timeouts, no retries.
//!
//! ```sh
//! cargo build --release --example hyper_lean_client --example hyper_passthrough
//! bash benches/ab.sh target/release/examples/hyper_lean_client target/release/examples/hyper_passthrough
//! ```

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LISTEN: &str = "127.0.0.1:18085";
const ORIGIN: &str = "127.0.0.1:18081";

type Pool = Arc<Mutex<Vec<TcpStream>>>;

async fn forward(pool: Pool, req: Request<Incoming>) -> std::io::Result<Response<Full<Bytes>>> {
    let pooled = pool.lock().expect("not poisoned").pop();
    let mut conn = match pooled {
        Some(c) => c,
        None => {
            let c = TcpStream::connect(ORIGIN).await?;
            c.set_nodelay(true)?;
            c
        }
    };
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        req.uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .as_bytes(),
    );
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    conn.write_all(&out).await?;

    let mut buf = BytesMut::with_capacity(8 * 1024);
    loop {
        if conn.read_buf(&mut buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut slots);
        let len = match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => continue,
            Err(e) => return Err(std::io::Error::other(e)),
        };
        let mut resp = Response::builder().status(parsed.code.unwrap_or(502));
        let mut length = 0;
        for h in parsed.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
            } else if !h.name.eq_ignore_ascii_case("connection") {
                resp = resp.header(h.name, h.value);
            }
        }
        buf.advance(len);
        while buf.len() < length {
            if conn.read_buf(&mut buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        let body = buf.split_to(length).freeze();
        pool.lock().expect("not poisoned").push(conn);
        return resp.body(Full::new(body)).map_err(std::io::Error::other);
    }
}

fn main() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let pool: Pool = Arc::default();
        let listener = TcpListener::bind(LISTEN).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let pool = pool.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let pool = pool.clone();
                    async move {
                        let resp = forward(pool, req).await.unwrap_or_else(|_| {
                            let mut r = Response::new(Full::default());
                            *r.status_mut() = StatusCode::BAD_GATEWAY;
                            r
                        });
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .writev(false)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
