//! A real gRPC service (Python's grpcio, server and client) behind portero
//! on an `h2c` upstream: unary and server-streaming calls with their
//! trailers intact and the caller's identity injected, and portero's own
//! refusals in the shape a gRPC client reads (UNAUTHENTICATED,
//! PERMISSION_DENIED, UNAVAILABLE) instead of a protocol error.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::Value;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc/echo.py");

/// The Python gRPC server, killed when dropped.
struct GrpcServer {
    child: Child,
    port: u16,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Python's grpcio, or the test is skipped (fails under
/// `PORTERO_REQUIRE_GRPC=1`).
fn grpcio_installed() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import grpc"])
        .output()
        .is_ok_and(|o| o.status.success());
    let missing = (!found).then(|| "grpcio is not installed".to_string());
    outside_program(Outside::Grpc, missing)
}

fn grpc_server() -> GrpcServer {
    let mut child = Command::new("python3")
        .args([SCRIPT, "serve"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().unwrap_or_else(|_| {
        panic!("the gRPC server did not start (is grpcio installed? pip install grpcio): {line:?}")
    });
    GrpcServer { child, port }
}

/// Calls `method` through the gateway with the Python client.
async fn call(gw: &Gateway, method: &str, token: Option<&str>) -> Value {
    let target = gw
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let args = [
        SCRIPT.to_string(),
        "call".into(),
        target,
        method.into(),
        token.unwrap_or("-").into(),
        "hello".into(),
    ];
    let out = tokio::process::Command::new("python3")
        .args(&args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn config(upstream_table: &str) -> String {
    format!(
        "{}\n{upstream_table}\n\
         [[routes]]\nname = \"echo\"\npath = \"/portero.test.Echo\"\nupstream = \"grpc\"\nroles = [\"ADMIN\"]\n\
         [routes.headers]\nx-portero-sub = \"sub\"\n\n\
         [[routes]]\nname = \"admin\"\npath = \"/portero.test.Admin\"\nupstream = \"grpc\"\nroles = [\"SUPERUSER\"]\n",
        issuers()
    )
}

#[tokio::test]
async fn grpc_calls_pass_with_their_trailers_and_refusals_are_grpc_statuses() {
    if !grpcio_installed() {
        return;
    }
    let server = grpc_server();
    let servers = format!("[\"127.0.0.1:{}\"]", server.port);
    let gw = Gateway::start(&config(&format!(
        "[upstreams.grpc]\nservers = {servers}\nprotocol = \"h2c\"\n"
    )))
    .await;
    let token = Signer::Hs.sign(&claims("alice"));

    let unary = call(&gw, "/portero.test.Echo/Unary", Some(&token)).await;
    assert_eq!(unary["code"], "OK", "{unary}\n{}", gw.log());
    assert_eq!(unary["messages"][0], "unary:hello");
    assert_eq!(unary["trailing"]["x-upstream-saw-sub"], "alice", "{unary}");

    let stream = call(&gw, "/portero.test.Echo/Stream", Some(&token)).await;
    assert_eq!(stream["code"], "OK", "{stream}");
    assert_eq!(
        stream["messages"],
        serde_json::json!(["0:hello", "1:hello", "2:hello"])
    );
    assert_eq!(stream["trailing"]["x-stream-end"], "done", "{stream}");

    let anonymous = call(&gw, "/portero.test.Echo/Unary", None).await;
    assert_eq!(anonymous["code"], "UNAUTHENTICATED", "{anonymous}");
    assert_eq!(anonymous["details"], "no token");

    let forged = call(&gw, "/portero.test.Echo/Unary", Some("not.a.token")).await;
    assert_eq!(forged["code"], "UNAUTHENTICATED", "{forged}");

    let short_of_role = call(&gw, "/portero.test.Admin/Stats", Some(&token)).await;
    assert_eq!(
        short_of_role["code"], "PERMISSION_DENIED",
        "{short_of_role}"
    );
    drop(gw);

    // The upstream gone: UNAVAILABLE, not a protocol error.
    let dead = format!("[\"127.0.0.1:{}\"]", free_port());
    let gw = Gateway::start(&config(&format!(
        "[upstreams.grpc]\nservers = {dead}\nprotocol = \"h2c\"\nhealth_check = \"none\"\n"
    )))
    .await;
    let unavailable = call(&gw, "/portero.test.Echo/Unary", Some(&token)).await;
    assert_eq!(unavailable["code"], "UNAVAILABLE", "{unavailable}");
    assert_eq!(unavailable["details"], "upstream failed");
}
