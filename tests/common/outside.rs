//! The outside programs some tests need (a Redis, nginx, Node.js...), and
//! the one way a test skips without one. libtest hides what a passing test
//! prints with `eprintln!`, so a skip would look like a pass: the skip line
//! is written to stderr itself, which libtest does not capture, naming the
//! test, what is missing and how to install it. Under
//! `PORTERO_REQUIRE_<NAME>=1` (as `.ci/run` sets) the test fails instead.

use std::io::Write;

/// An outside program, or set of them, that some tests need.
#[derive(Clone, Copy, Debug)]
pub enum Outside {
    Redis,
    Browser,
    Nginx,
    Schemathesis,
    Oidc,
    Grpc,
    /// oauth4webapi, on Node.js.
    OAuth2ClientsJs,
    /// authlib and requests-oauthlib.
    OAuth2ClientsPython,
    /// The PyPI `mcp` package, an MCP server behind portero.
    McpServer,
    /// npm's MCP conformance suite and the Node.js 22 it runs on.
    Conformance,
    HashLibraries,
    /// Flask (with werkzeug), an upstream application.
    Flask,
    /// Express on Node.js, and PHP: upstreams read by their own parsers.
    UpstreamParsers,
    Postgres,
    MariaDb,
    Promtool,
}

impl Outside {
    /// The variable that turns its absence into a failure.
    fn required_by(self) -> Option<&'static str> {
        Some(match self {
            Outside::Redis => "PORTERO_REQUIRE_REDIS",
            Outside::Browser => "PORTERO_REQUIRE_BROWSER",
            Outside::Nginx => "PORTERO_REQUIRE_NGINX",
            Outside::Schemathesis => "PORTERO_REQUIRE_SCHEMATHESIS",
            Outside::Oidc => "PORTERO_REQUIRE_OIDC",
            Outside::Grpc => "PORTERO_REQUIRE_GRPC",
            Outside::OAuth2ClientsJs
            | Outside::OAuth2ClientsPython
            | Outside::McpServer
            | Outside::Conformance => "PORTERO_REQUIRE_OAUTH2_CLIENTS",
            Outside::HashLibraries => "PORTERO_REQUIRE_HASH_LIBRARIES",
            Outside::Flask => "PORTERO_REQUIRE_FLASK",
            Outside::UpstreamParsers => "PORTERO_REQUIRE_UPSTREAM_PARSERS",
            Outside::Postgres => "PORTERO_REQUIRE_POSTGRES",
            Outside::MariaDb => "PORTERO_REQUIRE_MARIADB",
            // Only part of a test needs it; the rest runs either way.
            Outside::Promtool => return None,
        })
    }

    /// How to install it: the packages `.ci/run` installs (README.md,
    /// "The tests", has the same table).
    fn install(self) -> &'static str {
        match self {
            Outside::Redis => {
                "apt-get install redis-server redis-tools, or set PORTERO_TEST_REDIS_URL"
            }
            Outside::Browser => "apt-get install chromium chromium-driver",
            Outside::Nginx => "apt-get install nginx",
            Outside::Schemathesis => "python3 -m pip install 'schemathesis==4.32.5'",
            Outside::Oidc => "apt-get install nodejs npm; (cd tests/oidc && npm ci)",
            Outside::Grpc => "python3 -m pip install grpcio",
            Outside::OAuth2ClientsJs => "apt-get install nodejs npm; (cd tests/oidc && npm ci)",
            Outside::OAuth2ClientsPython => "python3 -m pip install authlib requests-oauthlib",
            Outside::McpServer => "python3 -m pip install 'mcp==2.3.0'",
            Outside::Conformance => "apt-get install npm; (cd tests/conformance && npm ci)",
            Outside::HashLibraries => "python3 -m pip install passlib bcrypt argon2-cffi django",
            Outside::Flask => "python3 -m pip install flask",
            Outside::UpstreamParsers => {
                "apt-get install nodejs npm php-cli; (cd tests/oidc && npm ci)"
            }
            Outside::Postgres => "apt-get install postgresql, or set PORTERO_TEST_POSTGRES_URL",
            Outside::MariaDb => "apt-get install mariadb-server, or set PORTERO_TEST_MYSQL_URL",
            Outside::Promtool => "apt-get install prometheus",
        }
    }
}

/// Whether `needs` is here; `missing` says what is not, `None` when all is.
/// Without it: a failure under its `PORTERO_REQUIRE_*` variable, else a
/// skip line (see [`skipped`]) and `false`.
pub fn outside_program(needs: Outside, missing: Option<String>) -> bool {
    match missing {
        None => true,
        Some(missing) => {
            skipped(needs, &missing);
            false
        }
    }
}

/// The test skips (all of it, or the part `missing` names) because `needs`
/// is missing; panics instead under its `PORTERO_REQUIRE_*` variable.
pub fn skipped(needs: Outside, missing: &str) {
    if let Some(var) = needs.required_by() {
        assert!(
            std::env::var(var).as_deref() != Ok("1"),
            "{var}=1 but {missing}"
        );
    }
    let failure = match needs.required_by() {
        Some(var) => format!(" ({var}=1 makes this a failure)"),
        None => String::new(),
    };
    // libtest names each test's thread after the test, whose module is
    // its file: `auth::x` is in tests/auth.rs.
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let file = test.split_once("::").map_or("main", |(module, _)| module);
    let line = format!(
        "SKIPPED tests/{file}.rs {test}: {missing}; install: {}{failure}\n",
        needs.install()
    );
    // One write, so that tests running at once do not interleave their lines.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
