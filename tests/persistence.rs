//! The embedded store: revocations and generated keys survive a restart and
//! a `kill -9` right after the revocation was acknowledged.

mod common;

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
