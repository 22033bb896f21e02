//! The method a route is chosen by is the method the application runs. A
//! Flask application (tests/flask_items.py, on werkzeug's server) reads a
//! request line's `delete` as DELETE and honours `X-HTTP-Method-Override`
//! as Flask's documentation shows; in front of it, `/items` lets any token
//! GET and POST but only an admin DELETE, PUT or PATCH (two routes), and a
//! catch-all takes any token. Flask comes from PyPI (`.ci/run` installs
//! it); without it the tests are skipped with a message, and fail instead
//! under `PORTERO_REQUIRE_FLASK=1`.

use crate::common;

use std::process::Command;

use common::app::App;
use common::*;

const APP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/flask_items.py");

/// The Flask application; its log is every request it ran, e.g.
/// `DELETE /items/7 (sent as POST)`. `None` (skip) without Flask.
fn flask_app() -> Option<App> {
    let found = Command::new("python3")
        .args(["-c", "import flask"])
        .output()
        .is_ok_and(|o| o.status.success());
    let missing = (!found).then(|| "flask is not installed".to_string());
    if !outside_program(Outside::Flask, missing) {
        return None;
    }
    let mut command = Command::new("python3");
    command.args(["-u", APP]);
    Some(App::printing_its_port(command))
}

/// `/items` in two routes by method, a catch-all for any token; `admin`
/// is added to the admin route's table.
fn config(app: &App, admin: &str) -> String {
    format!(
        r#"{}
{}
[[routes]]
name = "items"
path = "/items"
methods = ["GET", "HEAD", "POST"]
upstream = "app"

[[routes]]
name = "items-admin"
path = "/items"
methods = ["DELETE", "PUT", "PATCH"]
upstream = "app"
roles = ["admin"]
{admin}

[[routes]]
name = "rest"
path = "/"
upstream = "app"
"#,
        issuers(),
        upstream("app", &[app.addr()], ""),
    )
}

fn token(role: &str) -> String {
    let mut c = claims(role);
    c["role"] = serde_json::json!(role);
    Signer::Hs.sign(&c)
}

/// One request, its method and headers exactly as written.
async fn send(gw: &Gateway, method: &str, token: &str, headers: &[(&str, &str)]) -> u16 {
    let mut head = format!(
        "{method} /items/7 HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 0\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        head += &format!("{name}: {value}\r\n");
    }
    raw_http(gw.port, format!("{head}\r\n").as_bytes()).await.0
}

/// The same over HTTP/2 (cleartext, prior knowledge), no header added.
async fn send_h2(gw: &Gateway, method: &str, token: &str) -> u16 {
    let mut client = h2_client(gw.port).await;
    let request = http::Request::builder()
        .method(method)
        .uri("http://shop/items/7")
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    response.await.unwrap().status().as_u16()
}

const OVERRIDE: &str = "X-HTTP-Method-Override";

/// A method with a lower-case letter, or named in a method-override
/// header in any spelling (`_` for `-` too), is refused before routing:
/// a user's token never gets the application to run an admin's DELETE.
#[tokio::test]
async fn a_method_the_application_reads_otherwise_never_picks_the_route() {
    let Some(app) = flask_app() else {
        return;
    };
    let gw = Gateway::start(&config(&app, "")).await;
    let user = token("user");
    assert_eq!(send(&gw, "GET", &user, &[]).await, 200);
    assert_eq!(send(&gw, "DELETE", &user, &[]).await, 403);
    assert_eq!(app.ran(), ["GET /items/7"]);
    let attempts: &[(&str, &[(&str, &str)])] = &[
        ("delete", &[]),
        ("Delete", &[]),
        ("dELETE", &[]),
        ("put", &[]),
        ("patch", &[]),
        ("get", &[]),
        ("propfind", &[]),
        ("POST", &[(OVERRIDE, "DELETE")]),
        ("GET", &[(OVERRIDE, "DELETE")]),
        ("POST", &[(OVERRIDE, "delete")]),
        ("POST", &[("X-Method-Override", "DELETE")]),
        ("POST", &[("X-HTTP-Method", "DELETE")]),
        ("POST", &[("x_http_method_override", "DELETE")]),
        ("POST", &[("X-Http_Method-Override", "PUT")]),
        ("POST", &[(OVERRIDE, "POST")]),
    ];
    let mut got = Vec::new();
    for (method, headers) in attempts {
        got.push((*method, *headers, send(&gw, method, &user, headers).await));
    }
    for method in ["delete", "Patch"] {
        got.push((
            method,
            &[("over", "HTTP/2")],
            send_h2(&gw, method, &user).await,
        ));
    }
    let ran = app.ran();
    assert!(
        got.iter().all(|(_, _, status)| *status == 400) && ran == ["GET /items/7"],
        "statuses: {got:?}\nthe application ran: {ran:?}"
    );
}

/// A route with `method_override = true` is chosen by the method a
/// POST's override header names, and the application gets that method
/// in the request line (the header is read, not passed on): an admin's
/// POST with `X-HTTP-Method-Override: DELETE` deletes, a user's is
/// refused by the admin route, and its rule reads the method named.
/// Anything that could be read two ways is still 400.
#[tokio::test]
async fn a_route_that_takes_overrides_is_chosen_by_the_method_named() {
    let Some(app) = flask_app() else {
        return;
    };
    let admin_route = "method_override = true\nrule = 'request.method != \"PATCH\"'";
    let gw = Gateway::start(&config(&app, admin_route)).await;
    let (user, admin) = (token("user"), token("admin"));
    assert_eq!(
        send(&gw, "POST", &admin, &[(OVERRIDE, "DELETE")]).await,
        200
    );
    assert_eq!(app.ran(), ["DELETE /items/7"]);
    assert_eq!(send(&gw, "POST", &user, &[(OVERRIDE, "DELETE")]).await, 403);
    // The admin route's rule reads the method named.
    assert_eq!(send(&gw, "POST", &admin, &[(OVERRIDE, "PATCH")]).await, 403);
    assert_eq!(send(&gw, "POST", &admin, &[(OVERRIDE, "PUT")]).await, 200);
    for (method, headers) in [
        // Only a POST's override is read, as frameworks read it.
        ("GET", &[(OVERRIDE, "DELETE")][..]),
        ("PUT", &[(OVERRIDE, "DELETE")]),
        // The method named must be as the route would match it.
        ("POST", &[(OVERRIDE, "delete")]),
        ("POST", &[(OVERRIDE, "")]),
        ("POST", &[(OVERRIDE, "DELETE"), (OVERRIDE, "DELETE")]),
        (
            "POST",
            &[(OVERRIDE, "DELETE"), ("X-Method-Override", "PUT")],
        ),
        // Neither a method that frames its answer otherwise than POST does.
        ("POST", &[(OVERRIDE, "HEAD")]),
        ("POST", &[(OVERRIDE, "CONNECT")]),
        // A route that does not take overrides refuses one.
        ("POST", &[(OVERRIDE, "GET")]),
        ("delete", &[]),
    ] {
        let status = send(&gw, method, &admin, headers).await;
        assert_eq!(status, 400, "{method} {headers:?}");
    }
    assert_eq!(app.ran(), ["DELETE /items/7", "PUT /items/7"]);
}
