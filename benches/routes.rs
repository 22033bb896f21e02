//! Route matching as the table grows: 10, 1,000 and 10,000 routes, each on
//! its own path prefix (half of them under a host of their own), looking up
//! a request for the last route written, a deep path under it, and a path
//! no route takes (falls through to `/`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::Method;
use portero::config::{Route, RouteAction};
use portero::routes::RouteTable;

fn table(n: usize) -> RouteTable {
    let mut routes: Vec<Route> = (0..n)
        .map(|i| Route {
            name: format!("r{i}"),
            host: if i % 2 == 0 {
                "*".into()
            } else {
                format!("api{i}.example.com")
            },
            path: format!("/service-{i}/v1"),
            methods: vec![],
            action: RouteAction::Proxy {
                upstream: 0,
                strip_prefix: false,
                policy: None,
                upgrades: vec![],
                underscores_in_headers: false,
                method_override: false,
                forward_client_cert: false,
            },
            cors: None,
            limits: Default::default(),
        })
        .collect();
    routes.push(Route {
        name: "root".into(),
        host: "*".into(),
        path: "/".into(),
        methods: vec![],
        action: RouteAction::Proxy {
            upstream: 0,
            strip_prefix: false,
            policy: None,
            upgrades: vec![],
            underscores_in_headers: false,
            method_override: false,
            forward_client_cert: false,
        },
        cors: None,
        limits: Default::default(),
    });
    RouteTable::new(routes)
}

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_lookup");
    for n in [10usize, 1_000, 10_000] {
        let t = table(n);
        let last = n - 2; // the last route on host "*"
        let hit = format!("/service-{last}/v1/orders/42");
        group.bench_function(BenchmarkId::new("hit", n), |b| {
            b.iter(|| t.lookup("gateway.example.com", &hit, &Method::GET).unwrap())
        });
        let host = format!("api{}.example.com:8443", n - 1);
        let on_host = format!("/service-{}/v1/a/b/c", n - 1);
        group.bench_function(BenchmarkId::new("exact_host", n), |b| {
            b.iter(|| t.lookup(&host, &on_host, &Method::GET).unwrap())
        });
        group.bench_function(BenchmarkId::new("fallthrough", n), |b| {
            b.iter(|| {
                t.lookup("gateway.example.com", "/unknown/deep/path/x", &Method::GET)
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
