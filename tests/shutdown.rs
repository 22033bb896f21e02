//! Stopping the real gateway: SIGTERM drains (not ready, still serving, then
//! open requests finish), SIGINT stops at once.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;

fn slow_public_route(up: &Upstream) -> String {
    format!(
        "{}\n[[routes]]\npath = \"/\"\nupstream = \"api\"\npublic = true\n",
        upstream("api", &[up.addr], "health_check = \"none\"")
    )
}

#[tokio::test]
async fn sigterm_reports_not_ready_then_lets_open_requests_finish() {
    let slow = Upstream::start_with_delay("slow", Duration::from_millis(1500)).await;
    let mut gw = Gateway::start_with_server_settings(
        "grace_period = \"500ms\"\nshutdown_timeout = \"5s\"",
        &slow_public_route(&slow),
    )
    .await;
    let in_flight = tokio::spawn(reqwest::get(gw.url("/in-flight")));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let signalled = Instant::now();
    gw.signal("TERM");
    let (code, status) = gw.wait_readiness("not_ready").await;
    assert_eq!((code, status.as_str()), (503, "not_ready"));
    assert!(
        signalled.elapsed() < Duration::from_millis(500),
        "not ready at once"
    );

    // After the grace period, while the open request is still upstream: the
    // process runs on, but the listener takes no new connection.
    tokio::time::sleep_until((signalled + Duration::from_millis(800)).into()).await;
    assert!(
        gw.wait_exit(Duration::ZERO).await.is_none(),
        "still draining"
    );
    assert!(
        reqwest::get(gw.url("/after-grace")).await.is_err(),
        "no new connections once the grace period is over"
    );

    // The request that was already upstream gets its answer.
    let r = in_flight.await.unwrap().unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", gw.log());
    let status = gw.wait_exit(Duration::from_secs(5)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "exits cleanly once drained: {status:?}\n{}",
        gw.log()
    );
    assert!(
        signalled.elapsed() >= Duration::from_millis(1300),
        "waited for the open request"
    );
}

#[tokio::test]
async fn sigterm_cuts_off_what_outlasts_the_shutdown_timeout() {
    let stuck = Upstream::start_with_delay("stuck", Duration::from_secs(30)).await;
    let mut gw = Gateway::start_with_server_settings(
        "grace_period = \"0s\"\nshutdown_timeout = \"500ms\"",
        &slow_public_route(&stuck),
    )
    .await;
    let in_flight = tokio::spawn(reqwest::get(gw.url("/stuck")));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let signalled = Instant::now();
    gw.signal("TERM");
    let status = gw.wait_exit(Duration::from_secs(5)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(signalled.elapsed() < Duration::from_secs(3));
    assert!(
        in_flight.await.unwrap().is_err(),
        "the stuck request is cut"
    );
}

#[tokio::test]
async fn sigint_stops_at_once() {
    let up = Upstream::start("api").await;
    let mut gw = Gateway::start_with_server_settings(
        "grace_period = \"10s\"\nshutdown_timeout = \"10s\"",
        &slow_public_route(&up),
    )
    .await;
    let signalled = Instant::now();
    gw.signal("INT");
    let status = gw.wait_exit(Duration::from_secs(5)).await;
    assert!(status.is_some(), "still running after SIGINT");
    assert!(signalled.elapsed() < Duration::from_secs(2));
}
