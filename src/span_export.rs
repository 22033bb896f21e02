//! Request spans sent to an OpenTelemetry collector over OTLP/HTTP
//! (protobuf), when `[tracing] otlp_endpoint` is set. A finished request's
//! span goes into a bounded queue; a background task posts the queue in
//! batches. When the queue is full the span is dropped and counted: a slow
//! or absent collector never slows a request.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prometheus::IntCounterVec;
use prost::Message;
use tokio::sync::{mpsc, oneshot};

use crate::config::SpanExport;
use crate::tls_roots::ClientError;
use crate::trace_context::SpanIds;

/// Spans waiting to be sent (OpenTelemetry's default queue).
const QUEUE: usize = 2048;
/// Spans per request to the collector, at most.
const BATCH: usize = 512;
/// How long a span may wait for its batch to fill.
const BATCH_DELAY: Duration = Duration::from_secs(1);
/// A collector that has not answered by then has failed the batch.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// One answered request, as its span.
pub struct RequestSpan {
    pub ids: SpanIds,
    pub method: Method,
    pub path: String,
    pub route: String,
    pub status: StatusCode,
    pub start: SystemTime,
    pub end: SystemTime,
    pub client: IpAddr,
}

/// The sending half: cheap to call on every request.
#[derive(Clone)]
pub struct Spans {
    queue: mpsc::Sender<RequestSpan>,
    /// Asks the task to send what is queued now, and answers when it has.
    flushes: mpsc::Sender<oneshot::Sender<()>>,
    /// `portero_trace_spans_total{result}`.
    counted: IntCounterVec,
}

impl Spans {
    /// Starts the exporting task on the current runtime.
    pub fn start(settings: &SpanExport, counted: IntCounterVec) -> Result<Spans, ClientError> {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let (flushes, flush_asked) = mpsc::channel(1);
        let exporter = Exporter {
            client: client(settings.endpoint.starts_with("https:"))?,
            endpoint: settings.endpoint.clone(),
            resource: resource(&settings.service_name),
            counted: counted.clone(),
            failing: false,
        };
        tokio::spawn(exporter.run(waiting, flush_asked));
        Ok(Spans {
            queue,
            flushes,
            counted,
        })
    }

    /// Sends the spans queued now, waiting at most `within`: at exit.
    pub async fn flush(&self, within: Duration) {
        let (done, sent) = oneshot::channel();
        let _ = tokio::time::timeout(within, async {
            if self.flushes.send(done).await.is_ok() {
                let _ = sent.await;
            }
        })
        .await;
    }

    pub fn record(&self, span: RequestSpan) {
        if self.queue.try_send(span).is_err() {
            self.counted.with_label_values(&["dropped"]).inc();
        }
    }
}

/// The collector's client: no redirects, and for `https` the system's
/// roots (a plain `http` collector needs none on the machine).
fn client(https: bool) -> Result<reqwest::Client, ClientError> {
    let builder = match https {
        true => crate::tls_roots::http_client(None, &[], EXPORT_TIMEOUT)?,
        false => reqwest::Client::builder()
            .timeout(EXPORT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none()),
    };
    Ok(builder
        .user_agent(concat!("portero/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// The background half: batches spans and posts them.
struct Exporter {
    client: reqwest::Client,
    endpoint: String,
    resource: Resource,
    counted: IntCounterVec,
    /// The last post failed: the next failure is not logged again.
    failing: bool,
}

impl Exporter {
    /// Posts a batch once it is full or its first span has waited
    /// `BATCH_DELAY`, and everything queued when a flush is asked; until
    /// every sender is gone.
    async fn run(
        mut self,
        mut waiting: mpsc::Receiver<RequestSpan>,
        mut flush_asked: mpsc::Receiver<oneshot::Sender<()>>,
    ) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let flush = tokio::select! {
                received = waiting.recv_many(&mut batch, BATCH) => {
                    if received == 0 {
                        return;
                    }
                    fill(&mut batch, &mut waiting, &mut flush_asked).await
                }
                Some(done) = flush_asked.recv() => Some(done),
            };
            let Some(done) = flush else {
                self.post(&mut batch).await;
                continue;
            };
            while let Ok(span) = waiting.try_recv() {
                batch.push(span);
                if batch.len() == BATCH {
                    self.post(&mut batch).await;
                }
            }
            if !batch.is_empty() {
                self.post(&mut batch).await;
            }
            let _ = done.send(());
        }
    }

    /// Posts `batch` and empties it. A failed batch is counted and dropped,
    /// not retried: spans are worth less than the gateway's memory.
    async fn post(&mut self, batch: &mut Vec<RequestSpan>) {
        let count = batch.len() as u64;
        let body = request(&self.resource, batch.drain(..)).encode_to_vec();
        let sent = self
            .client
            .post(&self.endpoint)
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| match r.status() {
                s if s.is_success() => Ok(()),
                s => Err(format!("the collector answered {s}")),
            });
        match sent {
            Ok(()) => {
                self.counted.with_label_values(&["exported"]).inc_by(count);
                self.failing = false;
            }
            Err(why) => {
                self.counted.with_label_values(&["failed"]).inc_by(count);
                // Once per outage, not once per batch.
                if !self.failing {
                    tracing::warn!(endpoint = %self.endpoint, error = %why, "spans not exported");
                }
                self.failing = true;
            }
        }
    }
}

/// Adds spans to `batch` until it is full or `BATCH_DELAY` has passed; a
/// flush asked meanwhile ends the wait and is returned.
async fn fill(
    batch: &mut Vec<RequestSpan>,
    waiting: &mut mpsc::Receiver<RequestSpan>,
    flush_asked: &mut mpsc::Receiver<oneshot::Sender<()>>,
) -> Option<oneshot::Sender<()>> {
    let deadline = tokio::time::Instant::now() + BATCH_DELAY;
    while batch.len() < BATCH {
        tokio::select! {
            span = tokio::time::timeout_at(deadline, waiting.recv()) => match span {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            },
            Some(done) = flush_asked.recv() => return Some(done),
        }
    }
    None
}

fn resource(service_name: &str) -> Resource {
    Resource {
        attributes: vec![attribute("service.name", text(service_name))],
        ..Resource::default()
    }
}

fn request(
    resource: &Resource,
    spans: impl Iterator<Item = RequestSpan>,
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "portero".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..InstrumentationScope::default()
                }),
                spans: spans.map(to_span).collect(),
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

/// A server span with OpenTelemetry's HTTP attribute names; a `5xx` is an
/// error, as the HTTP conventions say for servers.
fn to_span(r: RequestSpan) -> Span {
    let error = r.status.is_server_error();
    Span {
        trace_id: r.ids.trace.to_vec(),
        span_id: r.ids.span.to_vec(),
        parent_span_id: r.ids.parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: format!("{} {}", r.method, r.route),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: unix_nanos(r.start),
        end_time_unix_nano: unix_nanos(r.end),
        attributes: vec![
            attribute("http.request.method", text(r.method.as_str())),
            attribute("url.path", text(&r.path)),
            attribute("http.route", text(&r.route)),
            attribute(
                "http.response.status_code",
                any_value::Value::IntValue(i64::from(r.status.as_u16())),
            ),
            attribute("client.address", text(&r.client.to_string())),
        ],
        status: Some(Status {
            code: if error {
                status::StatusCode::Error
            } else {
                status::StatusCode::Unset
            } as i32,
            message: String::new(),
        }),
        ..Span::default()
    }
}

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn text(s: &str) -> any_value::Value {
    any_value::Value::StringValue(s.into())
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
