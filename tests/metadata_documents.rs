//! Client ID metadata documents: a client named by the https URL of its
//! own metadata, which portero fetches (here from an HTTPS server on
//! loopback, allowed by `client_metadata_private_hosts` and trusted by
//! `client_metadata_ca_file`). It signs a user in, always after asking
//! them, with the document's host on the page; a document may ask for
//! DPoP and pushed requests as a registered client does; documents that
//! lie, name a member twice, redirect, grow, stall or sit on a private
//! address are refused, and each issuer fetches only so many at once and
//! no document more than once a minute.

use crate::common;

use std::time::Duration;

use common::documents::{Answer, DocumentServer};
use common::standard::*;
use common::*;
use serde_json::{json, Value};

/// The standard issuer taking documents from `server`; `private`: its
/// `localhost` may be on loopback.
fn body(server: &DocumentServer, private: bool) -> String {
    let hosts = match private {
        true => "client_metadata_private_hosts = [\"localhost\"]\n",
        false => "",
    };
    standard_body(&format!(
        "client_metadata_documents = true\n{hosts}client_metadata_ca_file = \"{}\"\n",
        server.ca.cert_file.display()
    ))
}

/// A document for the client at `url`, back to the tests' callback.
fn document(url: &str) -> Value {
    json!({
        "client_id": url,
        "client_name": "Notes Agent",
        "redirect_uris": [CALLBACK],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
    })
}

fn publish(server: &DocumentServer, path: &str, doc: &Value) -> String {
    server.set(path, Answer::json(doc.to_string()));
    server.url(path)
}

/// An authorization request of `client` for `openid`.
fn asking(gw: &Gateway, client: &str) -> String {
    let (_, challenge) = pkce();
    authorize_url_for(
        gw,
        client,
        CALLBACK,
        "openid",
        &format!("&code_challenge={challenge}"),
    )
}

/// The authorization request's page for `client` (fresh browser).
async fn page_for(gw: &Gateway, browser: &mut Browser, client: &str) -> (u16, String) {
    let url = asking(gw, client);
    let (status, _, page) = browser.get(&url).await;
    (status, page)
}

#[tokio::test]
async fn a_client_named_by_its_document_signs_a_user_in_with_the_users_consent() {
    let server = DocumentServer::start().await;
    let gw = Gateway::start(&body(&server, true)).await;
    let metadata = metadata(&gw).await;
    assert_eq!(metadata["client_id_metadata_document_supported"], true);

    let client = server.url("/agents/notes.json");
    publish(&server, "/agents/notes.json", &document(&client));
    let (verifier, challenge) = pkce();
    let url = authorize_url_for(
        &gw,
        &client,
        CALLBACK,
        "openid offline_access",
        &format!("&code_challenge={challenge}"),
    );
    let mut browser = Browser::default();
    let (status, _, page) = browser.get(&url).await;
    assert_eq!(status, 200, "{page}");
    // The document's host is who the application is; its name, its claim.
    assert!(
        page.contains(&format!(
            "published by <strong>localhost:{}</strong>",
            server.addr.port()
        )),
        "{page}"
    );
    assert!(page.contains("&quot;Notes Agent&quot; (the name the application gives itself)"));
    let code = sign_in_at(&gw, &mut browser, &url).await;
    let (status, tokens) = redeem_for(&gw, &client, CALLBACK, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let claims = claims_of(tokens["access_token"].as_str().unwrap());
    assert_eq!(claims["client_id"], client.as_str());
    let refreshed = reqwest::Client::new()
        .post(gw.url("/oauth2/app/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", &client),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        refreshed.status(),
        200,
        "{}",
        refreshed.text().await.unwrap()
    );

    // Signed in already, the user is asked again: no code without them.
    let (status, page) = page_for(&gw, &mut browser, &client).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Allow") && page.contains("Deny"), "{page}");
    // Fetched once: kept since (no Cache-Control: five minutes).
    assert_eq!(server.fetches("/agents/notes.json"), 1);
}

#[tokio::test]
async fn a_document_may_ask_for_dpop_and_pushed_requests() {
    let server = DocumentServer::start().await;
    let gw = Gateway::start(&body(&server, true)).await;
    let client = server.url("/bound.json");
    let mut bound = document(&client);
    bound["dpop_bound_access_tokens"] = json!(true);
    bound["require_pushed_authorization_requests"] = json!(true);
    publish(&server, "/bound.json", &bound);
    // Sent to the page, not pushed first: refused, whoever is signed in.
    let (status, location, page) = Browser::default().get(&asking(&gw, &client)).await;
    let refusal = format!("{}{page}", location.unwrap_or_default());
    assert!(
        status != 200 && refusal.contains("pushed"),
        "{status} {refusal}"
    );
    // Without a proof, refused before its code is read.
    let verifier = "v".repeat(43);
    let (status, answer) = redeem_for(&gw, &client, CALLBACK, "no-such-code", &verifier).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "{answer}"
    );
    // A duty spelt as no JSON boolean: the document is refused.
    let not_a_flag = server.url("/not-a-flag.json");
    let mut wrong = document(&not_a_flag);
    wrong["dpop_bound_access_tokens"] = json!("yes");
    publish(&server, "/not-a-flag.json", &wrong);
    let (status, page) = page_for(&gw, &mut Browser::default(), &not_a_flag).await;
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("no such client signs users in here"),
        "{page}"
    );
}

