//! A soak with faults: mixed load (logins, refreshes, proxied requests,
//! revocations, bursts of wrong secrets) through three instances sharing a
//! Redis of the test's own, while one instance is stopped with SIGTERM and
//! started again, the upstream is killed and started again, and Redis is
//! restarted empty. Every answer that is not a success is reported with the
//! phase its request was sent in (an error is expected of a request that
//! any fault overlapped); the invariants must hold throughout: no acknowledged
//! revocation is lost, no refresh lineage is lost, no burst gets more
//! credential checks than the lockout allows (lockout counters live only in
//! Redis: a burst across Redis losing them may get that many again on the
//! empty server, no more), and memory and Redis stay bounded.
//!
//! The same load runs on a Redis watched by three sentinels while its
//! master is killed twice.
//!
//! `PORTERO_SOAK_SECS` sets the steady load around the faults (default 8 s,
//! about 20 s in all; `PORTERO_SOAK_SECS=60 cargo test --test integration
//! -- --nocapture soak::` for a minute of it). The report
//! is printed and written to `soak-report.txt` in Cargo's test temp dir.

use crate::common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::redis::{self, RedisServer, SentinelSetup, SENTINEL_MASTER};
use common::{demo_body, upstream, Gateway, Upstream, ADMIN_TOKEN};
use futures_util::future::join_all;
use serde_json::{json, Value};

const CLIENT_LOGIN: &str =
    r#"{"client_id":"demo_client_123","client_secret":"demo_secret_456_ABCDEFGH"}"#;
const MAX_FAILURES: usize = 3;

/// What the load saw: counts by (operation, status, phase sent in);
/// status 0 is a connection that failed.
#[derive(Default)]
struct Report {
    counts: Mutex<BTreeMap<(&'static str, u16, &'static str), usize>>,
    phase: Mutex<Phase>,
    /// How many faults have begun: a request during which one began
    /// overlapped it.
    faults: AtomicUsize,
    unexpected: AtomicUsize,
    /// Each unexpected error, with when it was sent and answered.
    unexpected_at: Mutex<Vec<String>>,
    /// How many times the store lost what it held (Redis restarted empty).
    losses: AtomicUsize,
}

/// The phase the load is in.
#[derive(Clone, Copy)]
struct Phase {
    name: &'static str,
    /// A fault is in effect or settling: errors then are expected.
    faulty: bool,
    began: Option<std::time::Instant>,
}

impl Default for Phase {
    fn default() -> Self {
        Phase {
            name: "steady",
            faulty: false,
            began: None,
        }
    }
}

/// When a request was sent: its phase, and how many faults had begun.
struct Sent {
    phase: Phase,
    faults: usize,
    at: std::time::Instant,
}

impl Report {
    fn send(&self) -> Sent {
        Sent {
            phase: *self.phase.lock().unwrap(),
            faults: self.faults.load(Ordering::SeqCst),
            at: std::time::Instant::now(),
        }
    }

    /// Counts an answer under the phase its request was sent in. An error
    /// is unexpected only if no fault was in effect when it was sent, none
    /// began while it was under way, and none is in effect now.
    fn record(&self, op: &'static str, status: u16, sent: &Sent) {
        *self
            .counts
            .lock()
            .unwrap()
            .entry((op, status, sent.phase.name))
            .or_default() += 1;
        let now = *self.phase.lock().unwrap();
        let overlapped =
            sent.phase.faulty || now.faulty || self.faults.load(Ordering::SeqCst) != sent.faults;
        if !(200..300).contains(&status) && !overlapped {
            self.unexpected.fetch_add(1, Ordering::SeqCst);
            let since =
                |t: std::time::Instant| sent.phase.began.map(|b| t.duration_since(b).as_millis());
            self.unexpected_at.lock().unwrap().push(format!(
                "{op} {status}: sent {:?} ms into {}, answered {:?} ms into it",
                since(sent.at),
                sent.phase.name,
                since(std::time::Instant::now()),
            ));
        }
    }

    fn enter(&self, name: &'static str, faulty: bool) {
        if faulty {
            self.faults.fetch_add(1, Ordering::SeqCst);
        }
        *self.phase.lock().unwrap() = Phase {
            name,
            faulty,
            began: Some(std::time::Instant::now()),
        };
    }

    /// Marks the store's data as lost from now on.
    fn store_lost(&self) {
        self.losses.fetch_add(1, Ordering::SeqCst);
    }

    fn render(&self) -> String {
        let mut out = String::from("operation     status  phase                      count\n");
        for ((op, status, phase), n) in self.counts.lock().unwrap().iter() {
            let status = if *status == 0 {
                "conn".to_string()
            } else {
                status.to_string()
            };
            out.push_str(&format!("{op:<13} {status:<7} {phase:<26} {n}\n"));
        }
        out
    }
}

