//! HTTPS upstreams: a private CA given as `ca_file`, the server's name
//! verified (its IP address, a DNS name, or `sni`), a client certificate
//! for servers that demand one, and `502` with the reason in the log when
//! any of it does not hold.

use crate::common;

use common::tls::{Ca, TlsUpstream};
use common::*;
use reqwest::StatusCode;
use serde_json::Value;

fn config(servers: &str, tls: &str) -> String {
    format!(
        "[upstreams.api]\nservers = [\"{servers}\"]\nhealth_check = \"none\"\ntls = true\n{tls}\n\n\
         [[routes]]\npath = \"/\"\nupstream = \"api\"\npublic = true\n"
    )
}

fn ca_file(ca: &Ca) -> String {
    format!("ca_file = \"{}\"\n", ca.cert_file.display())
}

async fn get(gw: &Gateway) -> (StatusCode, Value) {
    let r = reqwest::get(gw.url("/x")).await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn an_upstream_signed_by_a_private_ca_is_reached_by_ip_name_or_sni() {
    let ca = Ca::new("private-ca");
    let leaf = ca.leaf("server", &["localhost", "127.0.0.1", "orders.internal"]);
    let up = TlsUpstream::start("secure", &leaf, None).await;
    let port = up.addr.port();

    // By IP address: the certificate must name the address.
    let gw = Gateway::start(&config(&format!("127.0.0.1:{port}"), &ca_file(&ca))).await;
    let (status, body) = get(&gw).await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", gw.log());
    assert_eq!(body["upstream"], "secure");
    assert_eq!(body["client_cert"], false);
    // Pooled: a second request on the same TLS connection works too.
    assert_eq!(get(&gw).await.0, StatusCode::OK);
    drop(gw);

    // By name (resolved through /etc/hosts), verified as that name.
    let gw = Gateway::start(&config(&format!("localhost:{port}"), &ca_file(&ca))).await;
    assert_eq!(get(&gw).await.0, StatusCode::OK, "{}", gw.log());
    drop(gw);

    // By address with `sni`: the name sent and verified is the configured one.
    let with_sni = format!("{}sni = \"orders.internal\"\n", ca_file(&ca));
    let gw = Gateway::start(&config(&format!("127.0.0.1:{port}"), &with_sni)).await;
    assert_eq!(get(&gw).await.0, StatusCode::OK, "{}", gw.log());
    drop(gw);

    // A name the certificate does not hold is refused.
    let wrong_sni = format!("{}sni = \"billing.internal\"\n", ca_file(&ca));
    let gw = Gateway::start(&config(&format!("127.0.0.1:{port}"), &wrong_sni)).await;
    let (status, body) = get(&gw).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let line = gw.log_with("upstream TLS handshake failed").await;
    assert!(
        line.contains("not valid for name \"billing.internal\""),
        "{line}"
    );
}

#[tokio::test]
async fn a_certificate_from_another_ca_or_the_system_roots_alone_is_502() {
    let ca = Ca::new("private-ca");
    let other = Ca::new("other-ca");
    let leaf = ca.leaf("server", &["127.0.0.1"]);
    let up = TlsUpstream::start("secure", &leaf, None).await;
    let server = up.addr.to_string();

    for tls in [ca_file(&other), String::new()] {
        let gw = Gateway::start(&config(&server, &tls)).await;
        let (status, body) = get(&gw).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{tls}: {body}");
        assert_eq!(body["error"], "bad_gateway");
        let line = gw.log_with("upstream TLS handshake failed").await;
        assert!(line.contains("UnknownIssuer"), "{line}");
    }
}

#[tokio::test]
async fn an_upstream_demanding_a_client_certificate_gets_one_or_the_request_is_502() {
    let ca = Ca::new("private-ca");
    let clients = Ca::new("client-ca");
    let leaf = ca.leaf("server", &["127.0.0.1"]);
    let client = clients.leaf("gateway", &["portero.internal"]);
    let up = TlsUpstream::start("mtls", &leaf, Some(&clients)).await;
    let server = up.addr.to_string();

    let with_cert = format!(
        "{}client_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
        ca_file(&ca),
        client.cert_file.display(),
        client.key_file.display()
    );
    let gw = Gateway::start(&config(&server, &with_cert)).await;
    let (status, body) = get(&gw).await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", gw.log());
    assert_eq!(body["client_cert"], true);
    drop(gw);

    // Without it, the server refuses the handshake: 502, and the log says why.
    let gw = Gateway::start(&config(&server, &ca_file(&ca))).await;
    let (status, body) = get(&gw).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let line = gw.log_with("upstream TLS").await;
    assert!(line.contains("CertificateRequired"), "{line}");
}

#[tokio::test]
async fn protocol_h2_speaks_http2_over_tls_many_streams_on_one_connection() {
    let ca = Ca::new("private-ca");
    let leaf = ca.leaf("server", &["127.0.0.1"]);
    let up = TlsUpstream::start("secure", &leaf, None).await;
    let tls = format!("{}protocol = \"h2\"\n", ca_file(&ca));
    let gw = Gateway::start(&config(&up.addr.to_string(), &tls)).await;
    let client = reqwest::Client::new();
    let calls = (0..20).map(|i| client.get(gw.url(&format!("/x/{i}"))).send());
    for r in futures_util::future::join_all(calls).await {
        let r = r.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", gw.log());
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["version"], "HTTP/2.0");
    }
    // The same group over HTTP/1.1 says so too.
    let gw = Gateway::start(&config(&up.addr.to_string(), &ca_file(&ca))).await;
    assert_eq!(get(&gw).await.1["version"], "HTTP/1.1");
}
