//! A query or cookie name is read as the upstream's own parser reads it.
//! Two real applications stand behind portero, each on its own parsers:
//! Express 4 (tests/oidc/express_items.mjs: `method-override` in its
//! README's query form, `qs` for the query, `cookie` for cookies) and PHP
//! (tests/php_items.php on `php -S`: `$_GET`, `$_POST`, `$_COOKIE`, and a
//! POST's `_method` naming the method, as Symfony and Laravel read it),
//! and Python's standard library (tests/python_items.py: `SimpleCookie`,
//! as Bottle, CherryPy and aiohttp read cookies, and `parse_qs`).
//! In front of each, `/items` lets any token GET and POST but only an
//! admin DELETE; the token may come as a bearer header, as the query
//! parameter `access_token` or as the cookie `tok`, once.
//!
//! Express needs Node.js and `npm ci` in tests/oidc, PHP `php-cli`
//! (`.ci/run` installs both); without them the tests are skipped with a
//! message, and fail instead under `PORTERO_REQUIRE_UPSTREAM_PARSERS=1`.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::app::App;
use common::*;
use serde_json::Value;

const TESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests");

/// Express on Node.js; `None` (skip) without Node.js or the packages.
fn express() -> Option<App> {
    let packages = Path::new(TESTS).join("oidc/node_modules/method-override");
    let missing = if !runs("node", &["--version"]) {
        Some("node is not installed".to_string())
    } else if !packages.exists() {
        Some("tests/oidc has no node_modules/method-override".to_string())
    } else {
        None
    };
    if !outside_program(Outside::UpstreamParsers, missing) {
        return None;
    }
    let mut command = Command::new("node");
    command.arg(Path::new(TESTS).join("oidc/express_items.mjs"));
    Some(App::printing_its_port(command))
}

/// PHP's built-in server; `None` (skip) without `php`.
fn php() -> Option<App> {
    let missing = (!runs("php", &["--version"])).then(|| "php is not installed".to_string());
    if !outside_program(Outside::UpstreamParsers, missing) {
        return None;
    }
    // `php -S` takes a port, not 0.
    let port = free_port();
    let mut command = Command::new("php");
    command
        .args(["-S", &format!("127.0.0.1:{port}")])
        .arg(Path::new(TESTS).join("php_items.php"));
    Some(App::on_port(command, port, "ITEMS_LOG"))
}

/// Python's standard library (`SimpleCookie`, `parse_qs`).
fn python() -> App {
    let mut command = Command::new("python3");
    command.args(["-u", &format!("{TESTS}/python_items.py")]);
    App::printing_its_port(command)
}

/// What the application ran: one JSON object a request.
fn ran_json(app: &App) -> Vec<Value> {
    let lines = app.ran();
    let json = lines.iter().filter(|line| line.starts_with('{'));
    json.map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `/items` in two routes by method; the token from one of three places.
fn config(app: &App) -> String {
    format!(
        r#"{}
{}
[[routes]]
name = "items"
path = "/items"
methods = ["GET", "HEAD", "POST"]
upstream = "app"
token_from = ["bearer", "query:access_token", "cookie:tok"]

[[routes]]
name = "items-admin"
path = "/items"
methods = ["DELETE", "PUT", "PATCH"]
upstream = "app"
roles = ["admin"]
"#,
        issuers(),
        upstream("app", &[app.addr()], ""),
    )
}

fn user_token() -> String {
    let mut c = claims("user");
    c["role"] = serde_json::json!("user");
    Signer::Hs.sign(&c)
}

/// `POST /items/7?QUERY` with the headers given, as written.
async fn post(gw: &Gateway, query: &str, headers: &[String]) -> u16 {
    let mut head = format!(
        "POST /items/7?{query} HTTP/1.1\r\nHost: shop\r\nContent-Length: 0\r\nConnection: close\r\n"
    );
    for header in headers {
        head += &format!("{header}\r\n");
    }
    raw_http(gw.port, format!("{head}\r\n").as_bytes()).await.0
}

/// `_method` spelled as some upstream's parser reads it: escaped (every
/// parser decodes names), cut at a NUL (PHP), after a `;` (Rack 2,
/// Python's `parse_qsl(separator=";")`), with brackets (PHP, Rack, `qs`),
/// with a leading space (PHP trims it) or another case (ASP.NET).
const METHOD_SPELLINGS: [&str; 15] = [
    "_method=DELETE",
    "_%6Dethod=DELETE",
    "_m%65thod=DELETE",
    "_meth%6Fd=DELETE",
    "%5F%6D%65%74%68%6F%64=DELETE",
    "_method%00=DELETE",
    "x=1;_method=DELETE",
    "]_method=DELETE",
    "_method]=DELETE",
    "[_method]=DELETE",
    "_method[]=DELETE",
    "_method[x]=DELETE",
    "+_method=DELETE",
    "%20_method=DELETE",
    "_METHOD=DELETE",
];

/// A second copy of the query token, in the spellings the same parsers
/// read as `access_token`.
const QUERY_COPIES: [&str; 10] = [
    "access_token%00=EVIL",
    "access%5Btoken=EVIL",
    "access.token=EVIL",
    "]access_token=EVIL",
    "[access_token]=EVIL",
    "access_token[]=EVIL",
    "access_token[x]=EVIL",
    "access%5Ftoken=EVIL",
    "x=1;access_token=EVIL",
    "ACCESS_TOKEN=EVIL",
];

/// A second copy of the cookie token, in the spellings the same parsers
/// (and Python's `SimpleCookie`) read as `tok`.
const COOKIE_COPIES: [&str; 12] = [
    "tok[0]=EVIL",
    "secure tok=EVIL",
    "HttpOnly\ttok=EVIL",
    "a=\"x;y\" tok=EVIL",
    "a=b,tok=EVIL",
    "a=x tok = EVIL",
    "tok[]=EVIL",
    "a=b tok =EVIL",
    "a=b tok=EVIL",
    "t%6Fk=EVIL",
    "TOK=EVIL",
    "tok",
];

/// The same over HTTP/2 (cleartext, prior knowledge).
async fn post_h2(gw: &Gateway, query: &str, token: &str) -> u16 {
    let mut client = h2_client(gw.port).await;
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("http://shop/items/7?{query}"))
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    response.await.unwrap().status().as_u16()
}

