//! Mutual TLS (RFC 8705) against the real gateway: a listener that asks
//! for client certificates (`client_ca_file`), a client that authenticates
//! with its certificate at the token endpoint (`tls_client_auth`, asked
//! with curl), the certificate-bound token it gets, taken at a route only
//! over a connection with that certificate, and the certificate passed
//! upstream in RFC 9440's fields where a route asks for it.

use crate::common;

use std::process::Command;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::standard::*;
use common::tls::{Ca, Leaf};
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `standard_body` behind a TLS listener that takes client certificates
/// of `ca`, with a client that authenticates with one naming
/// `billing.example`, and a route that passes the certificate upstream.
fn body(ca: &Ca, server: &Leaf) -> String {
    let tls = format!(
        "[[listen]]\naddr = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
         client_ca_file = \"{}\"\nclient_certificates = \"optional\"\n\n",
        server.cert_file.display(),
        server.key_file.display(),
        ca.cert_file.display(),
    );
    let client = "[[issuers.app.clients]]\nclient_id = \"billing-mtls\"\n\
                  auth_method = \"tls_client_auth\"\ntls_client_auth_san_dns = \"billing.example\"\n\
                  scopes = [\"invoices\"]\n\n\
                  [[issuers.app.clients]]\nclient_id = \"spa-mtls\"\n\
                  redirect_uris = [\"http://127.0.0.1/callback\"]\nscopes = [\"notes:read\"]\n\
                  tls_client_certificate_bound_access_tokens = true\n\n\
                  [[routes]]\nname = \"certified\"\npath = \"/certified\"\nupstream = \"echo\"\n\
                  public = true\nforward_client_cert = true\n\n";
    let body = standard_body("");
    let at = body.find("[[routes]]").unwrap();
    format!("{tls}{}{client}{}", &body[..at], &body[at..])
}

