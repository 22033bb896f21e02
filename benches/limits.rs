//! The limits' share of the hot path: what every request pays on a route
//! without limits (its in-flight slot and gauge), a rate per client address
//! over 10,000 addresses (admitted, and refused, each with its headers
//! written into a response's map), and requests in flight per key.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use http::HeaderMap;
use portero::limits::{Caller, Held, Limiter, Phase};
use portero::metrics::{Metrics, StoreMetrics};
use portero::store::{Embedded, Store};

const CONFIG: &str = r#"
[[listen]]
addr = "127.0.0.1:0"

[upstreams.echo]
builtin = "echo"

[[routes]]
name = "plain"
path = "/plain"
upstream = "echo"
public = true

[[routes]]
name = "roomy"
path = "/roomy"
upstream = "echo"
public = true
rate_limit = { requests = 1000000000, per = "1s" }

[[routes]]
name = "tight"
path = "/tight"
upstream = "echo"
public = true
rate_limit = { requests = 1, per = "1h" }

[[routes]]
name = "in-flight"
path = "/in-flight"
upstream = "echo"
public = true
concurrency = { max_in_flight = 100, by = "client_ip" }
"#;

/// 10,000 client addresses, taken in turn.
fn addresses() -> Vec<IpAddr> {
    (0..10_000u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
        .collect()
}

fn limits(c: &mut Criterion) {
    let config = portero::config::parse(CONFIG, Path::new("bench.toml")).unwrap();
    let metrics = Metrics::new(&config);
    let limiter = |i: usize| Limiter::new(&config.routes[i], &metrics);
    let dir = tempfile::tempdir().unwrap();
    let store = Embedded::open(dir.path(), StoreMetrics::detached()).unwrap();
    let store: &dyn Store = &store;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let headers = HeaderMap::new();
    // A response's map, kept between iterations as portero's codec keeps one.
    let response = std::cell::RefCell::new(HeaderMap::with_capacity(16));
    let ips = addresses();

    let mut group = c.benchmark_group("limits");
    for (name, index) in [
        ("no_limit", 0),
        ("rate_admitted", 1),
        ("rate_refused", 2),
        ("in_flight_per_key", 3),
    ] {
        let limiter = limiter(index);
        let mut n = 0usize;
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                n = (n + 1) % ips.len();
                let caller = Caller {
                    ip: ips[n],
                    headers: &headers,
                    token: None,
                    principal_rate: None,
                    arrived: std::time::Instant::now(),
                };
                let limiter = &limiter;
                let response = &response;
                async move {
                    let mut held = Held::default();
                    let entered = limiter.enter(caller.ip, &mut held);
                    let admitted = limiter
                        .admit(Phase::Request, &caller, store, &mut held)
                        .await;
                    let report = match admitted {
                        Ok(report) => report,
                        Err(refusal) => refusal.report,
                    };
                    let mut response = response.borrow_mut();
                    response.clear();
                    if let Some(report) = report {
                        limiter.report(report, &mut response);
                    }
                    (entered.is_ok(), response.len())
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, limits);
criterion_main!(benches);
