//! The access log: one line per request, in the text or JSON shape of the
//! other log lines, formatted on the request's own thread into that
//! thread's buffer (no allocation, no per-field dispatch, the date
//! formatted once a second) and written to stderr by one background
//! thread in large writes. A thread whose buffer has not been emptied past
//! [`MAX_PENDING`] drops its lines, counted, rather than wait: a request
//! never waits on the log.

use std::cell::OnceCell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::IntCounter;

use crate::config::LogFormat;

/// What one request leaves in the log. Never a query string or a header:
/// either may carry a token.
pub struct Line<'a> {
    pub method: &'a str,
    /// The path without its query.
    pub path: &'a str,
    pub status: u16,
    pub route: &'a str,
    pub micros: u64,
    /// The client's address as text (made once per connection).
    pub client: &'a [u8],
    pub error: Option<&'a str>,
    /// 32 hex digits (written as they are).
    pub trace_id: Option<&'a [u8]>,
    /// Visible ASCII.
    pub request_id: Option<&'a [u8]>,
}

/// Lines a thread may hold before the writer empties them; past this,
/// they are dropped (about 4,000 lines).
const MAX_PENDING: usize = 1 << 20;
/// A thread's lines past this wake the writer before its next round.
const WAKE_AT: usize = 256 << 10;
/// How long a line waits at most, when the writer keeps up.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

static SINK: OnceLock<Arc<Sink>> = OnceLock::new();

thread_local! {
    static BUFFER: OnceCell<Arc<Mutex<Buffer>>> = const { OnceCell::new() };
}

struct Sink {
    format: LogFormat,
    /// Every thread's buffer, for the writer to empty.
    buffers: Mutex<Vec<Arc<Mutex<Buffer>>>>,
    writer: OnceLock<std::thread::Thread>,
    stop: AtomicBool,
    /// `portero_log_lines_dropped_total`, once the metrics exist.
    dropped: OnceLock<IntCounter>,
}

/// One thread's lines not yet written, and its clock's current second.
struct Buffer {
    lines: Vec<u8>,
    second: u64,
    /// `2026-11-26T01:11:47.` for `second`.
    date: [u8; 20],
}

/// Starts the writer: lines in `format`, to stderr. Returns what flushes
/// the last lines when dropped (at exit). Without it, [`write`] does nothing.
pub fn start(format: LogFormat) -> Flush {
    let sink = Arc::new(Sink {
        format,
        buffers: Mutex::default(),
        writer: OnceLock::new(),
        stop: AtomicBool::new(false),
        dropped: OnceLock::new(),
    });
    let writer = {
        let sink = sink.clone();
        std::thread::Builder::new()
            .name("portero-access-log".into())
            .spawn(move || sink.run())
            .expect("the access log's writer thread starts")
    };
    let _ = sink.writer.set(writer.thread().clone());
    let _ = SINK.set(sink.clone());
    Flush {
        sink,
        writer: Some(writer),
    }
}

/// Counts the lines dropped in `counter` from now on.
pub fn count_drops_in(counter: IntCounter) {
    if let Some(sink) = SINK.get() {
        let _ = sink.dropped.set(counter);
    }
}

/// Writes the last lines and stops the writer when dropped.
pub struct Flush {
    sink: Arc<Sink>,
    writer: Option<JoinHandle<()>>,
}

impl Drop for Flush {
    fn drop(&mut self) {
        self.sink.stop.store(true, Ordering::Release);
        if let Some(writer) = self.writer.take() {
            writer.thread().unpark();
            let _ = writer.join();
        }
    }
}

