//! A batch of request spans as an OTLP `ExportTraceServiceRequest`,
//! encoded field by field straight into the body (prost's wire helpers):
//! no `Span` values, no allocation per span. The envelope (resource and
//! scope) is encoded once, at start.

use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
use prost::Message;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::RequestSpan;

/// `opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_SERVER`.
const KIND_SERVER: u64 = 2;
/// `opentelemetry.proto.trace.v1.Status.StatusCode.STATUS_CODE_ERROR`.
const STATUS_ERROR: u64 = 2;

/// The parts of every request that do not change: the resource (the
/// service's name) and the instrumentation scope, encoded.
pub(super) struct Envelope {
    resource: Vec<u8>,
    scope: Vec<u8>,
    /// Each attribute's key as its `KeyValue.key` field, encoded once.
    keys: [Vec<u8>; ATTRIBUTES.len()],
}

/// The attributes of a span, by OpenTelemetry's HTTP names.
const ATTRIBUTES: [&str; 5] = [
    "http.request.method",
    "url.path",
    "http.route",
    "http.response.status_code",
    "client.address",
];

impl Envelope {
    pub(super) fn new(service_name: &str) -> Envelope {
        let resource = Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(service_name.into())),
                }),
                ..KeyValue::default()
            }],
            ..Resource::default()
        };
        let scope = InstrumentationScope {
            name: "portero".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..InstrumentationScope::default()
        };
        Envelope {
            resource: resource.encode_to_vec(),
            scope: scope.encode_to_vec(),
            keys: ATTRIBUTES.map(|key| {
                let mut field = Vec::new();
                bytes(1, key.as_bytes(), &mut field);
                field
            }),
        }
    }

    /// The request body for `spans` (each already a `ScopeSpans.spans`
    /// field, as [`add`] writes them).
    pub(super) fn request(&self, spans: &[u8]) -> Vec<u8> {
        // ScopeSpans { scope = 1, spans = 2... }
        let scope_spans_len = field_len(self.scope.len()) + spans.len();
        // ResourceSpans { resource = 1, scope_spans = 2 }
        let resource_spans_len = field_len(self.resource.len()) + field_len(scope_spans_len);
        let mut body = Vec::with_capacity(field_len(resource_spans_len));
        // ExportTraceServiceRequest { resource_spans = 1 }
        length_delimited(1, resource_spans_len, &mut body);
        length_delimited(1, self.resource.len(), &mut body);
        body.extend_from_slice(&self.resource);
        length_delimited(2, scope_spans_len, &mut body);
        length_delimited(1, self.scope.len(), &mut body);
        body.extend_from_slice(&self.scope);
        body.extend_from_slice(spans);
        body
    }
}

/// Appends `span` to `out` as a `ScopeSpans.spans` field (tag 2): a
/// server span with OpenTelemetry's HTTP attribute names, a `5xx` an error
/// (as the HTTP conventions say for servers). `scratch` holds the span
/// while its length is not yet known.
pub(super) fn add(
    envelope: &Envelope,
    span: &RequestSpan,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    let [method_key, path_key, route_key, status_key, client_key] = &envelope.keys;
    scratch.clear();
    bytes(1, &span.ids.trace, scratch);
    bytes(2, &span.ids.span, scratch);
    if let Some(parent) = &span.ids.parent {
        bytes(4, parent, scratch);
    }
    let (method, route) = (span.method.as_str(), span.route.as_str());
    length_delimited(5, method.len() + 1 + route.len(), scratch);
    scratch.extend_from_slice(method.as_bytes());
    scratch.push(b' ');
    scratch.extend_from_slice(route.as_bytes());
    varint(6, KIND_SERVER, scratch);
    fixed64(7, unix_nanos(span.start), scratch);
    fixed64(8, unix_nanos(span.end), scratch);
    text_attribute(method_key, method.as_bytes(), scratch);
    text_attribute(path_key, span.uri.path().as_bytes(), scratch);
    text_attribute(route_key, route.as_bytes(), scratch);
    int_attribute(status_key, span.status.as_u16().into(), scratch);
    text_attribute(client_key, span.client.as_bytes(), scratch);
    // Status { code = 3 }: unset (an empty message) unless an error.
    if span.status.is_server_error() {
        length_delimited(15, 2, scratch);
        varint(3, STATUS_ERROR, scratch);
    } else {
        length_delimited(15, 0, scratch);
    }
    bytes(2, scratch, out);
}

