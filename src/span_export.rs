//! Request spans sent to an OpenTelemetry collector over OTLP/HTTP
//! (protobuf), when `[tracing] otlp_endpoint` is set. A finished request's
//! span goes into a bounded queue; a background task posts the queue in
//! batches. When the queue is full the span is dropped and counted: a slow
//! or absent collector never slows a request.

mod encode;

use std::time::{Duration, SystemTime};

use http::{HeaderValue, Method, StatusCode, Uri};
use prometheus::IntCounterVec;
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
/// How long spans gather in the queue between two takes (the queue holds
/// `QUEUE`: 2,048 in 5 ms is 400,000 spans a second).
const GATHER: Duration = Duration::from_millis(5);
/// A collector that has not answered by then has failed the batch.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// One answered request, as its span.
pub struct RequestSpan {
    pub ids: SpanIds,
    pub method: Method,
    /// Its path goes in the span, never its query.
    pub uri: Uri,
    pub route: String,
    pub status: StatusCode,
    pub start: SystemTime,
    pub end: SystemTime,
    /// The client's address as text (made once per connection).
    pub client: HeaderValue,
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
            envelope: encode::Envelope::new(&settings.service_name),
            spans: Vec::new(),
            scratch: Vec::new(),
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
    envelope: encode::Envelope,
    /// The batch's spans, encoded; and one span while it is encoded.
    spans: Vec<u8>,
    scratch: Vec<u8>,
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
        self.spans.clear();
        for span in batch.drain(..) {
            encode::add(&self.envelope, &span, &mut self.scratch, &mut self.spans);
        }
        let body = self.envelope.request(&self.spans);
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
/// flush asked meanwhile ends the wait and is returned. Spans are taken as
/// many at a time as are queued, at most once every `GATHER`: under load
/// the task wakes a few hundred times a second, not once per span.
async fn fill(
    batch: &mut Vec<RequestSpan>,
    waiting: &mut mpsc::Receiver<RequestSpan>,
    flush_asked: &mut mpsc::Receiver<oneshot::Sender<()>>,
) -> Option<oneshot::Sender<()>> {
    let deadline = tokio::time::Instant::now() + BATCH_DELAY;
    let mut timer = std::pin::pin!(tokio::time::sleep_until(deadline));
    while batch.len() < BATCH {
        tokio::select! {
            _ = tokio::time::sleep(GATHER) => {}
            _ = &mut timer => break,
            Some(done) = flush_asked.recv() => return Some(done),
        }
        let room = BATCH - batch.len();
        tokio::select! {
            received = waiting.recv_many(batch, room) => if received == 0 {
                break;
            },
            _ = &mut timer => break,
            Some(done) = flush_asked.recv() => return Some(done),
        }
    }
    None
}