/// Adds `line` to this thread's buffer (or drops it, counted, if the
/// writer is that far behind).
pub fn write(line: &Line) {
    let Some(sink) = SINK.get() else {
        return;
    };
    // `try_with`: nothing is written once the thread's storage is gone.
    let _ = BUFFER.try_with(|cell| {
        let buffer = cell.get_or_init(|| sink.register());
        let mut buffer = lock(buffer);
        if buffer.lines.len() >= MAX_PENDING {
            drop(buffer);
            if let Some(dropped) = sink.dropped.get() {
                dropped.inc();
            }
            return;
        }
        let before = buffer.lines.len();
        let micros = buffer.stamp();
        let Buffer { lines, date, .. } = &mut *buffer;
        match sink.format {
            LogFormat::Text => text(lines, date, micros, line),
            LogFormat::Json => json(lines, date, micros, line),
        }
        if before < WAKE_AT && lines.len() >= WAKE_AT {
            if let Some(writer) = sink.writer.get() {
                writer.unpark();
            }
        }
    });
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sink {
    fn register(&self) -> Arc<Mutex<Buffer>> {
        let buffer = Arc::new(Mutex::new(Buffer {
            lines: Vec::with_capacity(64 << 10),
            second: u64::MAX,
            date: [b'0'; 20],
        }));
        lock(&self.buffers).push(buffer.clone());
        buffer
    }

    /// The writer: every [`FLUSH_EVERY`] (or when woken), each thread's
    /// lines taken in one swap and written in one call.
    fn run(&self) {
        let mut spare = Vec::with_capacity(64 << 10);
        loop {
            let stopping = self.stop.load(Ordering::Acquire);
            let buffers = lock(&self.buffers).clone();
            for buffer in &buffers {
                std::mem::swap(&mut lock(buffer).lines, &mut spare);
                if !spare.is_empty() {
                    // Nothing to do if stderr is gone: the lines are lost.
                    let _ = std::io::stderr().lock().write_all(&spare);
                    spare.clear();
                }
            }
            // The buffers of threads that have ended (held by the list and
            // `buffers` alone) go once empty: a last line written after the
            // swap above is written next round.
            lock(&self.buffers).retain(|b| Arc::strong_count(b) > 2 || !lock(b).lines.is_empty());
            drop(buffers);
            if stopping {
                return;
            }
            std::thread::park_timeout(FLUSH_EVERY);
        }
    }
}

impl Buffer {
    /// The date for now, formatted again only when the second changes;
    /// the microseconds are written by the line.
    fn stamp(&mut self) -> u32 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        if now.as_secs() != self.second {
            self.second = now.as_secs();
            if let Some(date) = chrono::DateTime::from_timestamp(now.as_secs() as i64, 0) {
                let formatted = date.format("%Y-%m-%dT%H:%M:%S.").to_string();
                if formatted.len() == self.date.len() {
                    self.date.copy_from_slice(formatted.as_bytes());
                }
            }
        }
        now.subsec_micros()
    }
}

/// The literal pieces of one shape of line, around its values.
struct Shape {
    /// Before the date.
    start: &'static [u8],
    /// After the microseconds, up to the method.
    method: &'static [u8],
    /// Each field's name and separator, before its value.
    path: &'static [u8],
    status: &'static [u8],
    route: &'static [u8],
    micros: &'static [u8],
    client: &'static [u8],
    error: &'static [u8],
    trace_id: &'static [u8],
    request_id: &'static [u8],
    /// After the method and after the client, which are written bare.
    close_method: &'static [u8],
    close_client: &'static [u8],
    end: &'static [u8],
    /// A string value, quoted and escaped as the shape escapes.
    quote: fn(&mut Vec<u8>, &[u8]),
}

/// `2026-11-26T01:11:47.218520Z  INFO portero::access: method=GET
/// path="/orders/7" status=200 route="orders" micros=1095 client=127.0.0.1
/// trace_id="..." request_id="..."`, as the other text lines are written.
const TEXT: Shape = Shape {
    start: b"",
    method: b"Z  INFO portero::access: method=",
    close_method: b"",
    path: b" path=",
    status: b" status=",
    route: b" route=",
    micros: b" micros=",
    client: b" client=",
    close_client: b"",
    error: b" error=",
    trace_id: b" trace_id=",
    request_id: b" request_id=",
    end: b"\n",
    quote: quoted,
};

/// `{"timestamp":"...","level":"INFO","method":"GET",...,"target":"portero::access"}`,
/// the fields in the order of the text line, as the other JSON lines are written.
const JSON: Shape = Shape {
    start: b"{\"timestamp\":\"",
    method: b"Z\",\"level\":\"INFO\",\"method\":\"",
    close_method: b"\"",
    path: b",\"path\":",
    status: b",\"status\":",
    route: b",\"route\":",
    micros: b",\"micros\":",
    client: b",\"client\":\"",
    close_client: b"\"",
    error: b",\"error\":",
    trace_id: b",\"trace_id\":",
    request_id: b",\"request_id\":",
    end: b",\"target\":\"portero::access\"}\n",
    quote: quoted_json,
};

fn text(out: &mut Vec<u8>, date: &[u8; 20], micros: u32, line: &Line) {
    shaped(&TEXT, out, date, micros, line);
}

fn json(out: &mut Vec<u8>, date: &[u8; 20], micros: u32, line: &Line) {
    shaped(&JSON, out, date, micros, line);
}

