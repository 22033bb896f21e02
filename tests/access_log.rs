//! The access log: every request has its line, in text and in JSON, and a
//! log nobody reads drops lines (counted) rather than slow a request.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use futures_util::stream::{self, StreamExt};

/// A public route to the built-in echo upstream.
const OPEN: &str = "[upstreams.echo]\nbuiltin = \"echo\"\n\n\
                    [[routes]]\nname = \"open\"\npath = \"/\"\nupstream = \"echo\"\npublic = true\n";

/// `count` GETs of `/n/0` ... `/n/{count - 1}` on `port`, 32 at a time;
/// the statuses, in no order.
async fn requests(port: u16, count: usize) -> Vec<u16> {
    let client = reqwest::Client::new();
    stream::iter(0..count)
        .map(|i| {
            let client = client.clone();
            async move {
                match client
                    .get(format!("http://127.0.0.1:{port}/n/{i}?q=secret-{i}"))
                    .send()
                    .await
                {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                }
            }
        })
        .buffer_unordered(32)
        .collect()
        .await
}

/// The paths of the access lines in `log`, text or JSON.
fn logged_paths(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("portero::access"))
        .map(|l| {
            let text = as_text(l);
            let after = text.split("path=").nth(1).unwrap_or_default();
            after
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .trim_matches('"')
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn every_request_has_its_line_in_text_and_in_json() {
    const N: usize = 2000;
    for format in ["text", "json"] {
        let gw =
            Gateway::start_with_server_settings(&format!("log_format = \"{format}\""), OPEN).await;
        let statuses = requests(gw.port, N).await;
        assert!(statuses.iter().all(|&s| s == 200), "{format}: {statuses:?}");
        // Written within about 50 ms; a second is plenty on a loaded machine.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut paths = logged_paths(&gw.log());
        while paths.len() < N && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            paths = logged_paths(&gw.log());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let log = gw.log();
        let mut paths = logged_paths(&log);
        assert_eq!(
            paths.len(),
            N,
            "{format}: {} lines for {N} requests",
            paths.len()
        );
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), N, "{format}: a request logged twice");
        assert!((0..N).all(|i| paths.binary_search(&format!("/n/{i}")).is_ok()));
        assert!(
            !log.contains("secret-"),
            "{format}: a query string in the log"
        );
        if format == "json" {
            for line in log.lines() {
                serde_json::from_str::<serde_json::Value>(line)
                    .unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
            }
        }
        assert_eq!(gw.metric("portero_log_lines_dropped_total", &[]).await, 0.0);
    }
}

/// Started with stderr a pipe that is read only until the listeners are
/// logged: the writer blocks on it, the threads' buffers fill, and lines
/// are dropped while every request is still answered.
#[tokio::test]
async fn a_log_nobody_reads_drops_lines_not_requests() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nthreads = 2\ndata_dir = \"{}\"\n\n[[listen]]\naddr = \"127.0.0.1:0\"\n\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\n{OPEN}",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(portero_binary())
        .arg("--config")
        .arg(&config)
        .env("PORTERO_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("PORTERO_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let port_after = |line: &str, what: &str| -> Option<u16> {
        let addr = line.split(what).nth(1)?.split_whitespace().next()?;
        addr.rsplit(':').next()?.parse().ok()
    };
    let (mut port, mut admin) = (None, None);
    let mut line = String::new();
    while port.is_none() || admin.is_none() {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "portero exited");
        port = port.or(port_after(&line, "public listener addr="));
        admin = admin.or(port_after(&line, "admin listening addr="));
    }
    // From here on nobody reads: the pipe holds 64 KiB, then the writer waits.
    let (port, admin) = (port.unwrap(), admin.unwrap());
    let ready = Instant::now() + Duration::from_secs(10);
    while reqwest::get(format!("http://127.0.0.1:{admin}/readyz"))
        .await
        .map(|r| r.status().as_u16())
        .ok()
        != Some(200)
    {
        assert!(Instant::now() < ready, "not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let started = Instant::now();
    let statuses = requests(port, 12_000).await;
    let took = started.elapsed();
    let failed = statuses.iter().filter(|&&s| s != 200).count();
    let metrics = reqwest::get(format!("http://127.0.0.1:{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dropped: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("portero_log_lines_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let _ = child.kill();
    let _ = child.wait();
    drop(stderr);
    assert_eq!(failed, 0, "requests failed while the log was stalled");
    assert!(
        dropped > 0.0,
        "no line dropped in 12,000 requests ({took:?})"
    );
    println!("12,000 requests in {took:?} with the log stalled; {dropped} lines dropped");
}
