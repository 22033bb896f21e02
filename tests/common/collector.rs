//! An OTLP/HTTP trace receiver (hyper): it decodes every
//! `POST /v1/traces` as OpenTelemetry's protobuf `ExportTraceServiceRequest`,
//! as a collector does, and keeps the spans with their service name.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::task::AbortHandle;

use super::poll;

/// A span as received, with the `service.name` of its resource.
#[derive(Debug, Clone)]
pub struct Received {
    pub service: String,
    pub span: Span,
}

impl Received {
    /// A string or integer attribute of the span, as text.
    pub fn attribute(&self, key: &str) -> Option<String> {
        let kv = self.span.attributes.iter().find(|kv| kv.key == key)?;
        match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            AnyValue::IntValue(i) => Some(i.to_string()),
            other => Some(format!("{other:?}")),
        }
    }
}

pub struct Collector {
    pub addr: SocketAddr,
    spans: Arc<Mutex<Vec<Received>>>,
    /// The accepting task and each connection's.
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Collector {
    pub async fn start() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
        let kept = spans.clone();
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let conns = tasks.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let kept = kept.clone();
                let conn = tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let kept = kept.clone();
                        async move { Ok::<_, Infallible>(receive(req, &kept).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                conns.lock().unwrap().push(conn.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        Collector { addr, spans, tasks }
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// Closes every connection and stops accepting: the port then refuses them.
    pub fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    pub fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }

    /// The spans, once at least `n` have arrived (or after 10 s).
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        poll(
            Duration::from_secs(10),
            || async { self.spans() },
            |s| s.len() >= n,
        )
        .await
    }
}

async fn receive(req: Request<Incoming>, kept: &Mutex<Vec<Received>>) -> Response<Full<Bytes>> {
    let answer = |status: StatusCode| {
        Response::builder()
            .status(status)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let protobuf = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/x-protobuf");
    if req.uri().path() != "/v1/traces" || !protobuf {
        return answer(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return answer(StatusCode::BAD_REQUEST);
    };
    let mut kept = kept.lock().unwrap();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                kept.push(Received {
                    service: service.clone(),
                    span,
                });
            }
        }
    }
    answer(StatusCode::OK)
}