/// curl, over the TLS listener, showing `cert` when given: the status and body.
fn curl(ca: &Ca, cert: Option<&Leaf>, args: &[&str]) -> (u16, String) {
    let mut command = Command::new("curl");
    command.args(["-sS", "--cacert"]).arg(&ca.cert_file);
    if let Some(cert) = cert {
        command.arg("--cert").arg(&cert.cert_file);
        command.arg("--key").arg(&cert.key_file);
    }
    command.args(["-w", "\n%{http_code}"]).args(args);
    let out = command.output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

fn thumbprint(leaf: &Leaf) -> String {
    let der = CertificateDer::from_pem_file(&leaf.cert_file).unwrap();
    URL_SAFE_NO_PAD.encode(Sha256::digest(der.as_ref()))
}

#[tokio::test]
async fn a_client_certificate_authenticates_its_client_and_binds_its_tokens() {
    let ca = Ca::new("clients-ca");
    let server = ca.leaf("server", &["localhost", "127.0.0.1"]);
    let billing = ca.leaf("billing", &["billing.example"]);
    let other = ca.leaf("other", &["other.example"]);
    let body = body(&ca, &server);
    let gw = Gateway::start(&body).await;
    let base = format!("https://localhost:{}", gw.tls_port());
    gw.rewrite_config_with_server(
        &format!(
            "public_url = \"{}\"\nmtls_public_url = \"{base}\"",
            gw.url("")
        ),
        &body,
    );
    gw.reload().await;
    let token_endpoint = format!("{base}/oauth2/app/token");
    let form = [
        "-d",
        "grant_type=client_credentials",
        "-d",
        "client_id=billing-mtls",
    ];
    let ask = |cert| {
        let mut args = form.to_vec();
        args.push(&token_endpoint);
        curl(&ca, cert, &args)
    };
    // tls_client_auth: the certificate naming the client, and no other.
    let (status, answer) = ask(Some(&billing));
    assert_eq!(status, 200, "{answer}\n{}", gw.log());
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["token_type"], "Bearer", "{answer}");
    let token = answer["access_token"].as_str().unwrap().to_string();
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["cnf"]["x5t#S256"], thumbprint(&billing), "{claims}");
    for cert in [Some(&other), None] {
        let (status, answer) = ask(cert);
        assert_eq!(status, 401, "{answer}");
        assert!(answer.contains("invalid_client"), "{answer}");
    }
    // Introspection (the client authenticated the same way) says what binds it.
    let introspect = format!("{base}/oauth2/app/introspect");
    let token_field = format!("token={token}");
    let args = [
        "-d",
        &token_field,
        "-d",
        "client_id=billing-mtls",
        &introspect,
    ];
    let (status, answer) = curl(&ca, Some(&billing), &args);
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["cnf"]["x5t#S256"], thumbprint(&billing), "{answer}");
    // The bound token: over a connection with its certificate only.
    let bearer = format!("authorization: Bearer {token}");
    let notes = format!("{base}/notes");
    let (status, answer) = curl(&ca, Some(&billing), &["-H", &bearer, &notes]);
    assert_eq!(status, 200, "{answer}");
    for cert in [Some(&other), None] {
        let (status, answer) = curl(&ca, cert, &["-H", &bearer, &notes]);
        assert_eq!(status, 401, "{answer}");
        assert!(
            answer.contains("client certificate does not match the token"),
            "{answer}"
        );
    }
    assert_eq!(
        status_with(&gw, "/notes", &token).await,
        401,
        "over the plain listener"
    );
    // The metadata names the method, the binding and the mutual-TLS aliases.
    let metadata = metadata(&gw).await;
    assert_eq!(metadata["tls_client_certificate_bound_access_tokens"], true);
    assert_eq!(
        metadata["mtls_endpoint_aliases"]["token_endpoint"],
        token_endpoint
    );
    let methods = metadata["token_endpoint_auth_methods_supported"].to_string();
    assert!(methods.contains("tls_client_auth"), "{methods}");
    // RFC 9440: the certificate upstream, where the route asks for it;
    // a client's own Client-Cert never goes on.
    let certified = format!("{base}/certified");
    let spoofed = "client-cert: :c3Bvb2ZlZA==:";
    let (status, echoed) = curl(&ca, Some(&billing), &["-H", spoofed, &certified]);
    assert_eq!(status, 200, "{echoed}");
    let echoed: Value = serde_json::from_str(&echoed).unwrap();
    let der = CertificateDer::from_pem_file(&billing.cert_file).unwrap();
    let field = format!(":{}:", STANDARD.encode(der.as_ref()));
    assert_eq!(echoed["headers"]["client-cert"], field.as_str());
    let (_, echoed) = curl(&ca, None, &["-H", spoofed, &certified]);
    let echoed: Value = serde_json::from_str(&echoed).unwrap();
    assert!(echoed["headers"].get("client-cert").is_none(), "{echoed}");
}

