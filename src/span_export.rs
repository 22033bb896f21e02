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
use tokio::sync::mpsc;

use crate::config::SpanExport;
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
pub struct Spans {
    queue: mpsc::Sender<RequestSpan>,
    /// `portero_trace_spans_total{result}`.
    counted: IntCounterVec,
}

impl Spans {
    /// Starts the exporting task on the current runtime.
    pub fn start(settings: &SpanExport, counted: IntCounterVec) -> Result<Spans, String> {
        let client = client()?;
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(export(
            waiting,
            client,
            settings.endpoint.clone(),
            resource(&settings.service_name),
            counted.clone(),
        ));
        Ok(Spans { queue, counted })
    }

    pub fn record(&self, span: RequestSpan) {
        if self.queue.try_send(span).is_err() {
            self.counted.with_label_values(&["dropped"]).inc();
        }
    }
}

/// The collector's client: the system's roots for `https`, no redirects.
fn client() -> Result<reqwest::Client, String> {
    let roots = crate::trust::roots(None)?;
    let tls = crate::trust::client_builder(roots)?.with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(EXPORT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("portero/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

/// Posts batches until every sender is gone. A failed batch is counted
/// and dropped, not retried: spans are worth less than the gateway's memory.
async fn export(
    mut waiting: mpsc::Receiver<RequestSpan>,
    client: reqwest::Client,
    endpoint: String,
    resource: Resource,
    counted: IntCounterVec,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut failing = false;
    while waiting.recv_many(&mut batch, BATCH).await > 0 {
        let deadline = tokio::time::Instant::now() + BATCH_DELAY;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, waiting.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let count = batch.len() as u64;
        let body = request(&resource, batch.drain(..)).encode_to_vec();
        let sent = client
            .post(&endpoint)
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
                counted.with_label_values(&["exported"]).inc_by(count);
                failing = false;
            }
            Err(why) => {
                counted.with_label_values(&["failed"]).inc_by(count);
                // Once per outage, not once per batch.
                if !failing {
                    tracing::warn!(%endpoint, error = %why, "spans not exported");
                }
                failing = true;
            }
        }
    }
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
