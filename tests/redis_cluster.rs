//! Three gateway instances on a Redis Cluster of the test's own (three
//! masters, a replica each): lockout, refresh lineage, shared rate limits
//! and revocations hold across instances as they do on one Redis; the
//! keys written together share a slot while the kinds spread over the
//! masters; a master's death is followed and loses no acknowledged
//! revocation.

use crate::common;

use std::time::{Duration, Instant};

use common::redis;
use common::redis_cluster::{redis_cli, ClusterSetup};
use common::shared_store::*;
use common::*;
use reqwest::StatusCode;
use serde_json::json;

/// The `[store]` line of an instance on `setup`.
fn cluster_store(setup: &ClusterSetup) -> String {
    let nodes: Vec<String> = setup
        .addresses()
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect();
    format!("cluster = [{}]", nodes.join(", "))
}

async fn three(config: &str) -> [Gateway; 3] {
    let (a, b, c) = futures_util::join!(
        Gateway::start(config),
        Gateway::start(config),
        Gateway::start(config)
    );
    [a, b, c]
}

/// Every key under `prefix` on each master, as `(node, key)`.
fn keys_by_node(setup: &ClusterSetup, prefix: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (i, node) in setup.nodes.iter().enumerate() {
        if !redis::info(node.addr(), "replication").contains("role:master") {
            continue;
        }
        let keys = redis_cli(node.addr(), &["--scan", "--pattern", &format!("{prefix}*")]);
        found.extend(keys.lines().map(|k| (i, k.to_string())));
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_a_redis_cluster_share_one_truth() {
    let Some(setup) = ClusterSetup::start() else {
        return;
    };
    let p = prefix();
    let [n1, n2, n3] = three(&limited_node(&cluster_store(&setup), &p)).await;
    check_a_revocation_reaches_all([&n1, &n2, &n3]).await;
    let token = login(&n1).await;
    check_a_shared_rate([&n1, &n2, &n3], &token).await;
    // Last: it locks the demo client out.
    check_tokens_refresh_tokens_and_lockouts([&n1, &n2, &n3]).await;

    // A refresh token used once: its record and lineage are in Redis now.
    let (status, v) = post_json(
        &n1,
        "/api/auth/token",
        r#"{"username":"admin","password":"abcd1234"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let refresh = json!({ "refreshToken": v["refreshToken"]["token"] }).to_string();
    let (status, v) = post_json(&n2, "/api/auth/refreshtoken", &refresh).await;
    assert_eq!(status, StatusCode::OK, "{v}");

    // Each kind written together is in one slot; the kinds spread out.
    let keys = keys_by_node(&setup, &p);
    let node_of = |kind: &str| -> Vec<usize> {
        let mut nodes: Vec<usize> = keys
            .iter()
            .filter(|(_, k)| k.starts_with(&format!("{p}{kind}")))
            .map(|(n, _)| *n)
            .collect();
        nodes.dedup();
        nodes
    };
    for kind in ["{rev}:", "{fail}:"] {
        assert_eq!(node_of(kind).len(), 1, "{kind} keys: {keys:?}");
    }
    let lineage = keys
        .iter()
        .find(|(_, k)| k.starts_with(&format!("{p}lineage:{{")))
        .unwrap_or_else(|| panic!("no refresh lineage in {keys:?}"));
    let hash = lineage.1.rsplit_once(":{").unwrap().1;
    assert!(
        keys.contains(&(lineage.0, format!("{p}refresh:{{{hash}"))),
        "a refresh record beside its lineage: {keys:?}"
    );
    let mut all: Vec<usize> = keys.iter().map(|(n, _)| *n).collect();
    all.sort();
    all.dedup();
    assert!(all.len() >= 2, "every key on one master: {keys:?}");

    // /readyz and the metrics name the three masters.
    let masters = n2.store_master().await;
    assert_eq!(masters.split(',').count(), 3, "{masters}");
    for master in masters.split(',') {
        assert_eq!(
            n2.metric("portero_store_master", &[("master", master)])
                .await,
            1.0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_master_killed_loses_no_acknowledged_revocation() {
    let Some(mut setup) = ClusterSetup::start() else {
        return;
    };
    let p = prefix();
    let [n1, n2, n3] = three(&node(&cluster_store(&setup), &p, "")).await;
    let (kept, after) = (login(&n1).await, login(&n1).await);
    let mut revoked = Vec::new();
    for _ in 0..5 {
        let token = login(&n1).await;
        assert_eq!(
            n2.revoke(json!({ "token": token })).await.status(),
            StatusCode::OK
        );
        revoked.push(token);
    }

    // SIGKILL the master holding the revocations; its replica takes over.
    let victim = setup.master_of(&format!("{p}{{rev}}:x")).port;
    let killed = Instant::now();
    setup
        .nodes
        .iter_mut()
        .find(|n| n.port == victim)
        .unwrap()
        .stop();
    for gw in [&n1, &n3] {
        assert_eq!(get(gw, &kept).await, StatusCode::OK, "fail-static");
    }
    // Writes work again: a revocation is acknowledged, and reaches 1 and 3.
    let revoked_again = loop {
        let r = n2.revoke(json!({ "token": after })).await;
        if r.status() == StatusCode::OK {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "no revocation acknowledged 10 s after the kill: {}",
            n2.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("first revocation acknowledged {revoked_again:?} after the kill");
    for gw in [&n1, &n3] {
        until_refused(gw, &after, Duration::from_secs(2)).await;
    }
    // A fourth instance starting now reads every acknowledged revocation.
    let n4 = Gateway::start(&node(&cluster_store(&setup), &p, "")).await;
    for token in &revoked {
        assert_eq!(get(&n4, token).await, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(get(&n4, &kept).await, StatusCode::OK);
    assert!(!n4.store_master().await.contains(&format!(":{victim}")));
}

#[test]
fn a_mix_of_url_sentinels_and_cluster_is_refused() {
    let store = "[store]\nbackend = \"redis\"\n";
    for (mix, says) in [
        (
            "url = \"redis://127.0.0.1:6379\"\ncluster = [\"127.0.0.1:7000\"]\n",
            "store: give one of url, sentinels (with sentinel_master) or cluster, not several",
        ),
        (
            "sentinels = [\"127.0.0.1:26379\"]\nsentinel_master = \"m\"\ncluster = [\"127.0.0.1:7000\"]\n",
            "store: give one of url",
        ),
        (
            "cluster = [\"127.0.0.1\"]\n",
            "store.cluster: \"127.0.0.1\": expected host:port",
        ),
        (
            "cluster = [\"127.0.0.1:7000\"]\nkey_prefix = \"app{1}:\"\n",
            "store.key_prefix: \"app{1}:\": braces are Redis Cluster hash tags",
        ),
        (
            "cluster = [\"127.0.0.1:7000\"]\nsentinel_master = \"m\"\n",
            "store.sentinel_master: is for store.sentinels only",
        ),
    ] {
        let (ok, out) = check(&format!("{store}{mix}"));
        assert!(!ok, "{mix}");
        assert!(out.contains(says), "{mix}: {out}");
    }
    let (ok, out) = check("[store]\ncluster = [\"127.0.0.1:7000\"]\n");
    assert!(!ok);
    assert!(
        out.contains("store.cluster: only the redis backend takes cluster"),
        "{out}"
    );
}

/// Propagation on a Redis Cluster beside one Redis, in the same run (five
/// rounds of 200 revocations each, alternating), for BENCHMARKS.md:
/// `cargo test --release --test integration -- --ignored --nocapture redis_cluster::`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test: run it by name"]
async fn propagation_on_a_cluster_beside_one_redis() {
    let (Some(url), Some(setup)) = (redis::shared(), ClusterSetup::start()) else {
        return;
    };
    let single = three(&node(&format!("url = \"{url}\""), &prefix(), "")).await;
    let cluster = three(&node(&cluster_store(&setup), &prefix(), "")).await;
    let (mut on_single, mut on_cluster) = (None, None);
    for _ in 0..5 {
        for (nodes, lags) in [(&single, &mut on_single), (&cluster, &mut on_cluster)] {
            let round = propagation_lags([&nodes[0], &nodes[1], &nodes[2]], 200).await;
            *lags = Some(match lags.take() {
                Some(earlier) => Lags::and(earlier, round),
                None => round,
            });
        }
    }
    println!("one Redis:     {}", on_single.unwrap());
    println!("Redis Cluster: {}", on_cluster.unwrap());
}

/// The same over TLS, verified by a CA of the test's own (`ca_file`), with
/// a client certificate it signed: the nodes serve TLS and name their TLS ports; three instances share a rate
/// and a lockout, and a revocation reaches all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_three_instances_share_one_truth() {
    let ca = tls::Ca::new("redis-ca");
    let leaf = ca.leaf("redis", &["127.0.0.1"]);
    let Some(setup) = ClusterSetup::start_tls(redis::Tls::new(&ca.cert_file, &leaf)) else {
        return;
    };
    let client = ca.leaf("portero", &["portero.test"]);
    let store = format!(
        "{}\ntls = true\nca_file = \"{}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"",
        cluster_store(&setup),
        ca.cert_file.display(),
        client.cert_file.display(),
        client.key_file.display()
    );
    let [n1, n2, n3] = three(&limited_node(&store, &prefix())).await;
    let masters = n1.store_master().await;
    assert_eq!(masters.split(',').count(), 3, "{masters}");
    for master in masters.split(',') {
        assert!(setup.addresses().contains(&master.to_string()), "{master}");
    }
    check_a_revocation_reaches_all([&n1, &n2, &n3]).await;
    let token = login(&n1).await;
    check_a_shared_rate([&n1, &n2, &n3], &token).await;
    check_tokens_refresh_tokens_and_lockouts([&n1, &n2, &n3]).await;
}
