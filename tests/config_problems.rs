//! What `portero check` says of a file written to mislead it: every
//! problem at its true line and key, no secret or control character from
//! the file echoed, and a bounded amount of work however many problems.

use crate::common;

use common::check;

/// The demo config as shipped.
fn demo() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml")).unwrap()
}

/// The line (from 1) of the first line of `text` that starts with `start`.
fn line_of(text: &str, start: &str) -> usize {
    text.lines().position(|l| l.starts_with(start)).unwrap() + 1
}

#[test]
fn an_unknown_key_alone_in_an_inline_table_moves_no_line() {
    // A comment with a comma above the only entry of an inline table: the
    // entry goes, the comment and the lines between stay.
    let text = demo()
        .replacen(
            "name = \"websocket\"",
            "name = \"websocket\"\nconcurrency = { max_inflight = 4 }",
            1,
        )
        .replacen(
            "name = \"default\"\npath = \"/\"\nupstream = \"echo\"",
            "name = \"default\"\npath = \"/\"\nupstream = \"ecoh\"",
            1,
        );
    let (ok, err) = check(&text);
    assert!(!ok);
    let inline = line_of(&text, "concurrency = { max_inflight");
    let ecoh = line_of(&text, "upstream = \"ecoh\"");
    assert!(
        err.contains(&format!(
            "gateway.toml:{inline}: routes[1].concurrency.max_inflight: unknown field `max_inflight`"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "gateway.toml:{ecoh}: routes[3].upstream: no upstream named \"ecoh\""
        )),
        "{err}"
    );
    assert!(err.contains(": 2 problem(s)"), "{err}");
}

#[test]
fn keys_are_named_through_quotes_spaces_and_multi_line_strings() {
    let text = format!(
        "{}\n[upstreams.\"billing.v2\"]\nbuiltin = \"echo\"\ncolour = 1\n\n\
         [[ routes ]]\npath = \"/b\"\nupstream = \"echo\"\ntimeout = 5\n\n\
         [issuers.s]\ndialect = \"session\"\n[issuers.s.user_store]\n\
         url = \"postgres://db/users\"\nquery = '''\n[admin]\nSELECT 1\n'''\nshade = 1\n",
        demo()
    );
    let (ok, err) = check(&text);
    assert!(!ok);
    for (start, key) in [
        ("colour = 1", "upstreams.\"billing.v2\".colour"),
        ("timeout = 5", "routes[4].timeout"),
        ("shade = 1", "issuers.s.user_store.shade"),
    ] {
        let at = line_of(&text, start);
        assert!(
            err.contains(&format!("gateway.toml:{at}: {key}: unknown field")),
            "{key}\n{err}"
        );
    }
}

#[test]
fn a_secret_in_the_wrong_place_is_not_echoed() {
    for (table, secret) in [
        (
            "[issuers.s]\ndialect = \"session\"\nuser_store = \"postgres://portero:Pg-S3cret-Pw@db.internal/users\"",
            "Pg-S3cret-Pw",
        ),
        ("[issuers.s]\nblocked = \"uperS3cretPassw0rd\"", "uperS3cretPassw0rd"),
        (
            "[issuers.s]\ndialect = \"client-flat\"\n[[issuers.s.principals]]\nclient_id = \"a\"\nsecret_hash = '$uperS3cretPassw0rd!'",
            "uperS3cret",
        ),
    ] {
        let (ok, err) = check(&format!("{}\n{table}\n", demo()));
        assert!(!ok, "{table}");
        assert!(!err.contains(secret), "{table}\n{err}");
    }
    // Not TOML: where the parser stopped, never the line.
    let (ok, err) = check("admin.token = \"Adm1n-T0ken-S3cret\"\n[[listen]\n");
    assert!(!ok);
    assert!(!err.contains("Adm1n-T0ken-S3cret"), "{err}");
}

#[test]
fn control_characters_from_the_file_are_escaped() {
    let text = format!(
        "{}\n[issuers.\"x\\n  gateway.toml:1: admin.token_env: FAKE\\u001b[2J\"]\ndialect = \"nope\"\n\
         [upstreams.more]\nbuiltin = \"echo\"\n\"y\\n  gateway.toml:2: FAKE\\u001b[31m\" = 1\n",
        demo()
    );
    let (ok, err) = check(&text);
    assert!(!ok);
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(
        !err.lines()
            .any(|l| l.contains("FAKE") && l.trim_start().starts_with("gateway.toml:1")),
        "{err}"
    );
    assert!(
        !err.lines()
            .any(|l| l.trim_start().starts_with("gateway.toml:2: FAKE")),
        "{err}"
    );
}

#[test]
fn past_fifty_problems_the_file_is_not_read_further() {
    let keys: String = (0..2000).map(|i| format!("k{i} = 1\n")).collect();
    let text = demo().replacen("[server]\n", &format!("[server]\n{keys}"), 1);
    let (ok, err) = check(&text);
    assert!(!ok);
    assert!(
        err.contains(": 51 problem(s)"),
        "{}",
        &err[..err.len().min(2000)]
    );
    assert!(
        err.contains("50 problems and not read further: fix these first"),
        "{err}"
    );
}

#[test]
fn a_type_error_hides_no_other_tables_problems() {
    // Values of the wrong type (one over several lines, one that leaves
    // the lines after it shorter once set aside), a table missing a key,
    // and the problems only the checks see, in other tables: all in one
    // run, each at its line and key.
    let text = r#"
[server]
public_url = "http://127.0.0.1:8080"
log_format = ["json", "with colours", "and more"]

[[listen]]
addr = "127.0.0.1:0"

[upstreams.api]
builtin = "echo"
connect_timeout = "5 parsecs"

[issuers.app]
kind = "oauth2"

[[issuers.app.users]]
username = "ada"

[[issuers.app.clients]]
client_id = "web"
redirect_uris = ["ftp://app.example/cb"]

[[routes]]
name = "health"
path = "/health"
public = true
upstream = [
  "api",
]

[[routes]]
name = "items"
path = "/items"
upstream = "apii"
rate_limit = { requests = 5, per = "1s", scope = "cluster" }

[[routes]]
name = "api"
path = "/"
upstream = "api"
headers = { x-user-roles = "roles", x-user-sub = 5 }
"#;
    let (ok, err) = check(text);
    assert!(!ok);
    for (start, key, message) in [
        (
            "log_format",
            "server.log_format",
            "invalid type: sequence, expected a string",
        ),
        (
            "connect_timeout",
            "upstreams.api.connect_timeout",
            "\"5 parsecs\"",
        ),
        (
            "[[issuers.app.users]]",
            "issuers.app.users[0]",
            "missing field `secret_hash`",
        ),
        (
            "redirect_uris",
            "issuers.app.clients[0].redirect_uris",
            "\"ftp://app.example/cb\"",
        ),
        (
            "upstream = [",
            "routes[0].upstream",
            "invalid type: sequence, expected a string",
        ),
        (
            "upstream = \"apii\"",
            "routes[1].upstream",
            "no upstream named \"apii\"",
        ),
        (
            "rate_limit",
            "routes[1].rate_limit.scope",
            "\"cluster\" shares counts",
        ),
        (
            "headers",
            "routes[2].headers.x-user-sub",
            "invalid type: integer `5`",
        ),
    ] {
        let line = line_of(text, start);
        assert!(
            err.contains(&format!("gateway.toml:{line}: {key}: {message}")),
            "{key}\n{err}"
        );
    }
    assert!(err.contains(": 8 problem(s)"), "{err}");
}