/// Behind a TLS-terminating proxy in `trusted_proxies`, its `Client-Cert`
/// field is the client's certificate; from anyone else, nothing.
#[tokio::test]
async fn a_trusted_proxys_client_cert_field_is_the_clients_certificate() {
    let ca = Ca::new("proxy-ca");
    let server = ca.leaf("server", &["localhost"]);
    let billing = ca.leaf("billing", &["billing.example"]);
    let body = body(&ca, &server);
    let gw = Gateway::start(&body).await;
    let public_url = gw.url("");
    let trusted = format!("public_url = \"{public_url}\"\ntrusted_proxies = [\"127.0.0.1/32\"]");
    gw.rewrite_config_with_server(&trusted, &body);
    gw.reload().await;
    // A proxy trusted for X-Forwarded-For alone passes no certificate on.
    let r = reqwest::Client::new()
        .post(gw.url("/oauth2/app/token"))
        .header(
            "client-cert",
            format!(
                ":{}:",
                STANDARD.encode(
                    CertificateDer::from_pem_file(&billing.cert_file)
                        .unwrap()
                        .as_ref()
                )
            ),
        )
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "billing-mtls"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    gw.rewrite_config_with_server(
        &format!("{trusted}\nclient_cert_from_proxies = true"),
        &body,
    );
    gw.reload().await;
    let der = CertificateDer::from_pem_file(&billing.cert_file).unwrap();
    let field = format!(":{}:", STANDARD.encode(der.as_ref()));
    let ask = |field: Option<&str>| {
        let mut r = reqwest::Client::new()
            .post(gw.url("/oauth2/app/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "billing-mtls"),
            ]);
        if let Some(field) = field {
            r = r.header("client-cert", field);
        }
        r.send()
    };
    let r = ask(Some(&field)).await.unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    let token = answer["access_token"].as_str().unwrap();
    let r = reqwest::Client::new()
        .get(gw.url("/notes"))
        .bearer_auth(token)
        .header("client-cert", &field)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(ask(None).await.unwrap().status(), 401);
    assert_eq!(ask(Some(":bm90IGEgY2VydA==:")).await.unwrap().status(), 401);
    // The certificate a trusted proxy shows in its own handshake is the
    // proxy's: without the field, the client showed none.
    let token_endpoint = format!("https://localhost:{}/oauth2/app/token", gw.tls_port());
    let form = [
        "-d",
        "grant_type=client_credentials",
        "-d",
        "client_id=billing-mtls",
    ];
    let (status, answer) = curl(
        &ca,
        Some(&billing),
        &[&form[..], &[&token_endpoint]].concat(),
    );
    assert_eq!(status, 401, "{answer}");
    // Untrusted again: the field is anyone's, and names nobody.
    gw.rewrite_config_with_server(&format!("public_url = \"{public_url}\""), &body);
    gw.reload().await;
    assert_eq!(ask(Some(&field)).await.unwrap().status(), 401);
}

/// Behind a balancer's PROXY header, a `Client-Cert` field is the one a
/// trusted proxy the header names passed on; where the header names no
/// client (a health check, or a client the balancer could not name), no
/// proxy vouches for it, and it names nobody.
#[tokio::test]
async fn a_client_cert_field_after_a_proxy_header_naming_nobody_names_nobody() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = Ca::new("proxy-protocol-ca");
    let server = ca.leaf("server", &["localhost"]);
    let billing = ca.leaf("billing", &["billing.example"]);
    let body = format!(
        "[[listen]]\naddr = \"127.0.0.1:0\"\nproxy_protocol = true\n\n{}",
        body(&ca, &server)
    );
    let trusted = "trusted_proxies = [\"127.0.0.1/32\"]\nclient_cert_from_proxies = true";
    let gw = Gateway::start_with_server_settings(trusted, &body).await;
    let der = CertificateDer::from_pem_file(&billing.cert_file).unwrap();
    let form = "grant_type=client_credentials&client_id=billing-mtls";
    let status = |proxy_header: &'static [u8]| {
        let request = format!(
            "POST /oauth2/app/token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Client-Cert: :{}:\r\n\r\n{form}",
            form.len(),
            STANDARD.encode(der.as_ref())
        );
        let port = gw.public_port(1);
        async move {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            s.write_all(&[proxy_header, request.as_bytes()].concat())
                .await
                .unwrap();
            let mut answer = Vec::new();
            s.read_to_end(&mut answer).await.unwrap();
            let head = String::from_utf8_lossy(&answer).to_string();
            head.split_whitespace().nth(1).map(str::to_string)
        }
    };
    // The header names a trusted proxy: what it passed on is believed.
    let named = status(b"PROXY TCP4 127.0.0.1 127.0.0.1 50000 80\r\n").await;
    assert_eq!(named.as_deref(), Some("200"));
    // Named by nobody: the balancer's address, not trusted.
    for header in [
        &b"PROXY UNKNOWN\r\n"[..],
        b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00",
    ] {
        assert_eq!(status(header).await.as_deref(), Some("401"), "{header:?}");
    }
}

