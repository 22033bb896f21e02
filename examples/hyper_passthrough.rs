//! A bare hyper pass-through (no routes, no auth, no metrics, no log) on
//! hyper's HTTP/1.1 server and pooled client, on one current-thread runtime:
//! the floor under portero's data plane, measured in the same run as the
//! peers (BENCHMARKS.md):
//!
//! ```sh
//! cargo build --release --example hyper_passthrough
//! GATEWAY_CMD='exec target/release/examples/hyper_passthrough' bash ../shared/bench/peers.sh
//! ```

use std::convert::Infallible;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

const LISTEN: &str = "127.0.0.1:18085";
const ORIGIN: &str = "127.0.0.1:18081";

type Upstream = Client<HttpConnector, Incoming>;

async fn forward(
    client: Upstream,
    mut req: Request<Incoming>,
) -> Result<Response<Incoming>, Infallible> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let uri: Uri = format!("http://{ORIGIN}{path}").parse().expect("valid uri");
    *req.uri_mut() = uri;
    match client.request(req).await {
        Ok(resp) => Ok(resp),
        Err(e) => {
            eprintln!("upstream: {e}");
            std::process::exit(1);
        }
    }
}

fn main() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Upstream = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1024)
            .build(connector);
        let listener = TcpListener::bind(LISTEN).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let client = client.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| forward(client.clone(), req));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
