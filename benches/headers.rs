//! What a rate-limited response's two headers cost in the header map, and
//! what the alternatives would: counted in instructions, each alternative
//! in its own process under callgrind (`benches/headers.sh`), less the
//! count of `none`. Each of N responses gets an upstream's five headers in
//! a map sized as portero's codec sizes it, the alternative's headers,
//! and is then written out as hyper writes a head (name, `: `, value,
//! CRLF) and dropped.
//!
//!   cargo bench --bench headers -- ALTERNATIVE [N]
//!
//! - `none`: the upstream's headers alone, the base the others are less.
//! - `insert`: `RateLimit-Policy` (a value made once, cloned) and
//!   `RateLimit` (made for the response) inserted, as portero does.
//! - `append`: the same two values appended instead.
//! - `unsized`: inserted into a map with no room kept for them, which grows.
//! - `prepared`: both values made once and cloned: what no validation of a
//!   fresh value would save.
//! - `standard`: two standard names with prepared values appended (CORS's
//!   `Vary` and `Access-Control-Allow-Origin`), for comparison.

use std::hint::black_box;

// The gateway's own allocator: a response's blocks cost what they cost
// there. (Its unit tests do not run in a bench without a harness.)
#[allow(unused_imports)]
#[path = "../src/allocator.rs"]
mod allocator;
#[global_allocator]
static ALLOCATOR: allocator::MiMalloc = allocator::MiMalloc;

use http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, VARY};
use http::{HeaderMap, HeaderName, HeaderValue};

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
/// Room portero's codec keeps beside the upstream's headers.
const ADDED_ROOM: usize = 6;

fn upstream_headers(map: &mut HeaderMap) {
    for (name, value) in [
        ("server", "nginx/1.22.1"),
        ("date", "Fri, 27 Nov 2026 09:00:00 GMT"),
        ("content-type", "text/plain"),
        ("content-length", "2"),
        ("last-modified", "Fri, 27 Nov 2026 08:00:00 GMT"),
    ] {
        map.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
}

/// `"bench";r=<remaining>;t=1`, made as `Limiter::report` makes it.
fn state(remaining: u64) -> HeaderValue {
    let mut r = itoa::Buffer::new();
    let r = r.format(remaining);
    let mut state = Vec::with_capacity(14 + r.len());
    for part in [&b"\"bench\";r="[..], r.as_bytes(), b";t=1"] {
        state.extend_from_slice(part);
    }
    HeaderValue::from_maybe_shared(bytes::Bytes::from(state)).expect("ASCII")
}

/// The head as hyper's HTTP/1.1 encoder writes it.
fn encode(map: &HeaderMap, out: &mut Vec<u8>) {
    out.clear();
    for (name, value) in map {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let alternative = args.next().unwrap_or_else(|| "insert".into());
    let n: u64 = args.next().map_or(1_000_000, |n| n.parse().expect("N"));
    let policy = HeaderValue::from_static("\"bench\";q=1000000000;w=1");
    let fixed = HeaderValue::from_static("\"bench\";r=999999999;t=1");
    let origin = HeaderValue::from_static("https://app.example.com");
    let mut out = Vec::with_capacity(1024);
    for i in 0..n {
        let room = match alternative.as_str() {
            "unsized" => 5,
            _ => 5 + ADDED_ROOM,
        };
        let mut map = HeaderMap::with_capacity(room);
        upstream_headers(&mut map);
        let remaining = black_box(999_999_999 - i);
        match alternative.as_str() {
            "none" => {}
            "insert" | "unsized" => {
                map.insert(RATELIMIT_POLICY, policy.clone());
                map.insert(RATELIMIT, state(remaining));
            }
            "append" => {
                map.append(RATELIMIT_POLICY, policy.clone());
                map.append(RATELIMIT, state(remaining));
            }
            "prepared" => {
                map.insert(RATELIMIT_POLICY, policy.clone());
                map.insert(RATELIMIT, fixed.clone());
            }
            "standard" => {
                map.append(VARY, HeaderValue::from_static("Origin"));
                map.append(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            }
            other => panic!("no alternative {other}"),
        }
        encode(&map, &mut out);
        black_box(&out);
    }
}
