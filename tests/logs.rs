//! `server.log_format = "json"`: every line the gateway writes is one JSON
//! object with stable field names, the access line included, and no token.

mod common;

use common::*;
use serde_json::Value;

#[tokio::test]
async fn json_logs_parse_and_name_their_fields_without_tokens() {
    let up = Upstream::start("api").await;
    let gw = Gateway::start_with_server_settings(
        "log_format = \"json\"",
        &format!(
            "{}\n{}\n[[routes]]\nname = \"orders\"\npath = \"/\"\nupstream = \"api\"\n",
            issuers(),
            upstream("api", &[up.addr], "")
        ),
    )
    .await;
    let token = Signer::Hs.sign(&claims("alice"));
    let r = reqwest::Client::new()
        .get(gw.url("/orders/7?access_token=in-the-query"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let access = gw.log_with("portero::access").await;

    let log = gw.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect();
    assert!(lines.len() >= 3, "{log}");
    for line in &lines {
        for key in ["timestamp", "level", "target"] {
            assert!(line.get(key).is_some(), "no {key}: {line}");
        }
    }
    let access: Value = access
        .lines()
        .find(|l| l.contains("portero::access"))
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap();
    assert_eq!(access["target"], "portero::access");
    assert_eq!(access["level"], "INFO");
    assert_eq!(access["method"], "GET");
    assert_eq!(access["path"], "/orders/7");
    assert_eq!(access["status"], 200);
    assert_eq!(access["route"], "orders");
    assert_eq!(access["client"], "127.0.0.1");
    assert!(access["micros"].is_u64(), "{access}");
    // Neither the token nor the query string, which may carry one.
    assert!(!log.contains(&token));
    assert!(!log.contains(token.split('.').nth(2).unwrap()));
    assert!(!log.contains("in-the-query"));
}

#[test]
fn an_unknown_log_format_is_refused() {
    let (ok, err) = check("[server]\nlog_format = \"xml\"\n[[listen]]\naddr = \"127.0.0.1:0\"\n");
    assert!(!ok);
    assert!(err.contains("server.log_format"), "{err}");
}
