//! `POST /admin/reload`: a good config swaps routes, keys and upstreams at
//! once; a bad one leaves the running config untouched.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

fn body(up: &Upstream, roles: &str) -> String {
    format!(
        "{}\n{}\n[[routes]]\nname = \"orders\"\npath = \"/orders\"\nupstream = \"api\"\nroles = [{roles}]\n",
        issuers(),
        upstream("api", &[up.addr], "")
    )
}

async fn reload(gw: &Gateway, token: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(gw.admin_url("/admin/reload"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

async fn status(gw: &Gateway, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(gw.url("/orders"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn reload_swaps_routes_and_keeps_the_old_config_on_errors() {
    let up = Upstream::start("api").await;
    let gw = Gateway::start(&body(&up, "\"ADMIN\"")).await;
    let token = Signer::Hs.sign(&claims("alice"));
    assert_eq!(status(&gw, &token).await, StatusCode::OK);

    // Needs the admin token.
    assert_eq!(reload(&gw, "wrong").await.0, StatusCode::UNAUTHORIZED);

    // A stricter route: the same token is now short of a role.
    gw.rewrite_config(&body(&up, "\"SUPERUSER\""));
    let (code, answer) = reload(&gw, ADMIN_TOKEN).await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    assert_eq!(status(&gw, &token).await, StatusCode::FORBIDDEN);

    // A broken config is refused, naming the problem; the running one stays.
    gw.rewrite_config(
        &body(&up, "\"ADMIN\"").replace("upstream = \"api\"\nroles", "upstream = \"nope\"\nroles"),
    );
    let (code, answer) = reload(&gw, ADMIN_TOKEN).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("no upstream named \"nope\""),
        "{answer}"
    );
    assert_eq!(status(&gw, &token).await, StatusCode::FORBIDDEN);

    // Another server for the upstream: requests go there from now on.
    let other = Upstream::start("other").await;
    gw.rewrite_config(&body(&other, "\"ADMIN\""));
    let (code, answer) = reload(&gw, ADMIN_TOKEN).await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    let r: Value = reqwest::Client::new()
        .get(gw.url("/orders"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["upstream"], "other");

    // A renamed route is counted under its new name.
    gw.rewrite_config(&body(&up, "\"ADMIN\"").replace("\"orders\"", "\"orders-v2\""));
    let (code, answer) = reload(&gw, ADMIN_TOKEN).await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    assert_eq!(status(&gw, &token).await, StatusCode::OK);
    let allowed = [("route", "orders-v2"), ("result", "allow")];
    assert_eq!(
        gw.wait_metric("portero_auth_decisions_total", &allowed, 1.0)
            .await,
        1.0
    );
    let route = [("route", "orders-v2")];
    assert_eq!(
        gw.wait_metric("portero_http_request_duration_seconds_count", &route, 1.0)
            .await,
        1.0
    );
}

#[tokio::test]
async fn admin_api_refuses_with_503_when_its_token_is_unset() {
    let up = Upstream::start("api").await;
    let gw = Gateway::start_with_admin_token(&body(&up, "\"ADMIN\""), None).await;
    for token in [ADMIN_TOKEN, ""] {
        let (code, answer) = reload(&gw, token).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("PORTERO_ADMIN_TOKEN"),
            "{answer}"
        );
    }
    assert!(
        gw.log().contains("PORTERO_ADMIN_TOKEN is not set"),
        "said at start-up:\n{}",
        gw.log()
    );
    // Health and metrics stay open.
    assert_eq!(
        reqwest::get(gw.admin_url("/healthz"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

async fn reloads(gw: &Gateway, result: &str) -> f64 {
    gw.metric("portero_config_reloads_total", &[("result", result)])
        .await
}

#[tokio::test]
async fn sighup_reloads_like_the_admin_api_and_a_bad_file_keeps_the_running_config() {
    let up = Upstream::start("api").await;
    let mut gw = Gateway::start(&body(&up, "\"ADMIN\"")).await;
    let token = Signer::Hs.sign(&claims("alice"));
    assert_eq!(status(&gw, &token).await, StatusCode::OK);

    // A stricter route by SIGHUP: the process lives on, the token is now short.
    gw.rewrite_config(&body(&up, "\"SUPERUSER\""));
    gw.signal("HUP");
    let forbidden = poll(
        std::time::Duration::from_secs(5),
        || status(&gw, &token),
        |s| *s == StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(forbidden, StatusCode::FORBIDDEN, "{}", gw.log());
    assert_eq!(reloads(&gw, "ok").await, 1.0);

    // A file that does not load: logged, counted, and the running config stays.
    gw.rewrite_config("[[routes]]\npath = 3\n");
    gw.signal("HUP");
    gw.wait_metric("portero_config_reloads_total", &[("result", "error")], 1.0)
        .await;
    assert_eq!(reloads(&gw, "error").await, 1.0);
    assert!(gw
        .log_with("config not reloaded; the running one stays")
        .await
        .contains("gateway.toml"));
    assert_eq!(status(&gw, &token).await, StatusCode::FORBIDDEN);
    assert!(
        gw.wait_exit(std::time::Duration::from_millis(200))
            .await
            .is_none(),
        "SIGHUP does not stop the gateway"
    );
}
