//! The upstream of `benches/protocols.sh`, on one thread like the peers'
//! nginx origin: on `--http`, HTTP/1.1 and HTTP/2 with prior knowledge,
//! "ok" to every request, and a gRPC call answered with its own message
//! and `grpc-status: 0` in the trailers (a unary echo); on `--websocket`,
//! the built-in echo upstream (every WebSocket message echoed back).
//!
//!   cargo run --release --example bench_origin -- --http 127.0.0.1:18091 --websocket 127.0.0.1:18092

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, hyper::Error>;

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut http, mut websocket) = (None, None);
    while let Some(flag) = args.next() {
        let addr = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--http" => http = Some(addr),
            "--websocket" => websocket = Some(addr),
            _ => usage(),
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        if let Some(addr) = websocket {
            let listener = TcpListener::bind(&addr).await.expect("--websocket binds");
            tokio::spawn(portero::echo::serve(listener));
        }
        let Some(addr) = http else {
            return std::future::pending().await;
        };
        let listener = TcpListener::bind(&addr).await.expect("--http binds");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req| async {
                    Ok::<_, Infallible>(answer(req).await)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn usage() -> ! {
    eprintln!("usage: bench_origin [--http ADDR] [--websocket ADDR]");
    std::process::exit(2)
}

async fn answer(req: Request<Incoming>) -> Response<Body> {
    let grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if !grpc {
        return Response::new(
            Full::new(Bytes::from_static(b"ok"))
                .map_err(|e| match e {})
                .boxed(),
        );
    }
    // The request is one length-prefixed message: sent back, it is the reply.
    let message = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let frames = [Ok(Frame::data(message)), Ok(Frame::trailers(trailers))];
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .body(StreamBody::new(futures_util::stream::iter(frames)).boxed())
        .expect("static response parts are valid")
}
