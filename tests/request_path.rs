//! The request path under attack: traversal and encoding tricks against an
//! upstream that normalises paths itself (Python's `http.server`), ambiguous
//! hosts, spoofed identity and forwarding headers, repeated credentials.
//! Raw sockets for HTTP/1.1 and raw frames (the `h2` crate) for HTTP/2, so
//! no client library tidies a payload before it leaves.

use crate::common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{claims, h2_client, issuers, raw_http as raw, upstream, Gateway, Signer, Upstream};
use serde_json::Value;
use tokio::net::TcpStream;

/// Python's `http.server` on a directory: it decodes and normalises the
/// path itself, as Tomcat, IIS and many frameworks do, so a path portero
/// routed one way is served another unless portero forwards the normal form.
struct FileServer {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl FileServer {
    async fn start() -> FileServer {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for (file, text) in [
            ("secret.txt", "SECRET-ROOT"),
            ("public/hello.txt", "hello"),
            ("admin/secret.txt", "SECRET-ADMIN"),
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let port = common::free_port();
        let log = std::fs::File::create(dir.path().join("requests.log")).unwrap();
        let child = Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("python3 runs http.server");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        for _ in 0..200 {
            if TcpStream::connect(addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        FileServer { child, addr, dir }
    }

    /// The request lines the server logged, e.g. `GET /secret.txt HTTP/1.1`.
    fn requests(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("requests.log")).unwrap();
        log.lines()
            .filter_map(|l| Some(l.split('"').nth(1)?.to_string()))
            .collect()
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn get_h1(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\n{auth}Connection: close\r\n\r\n");
    raw(port, request.as_bytes()).await
}

/// One HTTP/2 request (prior knowledge, cleartext) with `:path` exactly as
/// given and any extra header fields; `None` if `http` cannot carry the path.
async fn get_h2(port: u16, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let uri: http::Uri = format!("http://gw.test:{port}{path}").parse().ok()?;
    let mut client = h2_client(port).await;
    let mut request = http::Request::builder().uri(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let (response, _) = client
        .send_request(request.body(()).unwrap(), true)
        .unwrap();
    let response = response.await.unwrap();
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        text.extend_from_slice(&chunk);
    }
    Some((status, String::from_utf8_lossy(&text).into_owned()))
}

fn files_gateway(server: &FileServer, routes: &str) -> String {
    format!(
        "{}\n{}\n{routes}",
        upstream("files", &[server.addr], ""),
        issuers()
    )
}

/// Payloads that try to climb out of a public route into a protected file.
/// Each is refused (`400`), lands on the protected route (`401`), or names
/// a file that is not there (`404`, as overlong UTF-8 for a dot does).
const LAYOUT_PUBLIC_PREFIX: &[&str] = &[
    "/public/../secret.txt",
    "/public/%2e%2e/secret.txt",
    "/public/%2E%2E/secret.txt",
    "/public/.%2e/secret.txt",
    "/public/%2e./secret.txt",
    "/public/..%2fsecret.txt",
    "/public/..%2Fsecret.txt",
    "/public/..%5csecret.txt",
    "/public/..%5Csecret.txt",
    "/public\\..\\secret.txt",
    "/public/..\\secret.txt",
    "/public/..;/secret.txt",
    "/public/..;x=1/secret.txt",
    "//../secret.txt",
    "/public//../../secret.txt",
    "/public/%252e%252e/secret.txt",
    "/public/%252E%252E%252Fsecret.txt",
    "/public/..%252fsecret.txt",
    "/public/%2e%2e%2fsecret.txt",
    "/public/%c0%ae%c0%ae/secret.txt",
    "/public/./../secret.txt",
    "/public/%00/../secret.txt",
    // Encodings of encodings: decoding the unreserved escapes spells `%252e`.
    "/public/%25%32%65%25%32%65/secret.txt",
    "/public/%252%65%252%65/secret.txt",
    "/public/..%25%32%66secret.txt",
    "/public/..%25%35%63secret.txt",
];

/// The same against a public root and a protected `/admin`.
const LAYOUT_PROTECTED_PREFIX: &[&str] = &[
    "//admin/secret.txt",
    "///admin/secret.txt",
    "/admin;x/secret.txt",
    "/admin;/secret.txt",
    "/./admin/secret.txt",
    "/x/../admin/secret.txt",
    "/x/%2e%2e/admin/secret.txt",
    "/x/..%2fadmin/secret.txt",
    "/x/..;/admin/secret.txt",
    "/%61dmin/secret.txt",
    "/%61%64%6d%69%6e/secret.txt",
    "/admin%2fsecret.txt",
    "/x/..\\admin/secret.txt",
    "//../admin/secret.txt",
    "/x/%252e%252e/admin/secret.txt",
    "/x/%25%32%65%25%32%65/admin/secret.txt",
];

async fn assert_no_payload_reaches_the_secret(gw: &Gateway, payloads: &[&str]) {
    for path in payloads {
        let (status, text) = get_h1(gw.port, path, None).await;
        assert!(
            matches!(status, 400 | 401 | 404) && !text.contains("SECRET"),
            "HTTP/1.1 {path}: {status}\n{text}"
        );
        if let Some((status, text)) = get_h2(gw.port, path, &[]).await {
            assert!(
                matches!(status, 400 | 401 | 404) && !text.contains("SECRET"),
                "HTTP/2 {path}: {status}\n{text}"
            );
        }
    }
}

#[tokio::test]
async fn traversal_from_a_public_prefix_never_reaches_a_protected_file() {
    let files = FileServer::start().await;
    let routes = r#"
[[routes]]
name = "public"
path = "/public"
upstream = "files"
public = true

[[routes]]
name = "protected"
path = "/"
upstream = "files"
"#;
    let gw = Gateway::start(&files_gateway(&files, routes)).await;
    // Asked directly, the upstream resolves these payloads itself: each
    // would be a bypass if portero routed one path and forwarded another.
    for path in [
        "/public/../secret.txt",
        "/public/..%2fsecret.txt",
        "/public/%2e%2e/secret.txt",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (_, text) = raw(files.addr.port(), request.as_bytes()).await;
        assert!(text.ends_with("SECRET-ROOT"), "{path}: {text}");
    }
    let probes = files.requests().len();
    // The layout works: the public file without a token, the secret with one.
    let (status, text) = get_h1(gw.port, "/public/hello.txt", None).await;
    assert_eq!(status, 200, "{text}");
    let token = Signer::Hs.sign(&claims("alice"));
    assert_eq!(get_h1(gw.port, "/secret.txt", None).await.0, 401);

    assert_no_payload_reaches_the_secret(&gw, LAYOUT_PUBLIC_PREFIX).await;

    // With a token, the normalisable ones reach the file by its normal name.
    for path in [
        "/public/../secret.txt",
        "/public/%2e%2e/secret.txt",
        "/public/.%2e/secret.txt",
    ] {
        let (status, text) = get_h1(gw.port, path, Some(&token)).await;
        assert!(
            status == 200 && text.ends_with("SECRET-ROOT"),
            "{path}: {text}"
        );
        let auth = format!("Bearer {token}");
        let (status, text) = get_h2(gw.port, path, &[("authorization", &auth)])
            .await
            .unwrap();
        assert!(
            status == 200 && text == "SECRET-ROOT",
            "HTTP/2 {path}: {text}"
        );
    }
    // The upstream only ever saw normal paths.
    let seen = files.requests()[probes..].to_vec();
    assert!(
        seen.contains(&"GET /secret.txt HTTP/1.1".to_string()),
        "{seen:?}"
    );
    for line in &seen {
        let path = line.split(' ').nth(1).unwrap().to_ascii_lowercase();
        let ambiguous = ["..", "\\", "//", "%2e", "%2f", "%5c", "%25", ";"];
        assert!(
            !ambiguous.iter().any(|a| path.contains(a)),
            "the upstream received {line:?}"
        );
    }
}

#[tokio::test]
async fn a_protected_prefix_cannot_be_dodged_under_a_public_root() {
    let files = FileServer::start().await;
    let routes = r#"
[[routes]]
name = "public"
path = "/"
upstream = "files"
public = true

[[routes]]
name = "admin"
path = "/admin"
upstream = "files"
"#;
    let gw = Gateway::start(&files_gateway(&files, routes)).await;
    assert_eq!(get_h1(gw.port, "/public/hello.txt", None).await.0, 200);
    assert_eq!(get_h1(gw.port, "/admin/secret.txt", None).await.0, 401);
    assert_no_payload_reaches_the_secret(&gw, LAYOUT_PROTECTED_PREFIX).await;
}

#[tokio::test]
async fn encoded_slashes_and_merged_slashes_are_options() {
    let up = Upstream::start("echo").await;
    let body = format!(
        "{}\n[[routes]]\npath = \"/\"\nupstream = \"echo\"\npublic = true\n",
        upstream("echo", &[up.addr], "")
    );
    let gw = Gateway::start_with_server_settings(
        "merge_slashes = true\nallow_encoded_slashes = true",
        &body,
    )
    .await;
    let (status, text) = get_h1(gw.port, "//a//b%2fc/./d?x=%2e%2e", None).await;
    assert_eq!(status, 200, "{text}");
    let echoed: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(echoed["path"], "/a/b%2Fc/d");
    assert_eq!(echoed["query"], "x=%2e%2e");
    // Without the options: `//` is kept as sent, `%2F` refused.
    let gw = Gateway::start(&body).await;
    let (_, text) = get_h1(gw.port, "//a//b", None).await;
    let echoed: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(echoed["path"], "//a//b");
    let (status, text) = get_h1(gw.port, "/a%2fb", None).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("encoded slash"), "{text}");
}

/// A gateway with a route for one host and a catch-all, each to its own
/// echo upstream, and the access log on.
async fn host_gateway() -> (Gateway, Upstream, Upstream) {
    let (named, any) = (Upstream::start("named").await, Upstream::start("any").await);
    let body = format!(
        "{}\n{}\n\
         [[routes]]\nhost = \"maxpoint.localhost\"\npath = \"/\"\nupstream = \"named\"\npublic = true\n\n\
         [[routes]]\npath = \"/\"\nupstream = \"any\"\npublic = true\n",
        upstream("named", &[named.addr], ""),
        upstream("any", &[any.addr], ""),
    );
    (Gateway::start(&body).await, named, any)
}

fn echoed(text: &str) -> Value {
    serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap_or("null")).unwrap_or(Value::Null)
}

#[tokio::test]
async fn one_well_formed_host_or_a_400() {
    let (gw, _named, _any) = host_gateway().await;
    let send = |head: &'static str| async move { raw(gw.port, head.as_bytes()).await };

    // A trailing dot is the same host, and one Host goes upstream without it.
    let (status, text) =
        send("GET /x HTTP/1.1\r\nHost: maxpoint.localhost.\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 200, "{text}");
    let e = echoed(&text);
    assert_eq!(e["upstream"], "named");
    assert_eq!(e["headers"]["host"], "maxpoint.localhost");

    for (head, why) in [
        (
            "GET /x HTTP/1.1\r\nHost: maxpoint.localhost\r\nHost: other\r\nConnection: close\r\n\r\n",
            "more than one Host",
        ),
        (
            "GET /x HTTP/1.1\r\nHost: other\r\nHost: other\r\nConnection: close\r\n\r\n",
            "more than one Host",
        ),
        ("GET /x HTTP/1.1\r\nConnection: close\r\n\r\n", "no Host"),
        ("GET /x HTTP/1.1\r\nHost: user@maxpoint.localhost\r\nConnection: close\r\n\r\n", "malformed Host"),
        ("GET /x HTTP/1.1\r\nHost: a:99999\r\nConnection: close\r\n\r\n", "malformed Host"),
        ("GET /x HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n", "malformed Host"),
        (
            "GET http://maxpoint.localhost/x HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n",
            "does not match",
        ),
    ] {
        let (status, text) = send(head).await;
        // hyper itself refuses some of these before portero sees them.
        assert_eq!(status, 400, "{head:?}: {text}");
        let from_portero = text.contains("bad_request");
        assert!(!from_portero || text.contains(why), "{head:?}: {text}");
    }
    // HTTP/1.0 may name no host: the catch-all.
    let (status, text) = send("GET /x HTTP/1.0\r\n\r\n").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(echoed(&text)["upstream"], "any");

    // HTTP/2: `:authority` decides; a `host` field that disagrees is refused.
    let (status, _) = get_h2(gw.port, "/x", &[("host", "maxpoint.localhost")])
        .await
        .unwrap();
    assert_eq!(status, 400);
    let (status, text) = get_h2(gw.port, "/x", &[]).await.unwrap();
    assert_eq!(status, 200, "{text}");
    let e: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(e["upstream"], "any");
    assert_eq!(e["headers"]["host"], format!("gw.test:{}", gw.port));
}

/// A protected route to an echo upstream, identity headers from the token.
async fn identity_gateway(server: &str) -> (Gateway, Upstream) {
    let up = Upstream::start("echo").await;
    let body = format!(
        "{}\n{}\n\
         [[routes]]\nname = \"api\"\npath = \"/api\"\nupstream = \"echo\"\n\
         [routes.headers]\nx-user-sub = \"sub\"\n\n\
         [[routes]]\nname = \"cookie\"\npath = \"/cookie\"\nupstream = \"echo\"\ntoken_from = \"cookie:session\"\n\n\
         [[routes]]\nname = \"query\"\npath = \"/query\"\nupstream = \"echo\"\ntoken_from = \"query:access_token\"\n\n\
         [[routes]]\nname = \"legacy\"\npath = \"/legacy\"\nupstream = \"echo\"\nunderscores_in_headers = true\n\
         [routes.headers]\nx-user-sub = \"sub\"\n",
        upstream("echo", &[up.addr], ""),
        issuers()
    );
    (Gateway::start_with_server_settings(server, &body).await, up)
}

#[tokio::test]
async fn every_spelling_of_an_identity_header_is_stripped() {
    let (gw, _up) = identity_gateway("").await;
    let token = Signer::Hs.sign(&claims("alice"));
    let head = format!(
        "GET /api/x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {token}\r\n\
         x_user_sub: admin\r\nX_User_Sub: root\r\nx-user-sub: mallory\r\nx_auth_roles: admin\r\n\
         x.user.sub: php\r\nX.Auth-Roles: admin\r\n\
         X-Original-URL: /admin\r\nx_rewrite_url: /admin\r\nConnection: close\r\n\r\n"
    );
    let (status, text) = raw(gw.port, head.as_bytes()).await;
    assert_eq!(status, 200, "{text}");
    let headers = echoed(&text)["headers"].clone();
    assert_eq!(headers["x-user-sub"], "alice", "{headers}");
    for name in headers.as_object().unwrap().keys() {
        let folded = name.replace(['_', '.'], "-");
        assert!(
            !folded.starts_with("x-auth-")
                && folded != "x-original-url"
                && folded != "x-rewrite-url"
                && (name == "x-user-sub" || folded != "x-user-sub"),
            "{name} reached the upstream: {headers}"
        );
    }
}

#[tokio::test]
async fn a_credential_sent_twice_is_refused() {
    let (gw, up) = identity_gateway("").await;
    let good = Signer::Hs.sign(&claims("alice"));
    let forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";
    for (first, second) in [(good.as_str(), forged), (forged, good.as_str())] {
        let head = format!(
            "GET /api/x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {first}\r\n\
             Authorization: Bearer {second}\r\nConnection: close\r\n\r\n"
        );
        let (status, text) = raw(gw.port, head.as_bytes()).await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("invalid_request"), "{text}");
    }
    // Cookies: the token cookie twice, in one header or in two.
    for cookies in [
        format!("Cookie: session={good}; session={forged}\r\n"),
        format!("Cookie: session={good}\r\nCookie: session={forged}\r\n"),
    ] {
        let head =
            format!("GET /cookie HTTP/1.1\r\nHost: gw.test\r\n{cookies}Connection: close\r\n\r\n");
        let (status, text) = raw(gw.port, head.as_bytes()).await;
        assert_eq!(status, 400, "{text}");
    }
    // A second copy in a header whose bytes are not UTF-8 (beside another
    // site's cookie) is a copy all the same.
    let mut head =
        format!("GET /cookie HTTP/1.1\r\nHost: gw.test\r\nCookie: session={good}\r\nCookie: a=")
            .into_bytes();
    head.extend_from_slice(b"\xff; session=");
    head.extend_from_slice(forged.as_bytes());
    head.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    assert_eq!(raw(gw.port, &head).await.0, 400);
    // Alone, such a header is read, and the token in it is the one.
    let mut head = b"GET /cookie HTTP/1.1\r\nHost: gw.test\r\nCookie: a=\xff; session=".to_vec();
    head.extend_from_slice(good.as_bytes());
    head.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    assert_eq!(raw(gw.port, &head).await.0, 200);
    let head = format!("GET /cookie HTTP/1.1\r\nHost: gw.test\r\nCookie: a=1; session={good}\r\nConnection: close\r\n\r\n");
    assert_eq!(raw(gw.port, head.as_bytes()).await.0, 200);
    let served = up.requests();

    // Spellings an upstream reads as the same cookie or parameter: Python
    // trims `session =`, ASP.NET ignores case, PHP reads `.` as `_`.
    for cookie in [
        format!("session={good}; session ={forged}"),
        format!("session={good}; SESSION={forged}"),
        format!("Session={forged}; session={good}"),
        // ...PHP's `[` for `_` and arrays, Python's Unicode whitespace and
        // `SimpleCookie`'s pairs inside another cookie's value.
        format!("session[]={forged}; session={good}"),
        format!("session={good}; \u{a0}session={forged}"),
        format!("session={good}; a=b session={forged}"),
    ] {
        let head = format!(
            "GET /cookie HTTP/1.1\r\nHost: gw.test\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        );
        let (status, text) = raw(gw.port, head.as_bytes()).await;
        assert_eq!(status, 400, "{cookie}: {text}");
    }
    for query in [
        format!("ACCESS_TOKEN={forged}&access_token={good}"),
        format!("access_token={good}&Access_Token={forged}"),
        format!("access.token={forged}&access_token={good}"),
        // A copy an upstream that splits on `;` reads, before or after it.
        format!("a=1;access_token={forged}&access_token={good}"),
        format!("access_token={good};access_token={forged}"),
    ] {
        let head =
            format!("GET /query?{query} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n");
        let (status, text) = raw(gw.port, head.as_bytes()).await;
        assert_eq!(status, 400, "{query}: {text}");
    }
    assert_eq!(
        up.requests(),
        served,
        "a second credential reached the upstream"
    );
    let head = format!(
        "GET /query?a=1&access_token={good} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n"
    );
    let (status, text) = raw(gw.port, head.as_bytes()).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(echoed(&text)["path"], "/query", "{text}");
}

/// Header names with `_` are dropped (CGI, WSGI and Rack read
/// `x_forwarded_for` as `X-Forwarded-For`) unless the route keeps them;
/// what an untrusted client says about its address or prefix is dropped;
/// `Proxy-Authorization` never goes on.
#[tokio::test]
async fn underscored_names_and_client_address_reports_do_not_reach_the_upstream() {
    let (gw, _up) = identity_gateway("").await;
    let token = Signer::Hs.sign(&claims("alice"));
    let sent = [
        "x_forwarded_for: 6.6.6.6",
        "x_forwarded_host: evil.example",
        "x_forwarded_proto: https",
        "x_custom: 1",
        "X-Forwarded-Prefix: /admin",
        "X-Forwarded-Port: 8443",
        "True-Client-IP: 6.6.6.6",
        "CF-Connecting-IP: 6.6.6.6",
        "Proxy-Authorization: Basic YWRtaW46YWRtaW4=",
        "x_user_sub: admin",
    ]
    .join("\r\n");
    let get = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {token}\r\n{sent}\r\n\
             Connection: close\r\n\r\n"
        )
    };
    let (status, text) = raw(gw.port, get("/api/x").as_bytes()).await;
    assert_eq!(status, 200, "{text}");
    let headers = echoed(&text)["headers"].clone();
    for name in headers.as_object().unwrap().keys() {
        assert!(
            !name.contains('_'),
            "{name} reached the upstream: {headers}"
        );
        assert!(
            ![
                "x-forwarded-prefix",
                "x-forwarded-port",
                "true-client-ip",
                "cf-connecting-ip",
                "proxy-authorization"
            ]
            .contains(&name.as_str()),
            "{name} reached the upstream: {headers}"
        );
    }
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    // A route that keeps underscores still strips the identity spellings.
    let (status, text) = raw(gw.port, get("/legacy/x").as_bytes()).await;
    assert_eq!(status, 200, "{text}");
    let headers = echoed(&text)["headers"].clone();
    assert_eq!(headers["x_custom"], "1", "{headers}");
    assert_eq!(headers["x-user-sub"], "alice", "{headers}");
    assert!(headers.get("x_user_sub").is_none(), "{headers}");
    assert!(headers.get("proxy-authorization").is_none(), "{headers}");
}

#[tokio::test]
async fn forwarding_headers_are_portero_s_unless_the_peer_is_a_trusted_proxy() {
    let token = Signer::Hs.sign(&claims("alice"));
    let forged = format!(
        "GET /api/x HTTP/1.1\r\nHost: gw.test\r\nAuthorization: Bearer {token}\r\n\
         X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nConnection: close\r\n\r\n"
    );
    let (gw, _up) = identity_gateway("").await;
    let (status, text) = raw(gw.port, forged.as_bytes()).await;
    assert_eq!(status, 200, "{text}");
    let headers = echoed(&text)["headers"].clone();
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1", "{headers}");
    assert!(headers.get("forwarded").is_none(), "{headers}");
    assert!(headers.get("x-real-ip").is_none(), "{headers}");

    let (gw, _up) = identity_gateway("trusted_proxies = [\"127.0.0.0/8\"]").await;
    let (_, text) = raw(gw.port, forged.as_bytes()).await;
    let headers = echoed(&text)["headers"].clone();
    assert_eq!(
        headers["x-forwarded-for"], "6.6.6.6, 127.0.0.1",
        "{headers}"
    );
    assert_eq!(headers["forwarded"], "for=6.6.6.6");
    assert_eq!(headers["x-real-ip"], "6.6.6.6");
}

#[tokio::test]
async fn a_request_head_past_the_limit_gets_431() {
    let (gw, _up) = identity_gateway("").await;
    let big = "a".repeat(100 * 1024);
    let head = format!("GET /api/x HTTP/1.1\r\nHost: gw.test\r\nX-Big: {big}\r\n\r\n");
    let (status, text) = raw(gw.port, head.as_bytes()).await;
    assert_eq!(status, 431, "{}", &text[..text.len().min(200)]);
    // Under the limit is fine (and refused only for want of a token).
    let head = format!(
        "GET /api/x HTTP/1.1\r\nHost: gw.test\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        &big[..30 * 1024]
    );
    assert_eq!(raw(gw.port, head.as_bytes()).await.0, 401);
}

/// A raw `method path` request to the gateway with a JSON body and an
/// optional raw `Authorization`, as written: no client library tidies it.
async fn send(gw: &Gateway, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let body =
        r#"{"business": "5a2ac49cbbbce212f885529c", "proyecto": "upconta", "password": "1234"}"#;
    let auth = token.map_or(String::new(), |t| format!("Authorization: {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: gw.test\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    raw(gw.port, request.as_bytes()).await
}

/// A token endpoint is its exact path only (as routing reads paths: empty
/// segments and `;` parameters ignored, case kept). Every other path below
/// it is an ordinary path: on the demo config, the protected catch-all's,
/// so an application's own `/auth/admin/users` needs a token, and only the
/// exact path answers another method `405`.
#[tokio::test]
async fn paths_below_a_token_endpoint_are_ordinary_paths() {
    let gw = Gateway::start(&common::demo_body()).await;
    let body_of = |text: &str| text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    // The endpoint: its answer is the token, a JSON string.
    let mut token = String::new();
    for path in ["/auth", "//auth", "/auth;x", "/auth?withoutExpiration=1"] {
        let (status, text) = send(&gw, "POST", path, None).await;
        let body = body_of(&text);
        assert_eq!(status, 200, "{path}: {text}");
        assert!(body.starts_with('"'), "{path}: not the endpoint: {body}");
        token = body.trim_matches('"').to_string();
    }
    for path in ["/auth", "//auth", "/auth;x"] {
        let (status, text) = send(&gw, "GET", path, None).await;
        assert_eq!(status, 405, "{path}: {text}");
    }
    // Below it, or another spelling of another path: the catch-all's.
    for path in [
        "/auth/admin/users",
        "/auth/x",
        "/auth/",
        "/auth/.",
        "/auth//",
        "/Auth",
        "/oauth2/login-refresh",
        "/oauth2/login-refresh/token/x",
        "/oauth2/login-refresh/anything",
        "/.well-known/oauth-authorization-server/oauth2/login-refresh/x",
    ] {
        for method in ["POST", "GET"] {
            let (status, text) = send(&gw, method, path, None).await;
            assert_eq!(status, 401, "{method} {path}: {text}");
            assert!(text.contains("WWW-Authenticate") || text.contains("www-authenticate"));
        }
        let (status, text) = send(&gw, "POST", path, Some(&token)).await;
        assert_eq!(status, 200, "{path}: {text}");
        let seen = echoed(&text);
        assert_eq!(seen["method"], "POST", "{path}");
        assert_eq!(seen["headers"]["x-user-proyecto"], "upconta", "{path}");
    }
    // The OAuth 2.0 endpoints answer at their exact paths as before.
    let (status, text) = send(&gw, "GET", "/oauth2/login-refresh/token", None).await;
    assert_eq!(status, 405, "{text}");
    assert!(body_of(&text).contains("invalid_request"), "{text}");
    let (status, text) = send(&gw, "GET", "//oauth2/login-refresh/token", None).await;
    assert_eq!(status, 405, "{text}");
    for path in [
        "/.well-known/oauth-authorization-server/oauth2/login-refresh",
        "/oauth2/login-refresh/.well-known/openid-configuration",
    ] {
        let (status, text) = send(&gw, "GET", path, None).await;
        assert_eq!(status, 200, "{path}: {text}");
        assert!(body_of(&text).contains("token_endpoint"), "{path}: {text}");
    }
}

/// Whether a raw response's head says `X-Content-Type-Options: nosniff`.
fn says_nosniff(text: &str) -> bool {
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .any(|l| l.eq_ignore_ascii_case("x-content-type-options: nosniff"))
}

/// Every answer portero writes itself (a refusal, a legacy or OAuth 2.0
/// endpoint's answer, a document, the admin API and the metrics) says
/// `X-Content-Type-Options: nosniff`: no browser reads its JSON, which
/// may hold text a client sent, as a page. An upstream's answer goes out
/// as the upstream wrote it.
#[tokio::test]
async fn every_answer_portero_writes_says_nosniff() {
    let gw = Gateway::start(&common::demo_body()).await;
    let (status, text) = send(&gw, "POST", "/auth", None).await;
    assert_eq!(status, 200, "{text}");
    assert!(says_nosniff(&text), "the legacy endpoint's token: {text}");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    assert!(
        body.starts_with('"'),
        "the legacy body is as it was: {body}"
    );
    let token = body.trim_matches('"').to_string();
    let own = [
        ("GET", "/anything", None, 401),
        ("GET", "/anything", Some("Bearer a.b.c"), 401),
        ("GET", "/auth", None, 405),
        ("POST", "/api/Session/GetToken", None, 400),
        ("GET", "/.well-known/jwks.json", None, 200),
        (
            "GET",
            "/oauth2/login-refresh/.well-known/openid-configuration",
            None,
            200,
        ),
        ("POST", "/oauth2/login-refresh/token", None, 400),
        ("GET", "/oauth2/login-refresh/token", None, 405),
        ("GET", "/%2e%2e/x", None, 400),
    ];
    for (method, path, auth, want) in own {
        let (status, text) = send(&gw, method, path, auth).await;
        assert_eq!(status, want, "{method} {path}: {text}");
        assert!(says_nosniff(&text), "{method} {path}: {text}");
    }
    // The echo upstream's answer, untouched.
    let (status, text) = send(&gw, "POST", "/anything", Some(&token)).await;
    assert_eq!(status, 200, "{text}");
    assert!(!says_nosniff(&text), "an upstream's answer changed: {text}");
    let admin = reqwest::Client::new();
    for (path, token, want) in [
        ("/metrics", None, 200),
        ("/healthz", None, 200),
        ("/admin/revocations", None, 401),
        ("/admin/revocations", Some(common::ADMIN_TOKEN), 200),
        ("/admin/nothing-here", Some(common::ADMIN_TOKEN), 404),
    ] {
        let mut req = admin.get(gw.admin_url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), want, "{path}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
}

/// A path whose routes take other methods only answers a method none of
/// them takes `405` with their methods in `Allow` (RFC 9110 §15.5.6), over
/// HTTP/1.1 and HTTP/2; a path no route takes stays `404 no route`.
#[tokio::test]
async fn a_method_no_route_of_the_path_takes_is_405_with_allow() {
    let items = Upstream::start("items").await;
    let body = format!(
        "{}\n\
         [[routes]]\nname = \"read\"\npath = \"/items\"\nmethods = [\"GET\", \"HEAD\"]\n\
         upstream = \"items\"\npublic = true\n\n\
         [[routes]]\nname = \"purge\"\npath = \"/items/admin\"\nmethods = [\"DELETE\"]\n\
         upstream = \"items\"\npublic = true\n",
        upstream("items", &[items.addr], ""),
    );
    let gw = Gateway::start(&body).await;
    let cases = [
        ("POST", "/items/7", "GET, HEAD"),
        ("PUT", "/items", "GET, HEAD"),
        ("POST", "/items/admin/7", "DELETE, GET, HEAD"),
    ];
    for (method, path, allow) in cases {
        let (status, text) = send(&gw, method, path, None).await;
        assert_eq!(status, 405, "{method} {path}: {text}");
        let head = text.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
        assert!(
            head.contains(&format!("\r\nallow: {}\r\n", allow.to_ascii_lowercase())),
            "{method} {path}: {text}"
        );
        assert!(says_nosniff(&text), "{text}");
        assert!(text.contains(r#""error":"method_not_allowed""#), "{text}");
        // The same over HTTP/2.
        let mut client = h2_client(gw.port).await;
        let request = http::Request::builder()
            .method(method)
            .uri(format!("http://gw.test{path}"))
            .body(())
            .unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 405, "h2 {method} {path}");
        assert_eq!(response.headers()["allow"], allow, "h2 {method} {path}");
    }
    for (method, path) in [("GET", "/items/7"), ("DELETE", "/items/admin/7")] {
        let (status, text) = send(&gw, method, path, None).await;
        assert_eq!(status, 200, "{method} {path}: {text}");
    }
    let (status, text) = send(&gw, "GET", "/other", None).await;
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("no route"), "{text}");
    assert!(!text.to_ascii_lowercase().contains("\r\nallow:"), "{text}");
    let counted = gw
        .metric(
            "portero_http_requests_total",
            &[("route", "none"), ("method", "POST"), ("status", "405")],
        )
        .await;
    assert_eq!(counted, 4.0);
}