/// `client_certificates = "any"`: a self-signed certificate authenticates
/// the client registered with it (`self_signed_tls_client_auth`), names
/// nobody for `tls_client_auth`, and a public client's refresh token is
/// bound to the certificate its code was redeemed over (RFC 8705 §4); its
/// access token opens userinfo over that certificate only.
#[tokio::test]
async fn any_certificate_serves_self_signed_clients_and_binds_public_refresh_tokens() {
    let ca = Ca::new("any-ca");
    let server = ca.leaf("server", &["localhost"]);
    let billing = ca.leaf("billing", &["billing.example"]);
    // Self-signed, naming billing.example as well.
    let made = rcgen::generate_simple_self_signed(vec!["billing.example".to_string()]).unwrap();
    let selfie = Leaf {
        cert_file: ca.dir.path().join("selfie.pem"),
        key_file: ca.dir.path().join("selfie.key"),
    };
    std::fs::write(&selfie.cert_file, made.cert.pem()).unwrap();
    std::fs::write(&selfie.key_file, made.signing_key.serialize_pem()).unwrap();
    let der = STANDARD.encode(made.cert.der().as_ref());
    let self_signed = format!(
        "[[issuers.app.clients]]\nclient_id = \"selfie\"\nauth_method = \"self_signed_tls_client_auth\"\n\
         scopes = [\"invoices\"]\njwks = {{ keys = [{{ kty = \"EC\", crv = \"P-256\", \
         x = \"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\", y = \"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\", \
         x5c = [\"{der}\"] }}] }}\n\n"
    );
    let body = body(&ca, &server)
        .replace(
            "client_certificates = \"optional\"",
            "client_certificates = \"any\"",
        )
        .replacen(
            "[[issuers.app.clients]]",
            &format!("{self_signed}[[issuers.app.clients]]"),
            1,
        );
    let gw = Gateway::start(&body).await;
    gw.public_url(&body).await;
    let base = format!("https://localhost:{}", gw.tls_port());
    let token_endpoint = format!("{base}/oauth2/app/token");
    let grant = |id: &str| format!("client_id={id}");
    for (id, cert, want) in [
        ("selfie", &selfie, 200),
        ("selfie", &billing, 401),
        // Its name, in a certificate no root vouches for: nobody.
        ("billing-mtls", &selfie, 401),
        ("billing-mtls", &billing, 200),
    ] {
        let id = grant(id);
        let args = [
            "-d",
            "grant_type=client_credentials",
            "-d",
            &id,
            &token_endpoint,
        ];
        let (status, answer) = curl(&ca, Some(cert), &args);
        assert_eq!(status, want, "{id} {}: {answer}", cert.cert_file.display());
    }
    // The public client's code, redeemed over billing's certificate.
    let (verifier, challenge) = common::standard::pkce();
    let url = authorize_url_for(
        &gw,
        "spa-mtls",
        CALLBACK,
        "openid offline_access notes:read",
        &format!("&code_challenge={challenge}"),
    );
    let code = sign_in_at(&gw, &mut Browser::default(), &url).await;
    let redeem = format!("grant_type=authorization_code&code={code}&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback&client_id=spa-mtls&code_verifier={verifier}");
    let (status, answer) = curl(&ca, Some(&billing), &["-d", &redeem, &token_endpoint]);
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    // userinfo, a resource too: the bound token over its certificate only.
    let bearer = format!(
        "authorization: Bearer {}",
        answer["access_token"].as_str().unwrap()
    );
    let userinfo = format!("{base}/oauth2/app/userinfo");
    for (cert, want) in [(Some(&billing), 200), (Some(&selfie), 401), (None, 401)] {
        let (status, body) = curl(&ca, cert, &["-H", &bearer, &userinfo]);
        assert_eq!(status, want, "{body}");
    }
    let token = answer["access_token"].as_str().unwrap();
    assert_eq!(status_with(&gw, "/oauth2/app/userinfo", token).await, 401);
    let refresh = answer["refresh_token"].as_str().unwrap().to_string();
    let refresh = format!("grant_type=refresh_token&refresh_token={refresh}&client_id=spa-mtls");
    let (status, answer) = curl(&ca, Some(&selfie), &["-d", &refresh, &token_endpoint]);
    assert_eq!(status, 400, "over another certificate: {answer}");
    let (status, answer) = curl(&ca, Some(&billing), &["-d", &refresh, &token_endpoint]);
    assert_eq!(status, 200, "over its own: {answer}");
}