/// A `KeyValue` attribute with a string value: `{1: key, 2: AnyValue {1:
/// value}}`, `key` its encoded key field.
fn text_attribute(key: &[u8], value: &[u8], out: &mut Vec<u8>) {
    let any = field_len(value.len());
    length_delimited(9, key.len() + field_len(any), out);
    out.extend_from_slice(key);
    length_delimited(2, any, out);
    bytes(1, value, out);
}

/// A `KeyValue` attribute with an integer value: `{1: key, 2: AnyValue {3: value}}`.
fn int_attribute(key: &[u8], value: u64, out: &mut Vec<u8>) {
    let any = 1 + encoded_len_varint(value);
    length_delimited(9, key.len() + field_len(any), out);
    out.extend_from_slice(key);
    length_delimited(2, any, out);
    varint(3, value, out);
}

/// The bytes a length-delimited field of `len` bytes takes (a tag below 16).
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn length_delimited(tag: u32, len: usize, out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    short_varint(len as u64, out);
}

/// A varint, the one-byte case (most lengths here) without a loop.
fn short_varint(value: u64, out: &mut Vec<u8>) {
    match value {
        0..128 => out.push(value as u8),
        _ => encode_varint(value, out),
    }
}

fn bytes(tag: u32, value: &[u8], out: &mut Vec<u8>) {
    length_delimited(tag, value.len(), out);
    out.extend_from_slice(value);
}

fn varint(tag: u32, value: u64, out: &mut Vec<u8>) {
    encode_key(tag, WireType::Varint, out);
    encode_varint(value, out);
}

fn fixed64(tag: u32, value: u64, out: &mut Vec<u8>) {
    encode_key(tag, WireType::SixtyFourBit, out);
    out.extend_from_slice(&value.to_le_bytes());
}

fn unix_nanos(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace_context::SpanIds;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{span, status};
    use std::time::{Duration, SystemTime};

    fn span(status: u16, parent: Option<[u8; 8]>) -> RequestSpan {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
        RequestSpan {
            ids: SpanIds {
                trace: [7; 16],
                span: [8; 8],
                parent,
            },
            method: http::Method::POST,
            uri: "/orders/7?q=1".parse().unwrap(),
            route: "orders".into(),
            status: http::StatusCode::from_u16(status).unwrap(),
            start,
            end: start + Duration::from_micros(1500),
            client: http::HeaderValue::from_static("::1"),
        }
    }

    #[test]
    fn the_body_decodes_as_the_otlp_request_it_stands_for() {
        let envelope = Envelope::new("gateway-a");
        let (mut scratch, mut spans) = (Vec::new(), Vec::new());
        add(
            &envelope,
            &span(200, Some([9; 8])),
            &mut scratch,
            &mut spans,
        );
        add(&envelope, &span(503, None), &mut scratch, &mut spans);
        let request = ExportTraceServiceRequest::decode(&envelope.request(&spans)[..]).unwrap();
        let resource_spans = &request.resource_spans[0];
        let service = &resource_spans.resource.as_ref().unwrap().attributes[0];
        assert_eq!(service.key, "service.name");
        let scope_spans = &resource_spans.scope_spans[0];
        assert_eq!(scope_spans.scope.as_ref().unwrap().name, "portero");
        let [ok, failed] = &scope_spans.spans[..] else {
            panic!("two spans: {scope_spans:?}")
        };
        assert_eq!(ok.trace_id, vec![7; 16]);
        assert_eq!(ok.span_id, vec![8; 8]);
        assert_eq!(ok.parent_span_id, vec![9; 8]);
        assert!(failed.parent_span_id.is_empty());
        assert_eq!(ok.name, "POST orders");
        assert_eq!(ok.kind, span::SpanKind::Server as i32);
        assert_eq!(ok.end_time_unix_nano - ok.start_time_unix_nano, 1_500_000);
        let attribute = |s: &opentelemetry_proto::tonic::trace::v1::Span, key: &str| {
            s.attributes
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| kv.value.clone()?.value)
        };
        assert_eq!(
            attribute(ok, "url.path"),
            Some(any_value::Value::StringValue("/orders/7".into()))
        );
        assert_eq!(
            attribute(ok, "client.address"),
            Some(any_value::Value::StringValue("::1".into()))
        );
        assert_eq!(
            attribute(failed, "http.response.status_code"),
            Some(any_value::Value::IntValue(503))
        );
        assert_eq!(
            ok.status.as_ref().unwrap().code,
            status::StatusCode::Unset as i32
        );
        assert_eq!(
            failed.status.as_ref().unwrap().code,
            status::StatusCode::Error as i32
        );
    }
}