/// The public and admin ports of the three instances (stable across restarts).
#[derive(Clone)]
struct Nodes(Vec<(u16, u16)>);

impl Nodes {
    fn url(&self, i: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.0[i % 3].0)
    }

    fn admin(&self, i: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.0[i % 3].1)
    }
}

async fn post(client: &reqwest::Client, url: String, body: String) -> (u16, Value) {
    match client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    }
}

async fn get(client: &reqwest::Client, url: String, token: &str) -> u16 {
    match client.get(url).header("authorization", token).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn revoke(client: &reqwest::Client, nodes: &Nodes, i: usize, token: &str) -> u16 {
    match client
        .post(nodes.admin(i, "/admin/revocations"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "token": token }))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn login(
    client: &reqwest::Client,
    nodes: &Nodes,
    i: usize,
    report: &Report,
) -> Option<String> {
    let sent = report.send();
    let (status, v) = post(client, nodes.url(i, "/api/v1/auth"), CLIENT_LOGIN.into()).await;
    report.record("login", status, &sent);
    v["access_token"].as_str().map(str::to_string)
}

/// Proxied requests with a fresh token now and then.
async fn proxy_load(nodes: Nodes, report: Arc<Report>, stop: Arc<AtomicBool>, worker: usize) {
    let client = reqwest::Client::new();
    let mut token = None;
    let mut n = worker;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        if token.is_none() || n.is_multiple_of(50) {
            token = login(&client, &nodes, n, &report).await.or(token);
        }
        if let Some(t) = &token {
            let sent = report.send();
            let status = get(&client, nodes.url(n, &format!("/orders/{n}")), t).await;
            report.record("proxy", status, &sent);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Tokens revoked (and acknowledged), to check on every instance at the end.
type Revoked = Arc<Mutex<Vec<String>>>;

/// Log in on one instance, revoke on another.
async fn revocation_load(
    nodes: Nodes,
    report: Arc<Report>,
    stop: Arc<AtomicBool>,
    revoked: Revoked,
) {
    let client = reqwest::Client::new();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        if let Some(token) = login(&client, &nodes, n, &report).await {
            let sent = report.send();
            let status = revoke(&client, &nodes, n + 1, &token).await;
            report.record("revoke", status, &sent);
            if status == 200 {
                revoked.lock().unwrap().push(token);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A refresh token refreshed ten times at once across the instances, then
/// revoked: every token it minted joins the revoked list.
async fn lineage_load(nodes: Nodes, report: Arc<Report>, stop: Arc<AtomicBool>, revoked: Revoked) {
    let client = reqwest::Client::new();
    let credentials = r#"{"username":"admin","password":"abcd1234"}"#;
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let sent = report.send();
        let (status, v) = post(&client, nodes.url(n, "/api/auth/token"), credentials.into()).await;
        report.record("refresh-login", status, &sent);
        let Some(refresh) = v["refreshToken"]["token"].as_str().map(str::to_string) else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let body = json!({ "refreshToken": refresh }).to_string();
        let refreshes = (0..10).map(|i| {
            post(
                &client,
                nodes.url(n + i, "/api/auth/refreshtoken"),
                body.clone(),
            )
        });
        let mut minted = Vec::new();
        let sent = report.send();
        for (status, v) in join_all(refreshes).await {
            report.record("refresh", status, &sent);
            minted.extend(v["accessToken"]["token"].as_str().map(str::to_string));
        }
        let sent = report.send();
        let status = revoke(&client, &nodes, n + 2, &refresh).await;
        report.record("revoke-refresh", status, &sent);
        if status == 200 {
            revoked.lock().unwrap().extend(minted);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The most wrong secrets checked (401) in one burst.
#[derive(Default)]
struct WorstBursts {
    /// Of the bursts while the store kept its data.
    kept: usize,
    /// Of the bursts across the store losing its data.
    across_loss: usize,
}

/// Bursts of wrong secrets for a client id of their own: never more than
/// `MAX_FAILURES` checked (401), or twice that across the store losing
/// its counters.
async fn lockout_load(nodes: Nodes, report: Arc<Report>, stop: Arc<AtomicBool>) -> WorstBursts {
    let client = reqwest::Client::new();
    let mut worst = WorstBursts::default();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let body = json!({ "client_id": format!("soak-{}-{n}", std::process::id()), "client_secret": "wrong" })
            .to_string();
        let burst = (0..20).map(|i| post(&client, nodes.url(n + i, "/api/v1/auth"), body.clone()));
        let losses = report.losses.load(Ordering::SeqCst);
        let sent = report.send();
        let answers = join_all(burst).await;
        let mut checked = 0;
        for (status, _) in answers {
            // Refused wrong secrets are what a burst is for.
            report.record(
                "wrong-secret",
                if status == 401 || status == 429 {
                    200
                } else {
                    status
                },
                &sent,
            );
            checked += usize::from(status == 401);
        }
        let worst = if report.losses.load(Ordering::SeqCst) == losses {
            &mut worst.kept
        } else {
            &mut worst.across_loss
        };
        *worst = (*worst).max(checked);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    worst
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// The load running against three instances.
struct Soak {
    nodes: Nodes,
    report: Arc<Report>,
    stop: Arc<AtomicBool>,
    revoked: Revoked,
    load: Vec<tokio::task::JoinHandle<()>>,
    lockout: tokio::task::JoinHandle<WorstBursts>,
}

impl Soak {
    /// The demo on `store` in front of `app`, three instances, with every
    /// load started.
    async fn start(store: &str, app: std::net::SocketAddr) -> ([Gateway; 3], Soak) {
        let config = format!(
            "{store}\n\n{}\n{}",
            upstream("app", &[app], "connect_timeout = \"300ms\""),
            demo_body()
                .replace(
                    "dialect = \"client-flat\"",
                    &format!("dialect = \"client-flat\"\nmax_failures = {MAX_FAILURES}\nip_max_failures = 1000000"),
                )
                .replace("upstream = \"echo\"", "upstream = \"app\"")
        );
        let settings = "threads = 2\ngrace_period = \"200ms\"\nshutdown_timeout = \"2s\"";
        let (a, b, c) = tokio::join!(
            Gateway::start_with_server_settings(settings, &config),
            Gateway::start_with_server_settings(settings, &config),
            Gateway::start_with_server_settings(settings, &config)
        );
        let gateways = [a, b, c];
        let nodes = Nodes(gateways.iter().map(|g| (g.port, g.admin_port)).collect());
        let report = Arc::new(Report::default());
        report.enter("steady", false);
        let stop = Arc::new(AtomicBool::new(false));
        let revoked: Revoked = Arc::default();
        let mut load = Vec::new();
        for w in 0..4 {
            load.push(tokio::spawn(proxy_load(
                nodes.clone(),
                report.clone(),
                stop.clone(),
                w,
            )));
        }
        load.push(tokio::spawn(revocation_load(
            nodes.clone(),
            report.clone(),
            stop.clone(),
            revoked.clone(),
        )));
        load.push(tokio::spawn(lineage_load(
            nodes.clone(),
            report.clone(),
            stop.clone(),
            revoked.clone(),
        )));
        let lockout = tokio::spawn(lockout_load(nodes.clone(), report.clone(), stop.clone()));
        let soak = Soak {
            nodes,
            report,
            stop,
            revoked,
            load,
            lockout,
        };
        (gateways, soak)
    }

    /// Stops the load and checks every invariant; `keys`: how many the
    /// store holds then. Returns the report.
    async fn finish(
        self,
        what: &str,
        gateways: &[Gateway; 3],
        keys: impl std::future::Future<Output = u64>,
    ) -> String {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.load {
            task.await.unwrap();
        }
        let bursts = self.lockout.await.unwrap();

        // Every acknowledged revocation holds on every instance.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let client = reqwest::Client::new();
        let revoked = self.revoked.lock().unwrap().clone();
        let mut survivors = 0;
        for token in &revoked {
            for i in 0..3 {
                let status = get(&client, self.nodes.url(i, "/orders/check"), token).await;
                survivors += usize::from(status != 401);
            }
        }
        let rss: Vec<u64> = gateways.iter().map(|g| rss_kib(g.pid())).collect();
        let keys = keys.await;
        let text = format!(
            "soak: {what}, 3 instances, {} revoked tokens checked on each, worst burst {} checks \
             (limit {MAX_FAILURES}), across Redis losing its data {} (limit {}), RSS {:?} KiB, Redis keys {keys}\n{}",
            revoked.len(),
            bursts.kept,
            bursts.across_loss,
            2 * MAX_FAILURES,
            rss,
            self.report.render()
        );
        println!("{text}");
        assert!(
            !revoked.is_empty(),
            "no revocation was acknowledged\n{text}"
        );
        assert_eq!(survivors, 0, "revoked tokens still accepted\n{text}");
        assert!(bursts.kept <= MAX_FAILURES, "{text}");
        assert!(bursts.across_loss <= 2 * MAX_FAILURES, "{text}");
        if self.report.unexpected.load(Ordering::SeqCst) > 0 {
            // What the instances warned of, to tell why.
            let warnings: Vec<String> = gateways
                .iter()
                .enumerate()
                .flat_map(|(i, g)| {
                    g.log()
                        .lines()
                        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                        .map(|l| format!("instance {}: {}", i + 1, common::as_text(l)))
                        .collect::<Vec<_>>()
                })
                .collect();
            panic!(
                "errors outside the faults:\n{}\n{text}\nthe instances' warnings:\n{}",
                self.report.unexpected_at.lock().unwrap().join("\n"),
                warnings.join("\n")
            );
        }
        assert!(rss.iter().all(|&kib| kib > 0 && kib < 200 * 1024), "{text}");
        assert!(keys < 20_000, "{text}");
        text
    }
}

fn soak_secs() -> u64 {
    std::env::var("PORTERO_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_load_through_faults_keeps_every_invariant() {
    let secs = soak_secs();
    let mut redis = RedisServer::start().expect("redis-server for the soak");
    let mut app = Upstream::start("app").await;
    let app_addr = app.addr;
    let store = format!(
        "[store]\nbackend = \"redis\"\nurl = \"{}\"\ntimeout = \"300ms\"",
        redis.url()
    );
    let (mut gateways, soak) = Soak::start(&store, app_addr).await;
    let report = soak.report.clone();

    // The faults, one at a time, with steady load before, between and
    // after them; errors are expected while each is in effect and settles.
    let step = Duration::from_secs(secs) / 4;
    let settle = Duration::from_secs(1);
    tokio::time::sleep(step).await;
    report.enter("node 3 SIGTERM + restart", true);
    gateways[2].terminate_and_restart().await;
    tokio::time::sleep(settle).await;
    report.enter("steady", false);

    tokio::time::sleep(step).await;
    report.enter("upstream killed", true);
    app.kill();
    drop(app);
    tokio::time::sleep(step / 2).await;
    app = Upstream::start_at("app", Duration::ZERO, app_addr).await;
    report.enter("upstream back", true);
    tokio::time::sleep(settle * 3).await;
    report.enter("steady", false);

    tokio::time::sleep(step).await;
    report.enter("redis restarted empty", true);
    redis.stop();
    report.store_lost();
    redis.restart();
    // Refresh tokens lived in Redis only: those issued before are gone.
    tokio::time::sleep(settle * 3).await;
    report.enter("steady after redis", false);
    tokio::time::sleep(step).await;

    let text = soak
        .finish(&format!("{secs} s"), &gateways, redis_keys(&redis.url()))
        .await;
    let _ = std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("soak-report.txt"),
        &text,
    );
    drop(app);
}

/// The same load on a Redis watched by three sentinels, its master killed
/// with SIGKILL twice (each time the killed server comes back empty and
/// becomes the new master's replica).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_load_through_two_sentinel_failovers_keeps_every_invariant() {
    let secs = soak_secs();
    let mut setup = SentinelSetup::start().expect("redis-server and sentinels for the soak");
    let app = Upstream::start("app").await;
    let sentinels: Vec<String> = setup
        .addresses()
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect();
    // A killed master refuses connections at once, so the failover does not
    // wait on `timeout`; 1 s rides out the stalls of a loaded 2-core machine
    // running both soaks (CI saw every instance miss 300 ms at once).
    let store = format!(
        "[store]\nbackend = \"redis\"\nsentinels = [{}]\nsentinel_master = \"{SENTINEL_MASTER}\"\ntimeout = \"1s\"\n\
         wait_timeout = \"1s\"",
        sentinels.join(", ")
    );
    let (gateways, soak) = Soak::start(&store, app.addr).await;
    let report = soak.report.clone();
    let step = Duration::from_secs(secs) / 3;
    for kill in ["master killed (1)", "master killed (2)"] {
        tokio::time::sleep(step).await;
        report.enter(kill, true);
        let master = setup.master_named().expect("the sentinels name a master");
        let (killed, survivor) = if setup.master.addr() == master {
            (&mut setup.master, setup.replica.addr())
        } else {
            (&mut setup.replica, setup.master.addr())
        };
        killed.stop();
        // Detection, election, and every instance on the new master.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while setup_master_is(&setup, survivor).is_none() {
            assert!(std::time::Instant::now() < deadline, "no failover");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let killed = if setup.master.addr() == survivor {
            &mut setup.replica
        } else {
            &mut setup.master
        };
        killed.restart();
        while !redis::info(survivor, "replication").contains("state=online") {
            assert!(std::time::Instant::now() < deadline, "no replica again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        report.enter("steady", false);
    }
    tokio::time::sleep(step).await;
    let master = setup.master_named().unwrap();
    soak.finish(
        &format!("{secs} s on Sentinel, the master killed twice"),
        &gateways,
        redis_keys(&format!("redis://{master}")),
    )
    .await;
}

/// Some(()) once the sentinels name `addr` as master.
fn setup_master_is(setup: &SentinelSetup, addr: std::net::SocketAddr) -> Option<()> {
    (setup.master_named()? == addr).then_some(())
}

/// How many keys the soak's Redis holds.
async fn redis_keys(url: &str) -> u64 {
    let client = ::redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    ::redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap()
}