/// `line` in `shape`. The method (an HTTP token) and the client's address
/// need no escape; the trace id is hex. Inlined into `text` and `json`, so
/// each is compiled with its shape's pieces as constants.
#[inline(always)]
fn shaped(shape: &Shape, out: &mut Vec<u8>, date: &[u8; 20], micros: u32, line: &Line) {
    out.extend_from_slice(shape.start);
    out.extend_from_slice(date);
    six_digits(out, micros);
    out.extend_from_slice(shape.method);
    out.extend_from_slice(line.method.as_bytes());
    out.extend_from_slice(shape.close_method);
    out.extend_from_slice(shape.path);
    (shape.quote)(out, line.path.as_bytes());
    out.extend_from_slice(shape.status);
    number(out, line.status);
    out.extend_from_slice(shape.route);
    (shape.quote)(out, line.route.as_bytes());
    out.extend_from_slice(shape.micros);
    number(out, line.micros);
    out.extend_from_slice(shape.client);
    out.extend_from_slice(line.client);
    out.extend_from_slice(shape.close_client);
    if let Some(error) = line.error {
        out.extend_from_slice(shape.error);
        (shape.quote)(out, error.as_bytes());
    }
    if let Some(trace_id) = line.trace_id {
        out.extend_from_slice(shape.trace_id);
        out.push(b'"');
        out.extend_from_slice(trace_id);
        out.push(b'"');
    }
    if let Some(request_id) = line.request_id {
        out.extend_from_slice(shape.request_id);
        (shape.quote)(out, request_id);
    }
    out.extend_from_slice(shape.end);
}

/// Printable ASCII that needs no escape in either shape. Without an early
/// exit, so the loop runs over many bytes at once (most lines are plain).
fn plain(s: &[u8]) -> bool {
    s.iter().fold(true, |ok, &b| {
        ok & (0x20..0x7f).contains(&b) & (b != b'"') & (b != b'\\')
    })
}

/// `"s"`, escaped as Rust's `{:?}` escapes it (as the other text lines).
fn quoted(out: &mut Vec<u8>, s: &[u8]) {
    if plain(s) {
        out.push(b'"');
        out.extend_from_slice(s);
        out.push(b'"');
    } else {
        let _ = write!(out, "{:?}", String::from_utf8_lossy(s));
    }
}

/// `"s"` as a JSON string.
fn quoted_json(out: &mut Vec<u8>, s: &[u8]) {
    if plain(s) {
        out.push(b'"');
        out.extend_from_slice(s);
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, &String::from_utf8_lossy(s));
    }
}

fn number(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn six_digits(out: &mut Vec<u8>, n: u32) {
    let mut digits = [b'0'; 6];
    let mut n = n.min(999_999);
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(path: &'a str, error: Option<&'a str>) -> Line<'a> {
        Line {
            method: "GET",
            path,
            status: 200,
            route: "orders",
            micros: 1095,
            client: b"127.0.0.1",
            error,
            trace_id: Some(b"4bf92f3577b34da6a3ce929d0e0e4736"),
            request_id: Some(b"7f965d958b4a37b0fdcd1c74ddead5bf"),
        }
    }

    const DATE: &[u8; 20] = b"2026-11-26T01:11:47.";

    #[test]
    fn a_text_line_is_shaped_as_the_other_text_lines() {
        let mut out = Vec::new();
        text(&mut out, DATE, 218_520, &line("/orders/7", None));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-11-26T01:11:47.218520Z  INFO portero::access: method=GET path=\"/orders/7\" \
             status=200 route=\"orders\" micros=1095 client=127.0.0.1 \
             trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\" request_id=\"7f965d958b4a37b0fdcd1c74ddead5bf\"\n"
        );
    }

    #[test]
    fn a_json_line_parses_with_every_field() {
        let mut out = Vec::new();
        json(
            &mut out,
            DATE,
            5,
            &line("/a\"b\\c\u{1}é", Some("upstream timed out")),
        );
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["timestamp"], "2026-11-26T01:11:47.000005Z");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "portero::access");
        assert_eq!(v["path"], "/a\"b\\c\u{1}é");
        assert_eq!(v["status"], 200);
        assert_eq!(v["micros"], 1095);
        assert_eq!(v["client"], "127.0.0.1");
        assert_eq!(v["error"], "upstream timed out");
        assert_eq!(v["request_id"], "7f965d958b4a37b0fdcd1c74ddead5bf");
    }

    #[test]
    fn text_escapes_as_debug_does() {
        let mut out = Vec::new();
        let mut l = line("/a\"b\\c\u{1}\n", None);
        l.client = b"::1";
        l.request_id = Some(b"id\"quoted");
        text(&mut out, DATE, 0, &l);
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains(r#"path="/a\"b\\c\u{1}\n""#), "{out}");
        assert!(out.contains(" client=::1 "), "{out}");
        assert!(out.contains(r#" request_id="id\"quoted""#), "{out}");
        assert_eq!(out.matches('\n').count(), 1);
    }
}
