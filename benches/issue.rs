//! Token issuance end to end below HTTP: `dialect::handle` parses the body,
//! checks lockout in the embedded store, verifies the secret, mints and
//! renders; one bench per dialect, with the demo config's principals. The
//! two client dialects verify a fast keyed hash (client-flat is the path with
//! a throughput goal); the other three verify argon2id (reported only: slow
//! on purpose), and login-refresh also stores a refresh token (an fsync).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use portero::auth::revocation::Revocations;
use portero::config::{self, Endpoint};
use portero::dialect::{self, IssuerContext, TokenRequest};
use portero::identity::Identity;
use portero::key_loading;
use portero::metrics::Metrics;
use portero::store::{Embedded, Store};

fn config(dir: &std::path::Path) -> config::Config {
    let demo =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml")).unwrap();
    let demo = demo.replace(
        "data_dir = \".portero\"",
        &format!("data_dir = \"{}\"", dir.display()),
    );
    config::parse(&demo, std::path::Path::new("gateway.toml")).unwrap()
}

fn issuance(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let metrics = Metrics::new(&config);
    let store: Arc<dyn Store> =
        Arc::new(Embedded::open(&config.server.data_dir, metrics.store.clone()).unwrap());
    let keys = rt
        .block_on(key_loading::load(&config, store.as_ref(), |_| None))
        .unwrap();
    let revocations = Revocations::default();

    let mut group = c.benchmark_group("issue");
    for (name, issuer_name, body) in [
        (
            "client-flat/fast-hash",
            "client-flat",
            r#"{"client_id":"demo_client_123","client_secret":"demo_secret_456_ABCDEFGH"}"#,
        ),
        (
            "client-envelope/fast-hash",
            "client-envelope",
            r#"{"clientId":"f2ffebd1-77eb-49d2-a623-99824b1f485d","clientSecret":"c0f2afed-edc3-4cec-8af0-ef58fcb50062"}"#,
        ),
        (
            "session/argon2id",
            "session",
            r#"{"username":"admin","password":"demo2024"}"#,
        ),
        (
            "login-refresh/argon2id",
            "login-refresh",
            r#"{"username":"admin","password":"abcd1234"}"#,
        ),
        (
            "project/argon2id",
            "project",
            r#"{"business":"5a2ac49cbbbce212f885529c","proyecto":"upconta","password":"1234"}"#,
        ),
    ] {
        let index = keys.issuer_index(issuer_name).unwrap();
        let issuer = &config.issuers[index];
        let identity = Identity::new(issuer, None, &metrics).unwrap();
        let ctx = IssuerContext {
            index,
            config: issuer,
            accounts: identity.accounts(),
            routes: issuer.token_routes.as_ref().unwrap(),
            endpoint: issuer.legacy.as_ref(),
            keys: &keys,
            store: &store,
            revocations: &revocations,
            metrics: &metrics,
            logins: identity.logins(&store),
        };
        if name.contains("argon2") {
            group.sample_size(20);
        }
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let req = TokenRequest {
                    json: true,
                    endpoint: Endpoint::Token,
                    body: body.as_bytes(),
                    query: None,
                    path: "/",
                    client: None,
                    now: chrono::Utc::now(),
                };
                let reply = dialect::handle(&ctx, &req).await;
                assert_eq!(reply.status, 200, "{name}: {}", reply.body);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, issuance);
criterion_main!(benches);