/// Every spelling of `_method`, and every second copy of the token, is
/// 400 before the application sees the request; the same request without
/// them reaches it, which reads the token portero checked.
async fn every_spelling_is_refused(app: App) {
    let gw = Gateway::start(&config(&app)).await;
    let token = user_token();
    let bearer = format!("Authorization: Bearer {token}");
    let cookie = |more: &str| format!("Cookie: tok={token}; {more}");
    // The application runs and reads what it is sent.
    assert_eq!(post(&gw, "a=1", std::slice::from_ref(&bearer)).await, 200);
    assert_eq!(post(&gw, &format!("access_token={token}"), &[]).await, 200);
    assert_eq!(
        post(&gw, "a=1", &[format!("Cookie: tok={token}")]).await,
        200
    );
    let ran = ran_json(&app);
    assert_eq!(ran.len(), 3, "{ran:?}");
    assert!(ran.iter().all(|r| r["method"] == "POST"), "{ran:?}");
    assert_eq!(ran[2]["cookie"], token.as_str(), "{ran:?}");

    let mut got = Vec::new();
    for query in METHOD_SPELLINGS {
        got.push((
            query.to_string(),
            post(&gw, query, std::slice::from_ref(&bearer)).await,
        ));
    }
    for query in METHOD_SPELLINGS {
        got.push((
            format!("{query} over HTTP/2"),
            post_h2(&gw, query, &token).await,
        ));
    }
    for copy in QUERY_COPIES {
        let query = format!("access_token={token}&{copy}");
        got.push((copy.to_string(), post(&gw, &query, &[]).await));
    }
    for copy in COOKIE_COPIES {
        got.push((copy.to_string(), post(&gw, "a=1", &[cookie(copy)]).await));
        // A copy beside the token from another source is a second one too.
        let beside = [bearer.clone(), format!("Cookie: {copy}")];
        got.push((
            format!("{copy} beside a bearer token"),
            post(&gw, "a=1", &beside).await,
        ));
    }
    // A bearer header portero reads no token in, beside the cookie token.
    for value in ["Bearer\tEVIL", "Bearer  EVIL", "bearer"] {
        let beside = [cookie("a=1"), format!("Authorization: {value}")];
        got.push((
            format!("{value} beside a cookie token"),
            post(&gw, "a=1", &beside).await,
        ));
    }
    let ran = ran_json(&app);
    let admitted: Vec<_> = got.iter().filter(|(_, status)| *status != 400).collect();
    assert!(
        admitted.is_empty() && ran.len() == 3,
        "admitted: {admitted:?}\nthe application ran: {:?}",
        &ran[3..]
    );
}

#[tokio::test]
async fn express_never_reads_a_method_or_a_token_portero_did_not() {
    if let Some(app) = express() {
        every_spelling_is_refused(app).await;
    }
}

#[tokio::test]
async fn python_never_reads_a_method_or_a_token_portero_did_not() {
    every_spelling_is_refused(python()).await;
}

#[tokio::test]
async fn php_never_reads_a_method_or_a_token_portero_did_not() {
    if let Some(app) = php() {
        every_spelling_is_refused(app).await;
    }
}