#[tokio::test]
async fn documents_that_lie_redirect_grow_stall_or_sit_on_private_addresses_are_refused() {
    let server = DocumentServer::start().await;
    let gw = Gateway::start(&body(&server, true)).await;
    let mut cases: Vec<(&str, String)> = Vec::new();
    let lying = server.url("/lying.json");
    publish(
        &server,
        "/lying.json",
        &document(&server.url("/other.json")),
    );
    cases.push(("names another client_id", lying));
    let mut secret = document(&server.url("/secret.json"));
    secret["client_secret"] = json!("s3cret");
    cases.push(("has a secret", publish(&server, "/secret.json", &secret)));
    let mut basic = document(&server.url("/basic.json"));
    basic["token_endpoint_auth_method"] = json!("client_secret_basic");
    cases.push((
        "authenticates with a secret",
        publish(&server, "/basic.json", &basic),
    ));
    let mut elsewhere = document(&server.url("/elsewhere.json"));
    elsewhere["redirect_uris"] = json!(["https://attacker.example/cb"]);
    cases.push((
        "sends codes elsewhere",
        publish(&server, "/elsewhere.json", &elsewhere),
    ));
    server.set(
        "/redirect.json",
        Answer {
            status: 302,
            headers: vec![("location", server.url("/good.json"))],
            ..Answer::json(String::new())
        },
    );
    publish(&server, "/good.json", &document(&server.url("/good.json")));
    cases.push(("redirects", server.url("/redirect.json")));
    // A member twice: which copy counts would be the parser's.
    let twice = document(&server.url("/twice.json")).to_string();
    let twice = twice.replacen('{', r#"{"dpop_bound_access_tokens":true,"#, 1);
    server.set(
        "/twice.json",
        Answer::json(twice.replace('}', r#","dpop_bound_access_tokens":false}"#)),
    );
    cases.push(("names a member twice", server.url("/twice.json")));
    let mut huge = document(&server.url("/huge.json"));
    huge["padding"] = json!("x".repeat(20_000));
    cases.push(("is over 16 KiB", publish(&server, "/huge.json", &huge)));
    server.set(
        "/slow.json",
        Answer {
            delay: Duration::from_secs(7),
            ..Answer::json(document(&server.url("/slow.json")).to_string())
        },
    );
    cases.push(("stalls past the timeout", server.url("/slow.json")));
    cases.push(("is not there", server.url("/missing.json")));
    let port = server.addr.port();
    let dotted = format!("https://localhost:{port}/x/../good.json");
    cases.push(("is spelled with dot segments", dotted));
    cases.push((
        "is on an address, not a listed host",
        format!("https://127.0.0.1:{port}/good.json"),
    ));
    for (case, client) in &cases {
        let (status, page) = page_for(&gw, &mut Browser::default(), client).await;
        assert_eq!(status, 400, "{case}: {page}");
        let refused = match *case {
            "sends codes elsewhere" => "redirect_uri is not one the client registered",
            _ => "no such client signs users in here",
        };
        assert!(page.contains(refused), "{case}: {page}");
    }
    // The good one is taken, from the same server.
    let (status, page) = page_for(&gw, &mut Browser::default(), &server.url("/good.json")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        server.fetches("/good.json"),
        1,
        "a redirect is never followed"
    );
    // Its errors before the user says anything are shown, never sent to
    // its redirect URI (anyone's choice: no open redirector).
    let (_, challenge) = pkce();
    let with_challenge = format!("&code_challenge={challenge}");
    for (scope, extra) in [
        ("nothing:here", with_challenge.clone()),
        ("openid", format!("{with_challenge}&prompt=none")),
        ("openid", String::new()),
    ] {
        let url = authorize_url_for(&gw, &server.url("/good.json"), CALLBACK, scope, &extra);
        let (status, location, page) = Browser::default().get(&url).await;
        assert_eq!((status, location), (400, None), "{scope} {extra}: {page}");
    }
    let log = gw.log_with("client metadata document refused").await;
    assert!(log.contains("redirects are not followed"), "{log}");
    assert!(log.contains("not a public address"), "{log}");

    // A refusal is kept a minute: fixed now, the document is not fetched again.
    publish(
        &server,
        "/missing.json",
        &document(&server.url("/missing.json")),
    );
    let (status, _) = page_for(&gw, &mut Browser::default(), &server.url("/missing.json")).await;
    assert_eq!(status, 400);
    assert_eq!(server.fetches("/missing.json"), 1);

    // Without localhost among the private hosts, its loopback address is refused.
    let strict = Gateway::start(&body(&server, false)).await;
    let (status, _) = page_for(&strict, &mut Browser::default(), &server.url("/good.json")).await;
    assert_eq!(status, 400);
    let log = strict.log_with("client metadata document refused").await;
    assert!(
        log.contains("localhost resolves to 127.0.0.1, not a public address"),
        "{log}"
    );
    assert_eq!(server.fetches("/good.json"), 1, "nothing was sent to it");
}

/// The page for `client`, asked from the loopback address `from`.
async fn page_from(gw: &Gateway, from: [u8; 4], client: &str) -> (u16, String) {
    let url = asking(gw, client);
    let http = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(from))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Slow documents at `/slow-<n>.json`, each answering after 600 ms.
fn slow_documents(server: &DocumentServer, range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|n| {
            let path = format!("/slow-{n}.json");
            server.set(
                &path,
                Answer {
                    delay: Duration::from_millis(600),
                    ..Answer::json(document(&server.url(&path)).to_string())
                },
            );
            server.url(&path)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_fetches_two_documents_at_once_and_an_issuer_sixteen() {
    let server = DocumentServer::start().await;
    let gw = Gateway::start(&body(&server, true)).await;
    // One address: two fetches in flight; the rest are told to come back.
    let clients = slow_documents(&server, 0..6);
    let pages = clients.iter().map(|c| page_from(&gw, [127, 0, 0, 1], c));
    let answers = futures_util::future::join_all(pages).await;
    let taken = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(taken, 2, "{answers:?}");
    let busy = answers
        .iter()
        .filter(|(_, p)| p.contains("the service is unavailable"))
        .count();
    assert_eq!(busy, 4);
    assert_eq!(server.most_in_flight(), 2);
    // Ten addresses, two each: sixteen at once, the others wait their turn.
    let clients = slow_documents(&server, 10..30);
    let pages = clients
        .iter()
        .enumerate()
        .map(|(n, c)| page_from(&gw, [127, 0, 0, 2 + (n % 10) as u8], c));
    let answers = futures_util::future::join_all(pages).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    assert_eq!(server.most_in_flight(), 16);
}
