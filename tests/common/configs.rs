//! Config text for the tables tests share: issuers, upstreams, the demo.

use std::net::SocketAddr;

use super::fixture;

/// Issuer tables for the four key types, on the fixture keys.
pub fn issuers() -> String {
    let f = |n: &str| fixture(n).display().to_string();
    format!(
        r#"
[issuers.test]
iss = "test-issuer"

[[issuers.test.keys]]
kid = "hs-1"
alg = "HS256"
secret_env = "TEST_HS_SECRET"

[[issuers.test.keys]]
kid = "rs-1"
alg = "RS256"
public_key_file = "{rs}"

[[issuers.test.keys]]
kid = "es-1"
alg = "ES256"
public_key_file = "{es}"

[[issuers.test.keys]]
kid = "ed-1"
alg = "EdDSA"
public_key_file = "{ed}"

[issuers.other]
iss = "other-issuer"

[[issuers.other.keys]]
kid = "other-1"
alg = "HS256"
secret_env = "TEST_HS_SECRET"
"#,
        rs = f("rsa_public.pem"),
        es = f("ec_public.pem"),
        ed = f("ed_public.pem"),
    )
}

/// The demo config's issuers and routes (every seed's token endpoint),
/// in front of its built-in echo upstream.
pub fn demo_body() -> String {
    let demo =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml")).unwrap();
    let from = demo
        .find("# One issuer per token-endpoint dialect")
        .unwrap();
    format!("[upstreams.echo]\nbuiltin = \"echo\"\n\n{}", &demo[from..])
}

/// An upstream table pointing at the given servers.
pub fn upstream(name: &str, servers: &[SocketAddr], extra: &str) -> String {
    let list: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "[upstreams.{name}]\nservers = [{}]\n{extra}\n",
        list.join(", ")
    )
}
