//! What a request leaves behind once answered: its metrics, its span and
//! its access-log line.

use std::time::{Duration, Instant, SystemTime};

use http::{Method, StatusCode, Uri};

use super::{Gateway, RequestContext};
use crate::access_log;
use crate::listener::Peer;
use crate::live::Live;
use crate::respond::{self, RequestError};
use crate::span_export::{RequestSpan, Spans};
use crate::trace_context::RequestIds;

impl Gateway {
    /// The request's metrics: by route, method and status; by upstream.
    /// Returns how long the request took, for its log line and span.
    pub(super) fn record(
        &self,
        live: &Live,
        ctx: &RequestContext,
        method: &'static str,
        status: StatusCode,
        start: Instant,
    ) -> Duration {
        let metrics = &self.shared.metrics;
        // One clock read for every duration.
        let now = Instant::now();
        let took = now - start;
        let elapsed = took.as_secs_f64();
        match ctx.route {
            Some(i) => {
                let series = &live.route(i).series;
                series.requests.inc(method, status);
                series.duration.observe(elapsed);
            }
            None => {
                metrics
                    .requests
                    .with_label_values(&["none", method, status.as_str()])
                    .inc();
                metrics
                    .request_duration
                    .with_label_values(&["none"])
                    .observe(elapsed);
            }
        }
        if let Some((index, started)) = ctx.upstream {
            let series = &live.upstreams[index].series;
            match ctx.error {
                Some(RequestError::Upstream(_)) => series.error.inc(),
                _ => series.ok.inc(),
            }
            series.duration.observe((now - started).as_secs_f64());
        }
        took
    }
}

/// The request's span, if its ctx is sampled. Like the log line, it
/// names the path, never the query string.
pub(super) fn record_span(
    spans: &Spans,
    live: &Live,
    ctx: &RequestContext,
    (method, uri): (&Method, &Uri),
    status: StatusCode,
    took: Duration,
    peer: &Peer,
) {
    let Some(ids) = ctx.ids.as_ref().filter(|ids| ids.sampled()) else {
        return;
    };
    let end = SystemTime::now();
    spans.record(RequestSpan {
        ids: ids.span_ids(),
        method: method.clone(),
        uri: uri.clone(),
        route: ctx.route_name(live).to_string(),
        status,
        start: end - took,
        end,
        client: peer.forwarded_for.clone(),
    });
}

/// One line per request. It names the path, never the query string or a
/// header: either may carry a token.
pub(super) fn access_log(
    live: &Live,
    ctx: &RequestContext,
    method: &Method,
    path: &str,
    status: StatusCode,
    took: Duration,
    peer: &Peer,
) {
    access_log::write(&access_log::Line {
        method: method.as_str(),
        path,
        status: status.as_u16(),
        route: ctx.route_name(live),
        micros: took.as_micros() as u64,
        client: peer.forwarded_for.as_bytes(),
        error: ctx.error.map(respond::logged_reason),
        trace_id: ctx.ids.as_ref().map(RequestIds::trace_id),
        request_id: ctx.ids.as_ref().map(RequestIds::request_id),
    });
}
