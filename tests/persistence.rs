//! The embedded store: revocations and generated keys survive a restart and
//! a `kill -9` right after the revocation was acknowledged.

use crate::common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn revocations_survive_kill_9() {
    let up = Upstream::start("api").await;
    let config = format!(
        "{}\n{}\n[[routes]]\npath = \"/\"\nupstream = \"api\"\n",
        issuers(),
        upstream("api", &[up.addr], "")
    );
    let mut gw = Gateway::start(&config).await;
    let c = claims("erin");
    let token = Signer::Hs.sign(&c);
    let client = reqwest::Client::new();
    let get = |t: String| client.get(gw.url("/x")).bearer_auth(t).send();
    assert_eq!(get(token.clone()).await.unwrap().status(), StatusCode::OK);

    assert_eq!(
        gw.revoke(json!({"jti": c["jti"]})).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        gw.revoke(json!({"sub": "frank", "issuer": "test"}))
            .await
            .status(),
        StatusCode::OK
    );
    gw.kill9_and_restart().await;

    let get = |t: String| client.get(gw.url("/x")).bearer_auth(t).send();
    assert_eq!(get(token).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(Signer::Hs.sign(&claims("frank")))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(Signer::Hs.sign(&claims("grace")))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let list = gw.revocations().await;
    assert_eq!(list.len(), 2, "{list:?}");
}

/// Failed logins with long, unique identifiers: each leaves a record of the
/// same small size (the login is hashed), and one past the field limit
/// leaves none, so 10,000 of them cannot grow the store by much.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_with_long_unique_identifiers_keep_the_store_small() {
    let body = demo_body().replace(
        "dialect = \"client-flat\"",
        "dialect = \"client-flat\"\nip_max_failures = 1000000",
    );
    let gw = Gateway::start_with_server_settings("threads = 2", &body).await;
    let store = gw.dir.path().join("data/portero.redb");
    let before = std::fs::metadata(&store).unwrap().len();
    let client = reqwest::Client::new();
    let attempt = |id: String| {
        let body = json!({ "client_id": id, "client_secret": "wrong" }).to_string();
        let request = client
            .post(gw.url("/api/v1/auth"))
            .header("content-type", "application/json")
            .body(body)
            .send();
        async move { request.await.unwrap().status() }
    };
    // Over the field limit: refused before any lockout record is made.
    assert_eq!(attempt("x".repeat(60_000)).await, StatusCode::BAD_REQUEST);
    let mut next = 0;
    while next < 10_000 {
        let batch = (next..next + 50).map(|i| attempt(format!("{i:05}{}", "y".repeat(500))));
        for status in futures_util::future::join_all(batch).await {
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        next += 50;
    }
    let grown = std::fs::metadata(&store).unwrap().len() - before;
    // A client's failures are counted per address and client-wide: 20,000
    // records keyed by hashes of about a hundred bytes; 510-byte logins as
    // keys would be over 10 MB, the 60 KB one alone 60 KB.
    assert!(grown < 7 * 1024 * 1024, "the store grew by {grown} bytes");
}
