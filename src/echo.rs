//! The built-in echo upstream: answers every request with the request it
//! received (method, path, query, headers) as JSON. For the demo, the tests
//! and the benchmarks; it listens on loopback only.

use std::collections::BTreeMap;
use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// Serves echo requests on `listener` until the runtime stops.
pub async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(|req| async { Ok::<_, Infallible>(echo(req)) });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
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

fn echo(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, _body) = req.into_parts();
    let body = describe(&parts).to_string();
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}
