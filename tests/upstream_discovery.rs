//! Upstream servers that change while the gateway runs: DNS names resolved
//! again as their answers expire (a real name server on loopback), and
//! upstream groups added or changed by a reload under load.

use crate::common;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::dns::NameServer;
use common::*;
use reqwest::StatusCode;
use serde_json::Value;

/// Two upstreams on the same port of 127.0.0.1 and 127.0.0.2, as one name's
/// two addresses would be.
async fn twin_upstreams() -> (Upstream, Upstream) {
    loop {
        let a = Upstream::start("a").await;
        let twin = SocketAddr::new(Ipv4Addr::new(127, 0, 0, 2).into(), a.addr.port());
        if std::net::TcpListener::bind(twin).is_ok() {
            let b = Upstream::start_at("b", Duration::ZERO, twin).await;
            return (a, b);
        }
    }
}

/// Which upstreams answer `n` requests.
async fn answering(gw: &Gateway, n: usize) -> HashSet<String> {
    let client = reqwest::Client::new();
    let mut seen = HashSet::new();
    for _ in 0..n {
        let r = client.get(gw.url("/x")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", gw.log());
        let body: Value = r.json().await.unwrap();
        seen.insert(body["upstream"].as_str().unwrap().to_string());
    }
    seen
}

fn set(names: &[&str]) -> HashSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn a_name_is_balanced_across_its_addresses_and_followed_as_it_changes() {
    let (a, b) = twin_upstreams().await;
    let local = Ipv4Addr::new(127, 0, 0, 1);
    let second = Ipv4Addr::new(127, 0, 0, 2);
    let dns = NameServer::start(&[local, second]).await;
    let config = format!(
        "[dns]\nservers = [\"{}\"]\nmin_ttl = \"1s\"\nmax_ttl = \"1s\"\n\n\
         [upstreams.api]\nservers = [\"orders.portero.test:{}\"]\nhealth_check = \"none\"\n\n\
         [[routes]]\npath = \"/\"\nupstream = \"api\"\npublic = true\n",
        dns.addr,
        a.addr.port()
    );
    let gw = Gateway::start(&config).await;
    assert_eq!(
        answering(&gw, 6).await,
        set(&["a", "b"]),
        "both addresses serve"
    );
    assert_eq!(
        gw.metric("portero_upstream_servers", &[("upstream", "api")])
            .await,
        2.0
    );

    // The name now has one address: once its answer expires, only that one serves.
    dns.set(&[second]);
    let followed = poll(
        Duration::from_secs(5),
        || answering(&gw, 4),
        |seen| *seen == set(&["b"]),
    )
    .await;
    assert_eq!(followed, set(&["b"]));

    // The name server fails: the last good address keeps serving, and the
    // failure shows in the log and the metrics.
    dns.fail();
    let failures = [("upstream", "api"), ("result", "error")];
    gw.wait_metric("portero_upstream_resolutions_total", &failures, 1.0)
        .await;
    assert!(
        gw.metric("portero_upstream_resolutions_total", &failures)
            .await
            >= 1.0
    );
    assert!(gw
        .log_with("upstream name did not resolve; keeping its last addresses")
        .await
        .contains("orders.portero.test"));
    assert_eq!(answering(&gw, 4).await, set(&["b"]));

    // It answers again, with both: both serve again.
    dns.set(&[local, second]);
    let back = poll(
        Duration::from_secs(5),
        || answering(&gw, 6),
        |seen| *seen == set(&["a", "b"]),
    )
    .await;
    assert_eq!(back, set(&["a", "b"]));
    drop((a, b));
}

fn reload_config(upstreams: &str, routes: &str) -> String {
    format!("{upstreams}\n{routes}")
}

fn route(path: &str, upstream: &str) -> String {
    format!("[[routes]]\npath = \"{path}\"\nupstream = \"{upstream}\"\npublic = true\n")
}

async fn reload(gw: &Gateway) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(gw.admin_url("/admin/reload"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

#[tokio::test]
async fn upstreams_added_and_changed_by_reload_under_load_fail_no_request() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let c = Upstream::start("c").await;
    let first = reload_config(&upstream("api", &[a.addr], ""), &route("/", "api"));
    let gw = Arc::new(Gateway::start(&first).await);

    // A steady load on the running route for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (gw, stop, failed, sent) = (gw.clone(), stop.clone(), failed.clone(), sent.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    let ok = match client.get(gw.url("/load")).send().await {
                        Ok(r) => r.status() == StatusCode::OK,
                        Err(_) => false,
                    };
                    sent.fetch_add(1, Ordering::Relaxed);
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A new upstream group and a route to it.
    gw.rewrite_config(&reload_config(
        &format!(
            "{}{}",
            upstream("api", &[a.addr], ""),
            upstream("billing", &[c.addr], "")
        ),
        &format!("{}{}", route("/billing", "billing"), route("/", "api")),
    ));
    let (code, answer) = reload(&gw).await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    let r: Value = reqwest::get(gw.url("/billing/1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["upstream"], "c");
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The loaded group changes servers: a, then a and b, then b alone.
    for servers in [vec![a.addr, b.addr], vec![b.addr]] {
        gw.rewrite_config(&reload_config(
            &format!(
                "{}{}",
                upstream("api", &servers, ""),
                upstream("billing", &[c.addr], "")
            ),
            &format!("{}{}", route("/billing", "billing"), route("/", "api")),
        ));
        let (code, answer) = reload(&gw).await;
        assert_eq!(code, StatusCode::OK, "{answer}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let before = b.requests();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let a_before = a.requests();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert!(b.requests() > before, "the load moved to b");
    assert_eq!(a.requests(), a_before, "a, removed, gets nothing more");
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent > 50, "the load ran: {sent} requests");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "of {sent}:\n{}",
        gw.log()
    );

    // The removed group's gauges are gone; the new one's are there.
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("portero_upstream_servers{upstream=\"billing\"} 1"),
        "{metrics}"
    );
}
