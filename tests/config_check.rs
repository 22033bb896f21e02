//! `portero check`: a good config passes; a bad one fails naming the file,
//! line and key of every problem.

use crate::common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use common::check;

const GOOD: &str = r#"
[[listen]]
addr = "127.0.0.1:8080"

[upstreams.echo]
builtin = "echo"

[issuers.demo]

[[routes]]
path = "/"
upstream = "echo"
"#;

#[test]
fn the_demo_config_passes() {
    let demo =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.toml")).unwrap();
    let (ok, err) = check(&demo);
    assert!(ok, "{err}");
    let (ok, err) = check(GOOD);
    assert!(ok, "{err}");
}

#[test]
fn the_quickstart_config_passes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/quickstart.toml");
    let (ok, err) = check(&std::fs::read_to_string(path).unwrap());
    assert!(ok, "{err}");
}

/// An issuer's table is read by its `kind`: a key its kind never reads
/// is refused at its line, naming the keys the kind takes, wherever
/// `kind` is written in the table.
#[test]
fn a_key_an_issuers_kind_never_reads_is_refused_at_its_line() {
    let with = |issuer: &str| {
        format!("[server]\npublic_url = \"https://x.test\"\n{GOOD}\n[issuers.app]\n{issuer}")
    };
    let standard = "kind = \"oauth2\"\n";
    let api_key = "kind = \"api_key\"\n";
    let provider = "iss = \"https://idp.test\"\njwks_url = \"https://idp.test/jwks\"\n";
    // Each kind's own keys pass, `kind` written first or last.
    for issuer in [
        format!("{standard}token_ttl = \"5m\"\nmax_failures = 3\n"),
        format!("token_ttl = \"5m\"\nmax_failures = 3\n{standard}"),
        format!("iss = \"keys\"\n{api_key}"),
    ] {
        let (ok, err) = check(&with(&issuer));
        assert!(ok, "{issuer}: {err}");
    }
    // The line (from 1) where `name` is written.
    let line_of = |text: &str, name: &str| {
        1 + text
            .lines()
            .position(|l| l.starts_with(&format!("{name} =")))
            .unwrap()
    };
    for (issuer, name) in [
        // Keys of an outside provider or of opaque tokens, which a
        // standard issuer never fetches or asks.
        (
            format!("{standard}jwks_refresh_min = \"1m\"\n"),
            "jwks_refresh_min",
        ),
        (format!("{standard}client_id = \"x\"\n"), "client_id"),
        (
            format!("introspection_timeout = \"1s\"\n{standard}"),
            "introspection_timeout",
        ),
        (format!("{standard}allow_no_exp = true\n"), "allow_no_exp"),
        (
            format!("{standard}login_userinfo = true\n"),
            "login_userinfo",
        ),
        // An API key issuer has no endpoint, lockout, limits or provider.
        (format!("{api_key}max_failures = 3\n"), "max_failures"),
        (
            format!("{api_key}allow_ips = [\"10.0.0.0/8\"]\n"),
            "allow_ips",
        ),
        (
            format!("{api_key}introspection_url = \"https://idp.test/i\"\n"),
            "introspection_url",
        ),
        (
            format!("{api_key}login_client_id = \"web\"\n"),
            "login_client_id",
        ),
        // Users and clients are a standard issuer's.
        ("clients = []\n".to_string(), "clients"),
        // An outside provider's issuer has no endpoint, principals or keys here.
        (format!("{provider}max_failures = 4\n"), "max_failures"),
        (format!("{provider}time_zone = \"+02:00\"\n"), "time_zone"),
        (format!("{provider}principals = []\n"), "principals"),
        (format!("{provider}token_ttl = \"1h\"\n"), "token_ttl"),
        // Keys with no dialect serve no endpoint: no principal could log in.
        ("principals = []\n".to_string(), "principals"),
        ("max_failures = 4\n".to_string(), "max_failures"),
        ("allow_ips = [\"10.0.0.0/8\"]\n".to_string(), "allow_ips"),
        ("cors = \"web\"\n".to_string(), "cors"),
    ] {
        let config = with(&issuer);
        let (ok, err) = check(&config);
        assert!(!ok, "{issuer}: passed");
        let (key, line) = (format!("issuers.app.{name}"), line_of(&config, name));
        let said = err
            .lines()
            .find(|l| l.contains(&format!(":{line}: {key}: unknown field")))
            .unwrap_or_else(|| panic!("{key} not refused at line {line}:\n{err}"));
        let names_keys = said.contains("expected") && said.contains("`kind`");
        assert!(names_keys || said.contains("did you mean"), "{said}");
    }
    // A kind portero does not know is named at its line.
    let config = with("kind = \"saml\"\n");
    let (ok, err) = check(&config);
    let said = format!(
        ":{}: issuers.app.kind: \"saml\" is not",
        line_of(&config, "kind")
    );
    assert!(!ok && err.contains(&said), "{err}");
}

/// Settings of an issuer that nothing reads, or with which its accounts
/// could never log in, are refused at the line they are written on.
#[test]
fn issuer_settings_that_could_never_work_are_refused_at_their_line() {
    let hash = portero::credentials::hash_fast("s3cret-s3cret-s3cret");
    let with =
        |issuers: &str| format!("[server]\npublic_url = \"https://x.test\"\n{GOOD}\n{issuers}");
    let standard = "[issuers.zzz]\nkind = \"oauth2\"\n";
    // A client-flat issuer with `extra` among its keys.
    let flat = |extra: &str| {
        format!(
            "[issuers.flat]\ndialect = \"client-flat\"\ncompanies = [\"acme\"]\n{extra}\
             [[issuers.flat.principals]]\nclient_id = \"svc\"\nsecret_hash = \"{hash}\"\ncompany = \"acme\"\n"
        )
    };
    let (ok, err) = check(&with(&format!("{standard}{}", flat(""))));
    assert!(ok, "{err}");
    for (issuers, key, at) in [
        // The metadata would send clients to a host the endpoints are not on.
        (format!("{standard}host = \"auth.other.test\"\n"), "issuers.zzz.host", "host ="),
        // Two token endpoints on one path of one host: the second never answers.
        (
            "[issuers.one]\ndialect = \"session\"\n[issuers.two]\ndialect = \"session\"\n".to_string(),
            "issuers.two.path",
            "dialect = \"session\"\n[issuers.two]\ndialect",
        ),
        (
            format!("[issuers.aaa]\ndialect = \"session\"\npath = \"/oauth2/zzz/token\"\n{standard}"),
            "issuers.aaa.path",
            "path = \"/oauth2",
        ),
        // Nothing fits, nothing lasts.
        (flat("max_body_size = \"0\"\n"), "issuers.flat.max_body_size", "max_body_size ="),
        (flat("body_timeout = \"0s\"\n"), "issuers.flat.body_timeout", "body_timeout ="),
        (flat("deny_ips = [\"0.0.0.0/0\", \"::/0\"]\n"), "issuers.flat.deny_ips", "deny_ips ="),
        (format!("{standard}token_ttl = \"0s\"\n"), "issuers.zzz.token_ttl", "token_ttl ="),
        // Keys only another dialect reads.
        ("[issuers.lr]\ndialect = \"login-refresh\"\ntime_zone = \"-05:00\"\n".to_string(), "issuers.lr.time_zone", "time_zone ="),
        ("[issuers.s]\ndialect = \"session\"\nmax_years = 5\n".to_string(), "issuers.s.max_years", "max_years ="),
        ("[issuers.s]\ndialect = \"session\"\ncompanies = [\"acme\"]\n".to_string(), "issuers.s.companies", "companies ="),
        ("[issuers.p]\ndialect = \"project\"\ntoken_ttl = \"5m\"\n".to_string(), "issuers.p.token_ttl", "token_ttl ="),
        // Refresh tokens nobody issues.
        ("[issuers.s]\ndialect = \"session\"\nrefresh_ttl = \"30d\"\n".to_string(), "issuers.s.refresh_ttl", "refresh_ttl ="),
        (
            format!("{standard}refresh_ttl = \"30d\"\n[issuers.zzz.oauth2]\nauthorization_code = false\n"),
            "issuers.zzz.refresh_ttl",
            "refresh_ttl =",
        ),
        // Only a JWT's verification reads allow_no_exp.
        (
            "[issuers.idp]\niss = \"https://idp.test\"\nclient_id = \"portero\"\nclient_secret_env = \"IDP_SECRET\"\n\
             introspection_url = \"https://idp.test/introspect\"\nallow_no_exp = true\n".to_string(),
            "issuers.idp.allow_no_exp",
            "allow_no_exp =",
        ),
    ] {
        let config = with(&issuers);
        let (ok, err) = check(&config);
        assert!(!ok, "{issuers}: passed");
        let line = 1 + config[..config.find(at).unwrap_or_else(|| panic!("{at:?}"))]
            .matches('\n')
            .count()
            + at.matches('\n').count();
        assert!(
            err.contains(&format!(":{line}: {key}:")),
            "{key} not named at line {line}:\n{err}\n{config}"
        );
    }
}

#[test]
fn standard_issuers_refuse_what_they_never_read_or_could_never_use() {
    let with = |issuer: &str| {
        format!("[server]\npublic_url = \"https://x.test\"\n{GOOD}\n[issuers.app]\nkind = \"oauth2\"\n{issuer}")
    };
    let user = "[[issuers.app.users]]\nusername = \"ada\"\nsecret_hash = \"$portero-hmac-sha256$eWKIcHJ5mWFyA1fH2QnC_Q$gN8GIR2gPZB7VAMZrc3jj8lqzJocb9KWCpkfYHO9YQo\"\n";
    let web =
        "[[issuers.app.clients]]\nclient_id = \"web\"\nredirect_uris = [\"https://x.test/cb\"]\n";
    let (ok, err) = check(&with(&format!("{user}{web}")));
    assert!(ok, "{err}");
    let remembering = "[issuers.app.oauth2]\nregistration = \"open\"\nconsent_ttl = \"30d\"\n\
                       scope_descriptions = { openid = \"Know who you are\" }\n";
    let (ok, err) = check(&with(&format!("{user}{web}{remembering}")));
    assert!(ok, "{err}");
    let factors = "[issuers.app.sign_in]\npasskeys = true\nrp_id = \"x.test\"\n\
                   second_factor = \"required\"\nlegacy_password_only = true\n";
    let (ok, err) = check(&with(&format!("{user}{web}{factors}")));
    assert!(ok, "{err}");
    for (issuer, named) in [
        // Keys of a legacy endpoint, which a standard issuer has not.
        ("dialect = \"session\"\n".to_string(), "issuers.app.dialect"),
        ("path = \"/login\"\n".to_string(), "issuers.app.path"),
        ("iss = \"mine\"\n".to_string(), "issuers.app.iss"),
        // Users who could never sign in.
        (format!("{user}{web}\n[issuers.app.oauth2]\nauthorization_code = false\n"), "issuers.app.oauth2.authorization_code"),
        // A claim portero sets itself, or that routes read as scopes or roles.
        (user.replace("username = ", "claims = { sub = \"root\" }\nusername = ") + web, "issuers.app.users[0].claims"),
        (user.replace("username = ", "claims = { scp = [\"admin\"] }\nusername = "), "issuers.app.users[0].claims"),
        (user.replace("username = ", "claims = { role = \"root\" }\nusername = "), "issuers.app.users[0].claims"),
        // How a person signed in is portero's to say, never a user's claim.
        (user.replace("username = ", "claims = { amr = [\"hwk\", \"mfa\"] }\nusername = ") + web, "issuers.app.users[0].claims"),
        (user.replace("username = ", "claims = { acr = \"urn:portero:acr:phr\" }\nusername = ") + web, "issuers.app.users[0].claims"),
        // A binding to a key, which would make every token of the user refused.
        (user.replace("username = ", "claims = { cnf = { jkt = \"x\" } }\nusername = ") + web, "issuers.app.users[0].claims"),
        // Users no client can sign in.
        (format!("{user}[[issuers.app.clients]]\nclient_id = \"svc\"\nsecret_hash = \"$portero-hmac-sha256$eWKIcHJ5mWFyA1fH2QnC_Q$gN8GIR2gPZB7VAMZrc3jj8lqzJocb9KWCpkfYHO9YQo\"\n"), "issuers.app.users"),
        // Grants a client could never use.
        ("[[issuers.app.clients]]\nclient_id = \"cli\"\nredirect_uris = [\"https://a.test/cb\"]\ngrant_types = [\"refresh_token\"]\n".to_string(), "issuers.app.clients[0].grant_types"),
        ("[[issuers.app.clients]]\nclient_id = \"cli\"\nredirect_uris = [\"https://a.test/cb\"]\ngrant_types = []\n".to_string(), "issuers.app.clients[0].grant_types"),
        ("[[issuers.app.clients]]\nclient_id = \"cli\"\nredirect_uris = [\"https://a.test/cb\"]\nscopes = [\"a b\"]\n".to_string(), "issuers.app.clients[0].scopes"),
        // Settings nothing reads.
        ("[issuers.app.oauth2]\nregistered_client_ttl = \"1d\"\n".to_string(), "issuers.app.oauth2.registered_client_ttl"),
        ("[issuers.app.oauth2]\nregistration = \"open\"\nregistration_rate = 0\n".to_string(), "issuers.app.oauth2.registration_rate"),
        // A public client with nowhere to send a code.
        ("[[issuers.app.clients]]\nclient_id = \"cli\"\n".to_string(), "issuers.app.clients[0]"),
        // A grant a public client can never use.
        ("[[issuers.app.clients]]\nclient_id = \"cli\"\nredirect_uris = [\"https://a.test/cb\"]\ngrant_types = [\"client_credentials\"]\n".to_string(), "issuers.app.clients[0].grant_types"),
        // An http redirect URI off loopback, and a fragment.
        ("[[issuers.app.clients]]\nclient_id = \"cli\"\nredirect_uris = [\"http://a.test/cb\"]\n".to_string(), "issuers.app.clients[0].redirect_uris"),
        ("[[issuers.app.clients]]\nclient_id = \"cli\"\nredirect_uris = [\"https://a.test/cb#x\"]\n".to_string(), "issuers.app.clients[0].redirect_uris"),
        // Registration settings that do nothing, or cannot work.
        ("[issuers.app.oauth2]\nregistration_rate = 5\n".to_string(), "issuers.app.oauth2.registration_rate"),
        ("[issuers.app.oauth2]\nregistration = \"token\"\n".to_string(), "issuers.app.oauth2.registration"),
        // Metadata document settings without documents, or documents that no sign-in reads.
        ("[issuers.app.oauth2]\nclient_metadata_private_hosts = [\"localhost\"]\n".to_string(), "issuers.app.oauth2.client_metadata_private_hosts"),
        ("[issuers.app.oauth2]\nclient_metadata_ca_file = \"ca.pem\"\n".to_string(), "issuers.app.oauth2.client_metadata_ca_file"),
        ("[issuers.app.oauth2]\nclient_metadata_documents = true\nauthorization_code = false\n".to_string(), "issuers.app.oauth2.client_metadata_documents"),
        ("[issuers.app.oauth2]\nclient_metadata_documents = true\nclient_metadata_private_hosts = [\"https://x.test:8443\"]\n".to_string(), "issuers.app.oauth2.client_metadata_private_hosts"),
        ("[issuers.app.oauth2]\nclient_metadata_documents = true\nclient_metadata_ca_file = \"/nonexistent/ca.pem\"\n".to_string(), "issuers.app.oauth2.client_metadata_ca_file"),
        // The account page's own client, which a configured one would shadow.
        ("[[issuers.app.clients]]\nclient_id = \"portero:account\"\nredirect_uris = [\"https://a.test/cb\"]\n".to_string(), "issuers.app.clients[0].client_id"),
        // Sign-in factors that cannot work, or that nothing reads.
        (format!("{user}{web}[issuers.app.sign_in]\nsecond_factor = \"always\"\n"), "issuers.app.sign_in.second_factor"),
        (format!("{user}{web}[issuers.app.sign_in]\nrp_id = \"x.test\"\n"), "issuers.app.sign_in.rp_id"),
        (format!("{user}{web}[issuers.app.sign_in]\npasskeys = true\nrp_id = \"other.test\"\n"), "issuers.app.sign_in.rp_id"),
        (format!("{user}{web}[issuers.app.sign_in]\npasskeys = true\nrp_id = \"test\"\n"), "issuers.app.sign_in.rp_id"),
        (format!("{user}{web}[issuers.app.sign_in]\nlegacy_password_only = true\n"), "issuers.app.sign_in.legacy_password_only"),
        // Words for a text the pages never say, that drop a placeholder, or a language that is none.
        (format!("{user}{web}[issuers.app.sign_in]\ntext = {{ \"Sign on\" = \"Anmelden\" }}\n"), "issuers.app.sign_in.text.\"Sign on\""),
        (format!("{user}{web}[issuers.app.sign_in]\ntext = {{ \"Signing in as {{user}}.\" = \"Anmeldung\" }}\n"), "issuers.app.sign_in.text.\"Signing in as {user}.\""),
        (format!("{user}{web}[issuers.app.sign_in]\nlang = \"de de\"\n"), "issuers.app.sign_in.lang"),
        // Consents remembered where no client asks; words for no scope, or too many.
        ("[issuers.app.oauth2]\nconsent_ttl = \"30d\"\n".to_string(), "issuers.app.oauth2.consent_ttl"),
        ("[issuers.app.oauth2]\nregistration = \"open\"\nconsent_ttl = \"0s\"\n".to_string(), "issuers.app.oauth2.consent_ttl"),
        ("[issuers.app.oauth2]\nregistration = \"open\"\nconsent_ttl = \"500ms\"\n".to_string(), "issuers.app.oauth2.consent_ttl"),
        ("[issuers.app.oauth2]\nregistration = \"open\"\nconsent_ttl = \"9223372036854775807s\"\n".to_string(), "issuers.app.oauth2.consent_ttl"),
        (format!("{user}{web}[issuers.app.oauth2]\nscope_descriptions = {{ \"nothing:here\" = \"Do things\" }}\n"), "issuers.app.oauth2.scope_descriptions.nothing:here"),
        (format!("{user}{web}[issuers.app.oauth2]\nscope_descriptions = {{ openid = \"\" }}\n"), "issuers.app.oauth2.scope_descriptions.openid"),
        // The sign-in page's look: https or this origin only.
        ("[issuers.app.sign_in]\nlogo_url = \"javascript:alert(1)\"\n".to_string(), "issuers.app.sign_in.logo_url"),
        ("[issuers.app.sign_in]\nstylesheet_url = \"//evil.test/x.css\"\n".to_string(), "issuers.app.sign_in.stylesheet_url"),
    ] {
        let (ok, err) = check(&with(&issuer));
        assert!(!ok && err.contains(named), "{issuer}: {err}");
    }
    // A dialect's iss may not be an OAuth 2.0 issuer identifier.
    let clash = format!(
        "[server]\npublic_url = \"https://x.test\"\n{GOOD}\n[issuers.app]\nkind = \"oauth2\"\n\n\
         [issuers.leg]\ndialect = \"session\"\niss = \"https://x.test/oauth2/app\"\n"
    );
    let (ok, err) = check(&clash);
    assert!(!ok && err.contains("issuers.leg.iss"), "{err}");
    // Users and clients belong to a standard issuer only.
    let (ok, err) = check(&format!(
        "{GOOD}\n[[issuers.demo.users]]\nusername = \"a\"\nsecret_hash = \"x\"\n"
    ));
    assert!(!ok && err.contains("issuers.demo.users"), "{err}");
}

#[test]
fn the_local_cluster_configs_pass() {
    for n in 1..=3 {
        let path = format!("{}/deploy/cluster/node{n}.toml", env!("CARGO_MANIFEST_DIR"));
        let (ok, err) = check(&std::fs::read_to_string(&path).unwrap());
        assert!(ok, "{path}: {err}");
    }
}

#[test]
fn unknown_key_fails_naming_key_and_line() {
    let bad = GOOD.replace("builtin = \"echo\"", "builtin = \"echo\"\nretries = 3");
    let (ok, err) = check(&bad);
    assert!(!ok);
    assert!(
        err.contains(
            "gateway.toml:7: upstreams.echo.retries: unknown field `retries`, expected one of `"
        ),
        "{err}"
    );
}

#[test]
fn every_problem_is_named_at_once_unknown_keys_included() {
    let bad = GOOD
        .replace("builtin = \"echo\"", "builtin = \"echo\"\nretries = 3")
        .replace(
            "upstream = \"echo\"",
            "upstream = \"billing\"\ntimeout = \"1s\"\n\
             rate_limit = { requests = 1, per = \"1s\", wat = 2 }",
        )
        .replace(
            "[[listen]]\n",
            "[server]\nthreads = 0\nspeed = \"max\"\n\n[[listen]]\n",
        );
    let (ok, err) = check(&bad);
    assert!(!ok);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].ends_with("gateway.toml: 6 problem(s)"), "{err}");
    for (at, expected) in [
        (1, "gateway.toml:3: server.threads: must be at least 1"),
        (
            2,
            "gateway.toml:4: server.speed: unknown field `speed`, expected one of `threads`, ",
        ),
        (
            3,
            "gateway.toml:11: upstreams.echo.retries: unknown field `retries`",
        ),
        (
            4,
            "gateway.toml:17: routes[0].upstream: no upstream named \"billing\"",
        ),
        (
            5,
            "gateway.toml:18: routes[0].timeout: unknown field `timeout`",
        ),
        (
            6,
            "gateway.toml:19: routes[0].rate_limit.wat: unknown field `wat`, expected one of `requests`",
        ),
    ] {
        assert!(lines[at].contains(expected), "line {at}: {expected}\n{err}");
    }
}

#[test]
fn missing_upstream_reference_fails_naming_key_and_line() {
    let bad = GOOD.replace("upstream = \"echo\"", "upstream = \"billing\"");
    let (ok, err) = check(&bad);
    assert!(!ok);
    assert!(
        err.contains("gateway.toml:12: routes[0].upstream: no upstream named \"billing\""),
        "{err}"
    );
}

#[test]
fn bad_values_are_each_named() {
    let bad = GOOD
        .replace("addr = \"127.0.0.1:8080\"", "addr = \"localhost\"")
        .replace("path = \"/\"", "path = \"/\"\nmethods = [\"FETCH ME\"]\nissuers = [\"nobody\"]\ntoken_from = [\"bearer\", \"pigeon:t\"]");
    let (ok, err) = check(&bad);
    assert!(!ok);
    for needle in [
        "listen[0].addr",
        "routes[0].methods",
        "routes[0].issuers",
        "routes[0].token_from",
        "4 problem(s)",
    ] {
        assert!(err.contains(needle), "{needle} in:\n{err}");
    }
}

/// `method_override` where no override could ever choose the route (HEAD
/// and CONNECT are never read from one) is refused at its line; anywhere
/// else it loads, and a value that is not a boolean is named.
#[test]
fn a_method_override_that_could_never_choose_its_route_is_refused() {
    let with = |methods: &str, value: &str| {
        GOOD.replace(
            "upstream = \"echo\"\n",
            &format!("upstream = \"echo\"\nmethods = {methods}\nmethod_override = {value}\n"),
        )
    };
    let (ok, err) = check(&with(r#"["HEAD", "CONNECT"]"#, "true"));
    assert!(!ok);
    assert!(
        err.contains("gateway.toml:14: routes[0].method_override: no method of the route"),
        "{err}"
    );
    for (methods, value) in [
        (r#"["DELETE"]"#, "true"),
        ("[]", "true"),
        (r#"["HEAD"]"#, "false"),
    ] {
        let (ok, err) = check(&with(methods, value));
        assert!(ok, "{methods} {value}: {err}");
    }
    let (ok, err) = check(&with("[]", "\"yes\""));
    assert!(!ok);
    assert!(err.contains("routes[0].method_override"), "{err}");
}

/// DPoP's route keys load where a token can come as DPoP; on a public
/// route, on one that reads no Authorization header, or with a value that
/// could never pass, each is refused at its line.
#[test]
fn dpop_settings_are_refused_where_they_could_do_nothing() {
    let with = |keys: &str| {
        GOOD.replace(
            "upstream = \"echo\"\n",
            &format!("upstream = \"echo\"\n{keys}"),
        )
    };
    for keys in [
        "token_binding = \"required\"\ndpop_nonce = true\ndpop_algs = [\"ES256\", \"EdDSA\"]\n",
        "token_binding = \"allowed\"\ntoken_from = \"authorization\"\n",
    ] {
        let (ok, err) = check(&with(keys));
        assert!(ok, "{keys}: {err}");
    }
    for (keys, named) in [
        (
            "token_binding = \"always\"\n",
            "gateway.toml:13: routes[0].token_binding: \"always\"",
        ),
        (
            "dpop_algs = [\"HS256\"]\n",
            "gateway.toml:13: routes[0].dpop_algs: \"HS256\" is not an asymmetric",
        ),
        ("dpop_algs = [\"none\"]\n", "routes[0].dpop_algs: \"none\""),
        ("dpop_algs = []\n", "routes[0].dpop_algs: no algorithm"),
        (
            "public = true\ndpop_nonce = true\n",
            "routes[0].dpop_nonce: a public route takes no token",
        ),
        (
            "token_from = \"cookie:session\"\ntoken_binding = \"required\"\n",
            "routes[0].token_binding: a token comes as DPoP only in the Authorization header",
        ),
        (
            "login = \"demo\"\ntoken_binding = \"required\"\n",
            "routes[0].token_binding: a route that signs people in",
        ),
    ] {
        let (ok, err) = check(&with(keys));
        assert!(!ok, "{keys}");
        assert!(err.contains(named), "{keys}: {err}");
    }
}

/// `require_pushed_authorization_requests` where no authorization
/// request is ever made: refused at its key.
#[test]
fn pushed_requests_are_refused_where_nothing_reads_them() {
    let with = |issuer: &str| {
        format!("[server]\npublic_url = \"https://x.test\"\n{GOOD}\n[issuers.app]\nkind = \"oauth2\"\n{issuer}")
    };
    let user = "[[issuers.app.users]]\nusername = \"ada\"\nsecret_hash = \"$portero-hmac-sha256$eWKIcHJ5mWFyA1fH2QnC_Q$gN8GIR2gPZB7VAMZrc3jj8lqzJocb9KWCpkfYHO9YQo\"\n";
    let web =
        "[[issuers.app.clients]]\nclient_id = \"web\"\nredirect_uris = [\"https://x.test/cb\"]\n";
    let required = "require_pushed_authorization_requests = true\n";
    let (ok, err) = check(&with(&format!(
        "{user}{web}{required}[issuers.app.oauth2]\n{required}"
    )));
    assert!(ok, "{err}");
    let service = "[[issuers.app.clients]]\nclient_id = \"svc\"\nsecret_hash = \"$portero-hmac-sha256$eWKIcHJ5mWFyA1fH2QnC_Q$gN8GIR2gPZB7VAMZrc3jj8lqzJocb9KWCpkfYHO9YQo\"\n";
    let (ok, err) = check(&with(&format!("{user}{web}{service}{required}")));
    assert!(!ok);
    assert!(err.contains("issuers.app.clients[1].require_pushed_authorization_requests: the client makes no authorization requests"), "{err}");
    let off = "[issuers.app.oauth2]\nauthorization_code = false\n";
    let (ok, err) = check(&with(&format!("{service}{off}{required}")));
    assert!(!ok);
    assert!(err.contains("issuers.app.oauth2.require_pushed_authorization_requests: read only with authorization_code on"), "{err}");
}

/// Clients that authenticate with a certificate (RFC 8705 §2): one name
/// for `tls_client_auth`, certificates for `self_signed_tls_client_auth`,
/// a listener or trusted proxy that can bring one; names nothing reads refused.
#[test]
fn mutual_tls_clients_name_what_their_certificate_must_be() {
    let ca = common::tls::Ca::new("check-ca");
    let server = ca.leaf("server", &["localhost"]);
    let listener = format!(
        "[[listen]]\naddr = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\nclient_ca_file = \"{}\"\n",
        server.cert_file.display(),
        server.key_file.display(),
        ca.cert_file.display()
    );
    let with = |listen: &str, client: &str| {
        format!("[server]\npublic_url = \"https://x.test\"\n{listen}{GOOD}\n[issuers.app]\nkind = \"oauth2\"\n[[issuers.app.clients]]\nclient_id = \"svc\"\n{client}")
    };
    let named = "auth_method = \"tls_client_auth\"\ntls_client_auth_san_dns = \"svc.example\"\n";
    let leaf_as_root = listener.replace(
        &ca.cert_file.display().to_string(),
        &server.cert_file.display().to_string(),
    );
    let der = "MIIBszCCAVmgAwIBAgIUQ0VSVA==";
    let self_signed = format!("auth_method = \"self_signed_tls_client_auth\"\njwks = {{ keys = [{{ kty = \"EC\", crv = \"P-256\", x = \"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\", y = \"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\", x5c = [\"{der}\"] }}] }}\n");
    for client in [named.to_string(), self_signed] {
        let (ok, err) = check(&with(&listener, &client));
        assert!(ok, "{client}: {err}");
    }
    for (listen, client, named) in [
        (listener.as_str(), "auth_method = \"tls_client_auth\"\n".to_string(), "issuers.app.clients[0].auth_method: tls_client_auth names"),
        (listener.as_str(), format!("{named}tls_client_auth_san_uri = \"spiffe://x\"\n"), "exactly one name"),
        (listener.as_str(), "tls_client_auth_san_ip = \"10.0.0.1\"\nsecret_hash = \"$portero-hmac-sha256$eWKIcHJ5mWFyA1fH2QnC_Q$gN8GIR2gPZB7VAMZrc3jj8lqzJocb9KWCpkfYHO9YQo\"\n".to_string(), "read only with auth_method = \"tls_client_auth\""),
        (listener.as_str(), "auth_method = \"tls_client_auth\"\ntls_client_auth_san_ip = \"not an ip\"\n".to_string(), "not a name a certificate carries"),
        (listener.as_str(), "auth_method = \"self_signed_tls_client_auth\"\n".to_string(), "needs the client's certificates"),
        ("", named.to_string(), "no client certificate ever comes"),
        // A client's own certificate as a root would vouch for any name.
        (leaf_as_root.as_str(), named.to_string(), "client_ca_file: holds a certificate that is no CA"),
        (
            "client_cert_from_proxies = true\n",
            named.to_string(),
            "server.client_cert_from_proxies: no proxy is trusted",
        ),
    ] {
        let (ok, err) = check(&with(listen, &client));
        assert!(!ok, "{client}");
        assert!(err.contains(named), "{client}: {err}");
    }
}

#[test]
fn a_value_of_the_wrong_type_is_named_with_the_other_problems() {
    let bad = GOOD
        .replace("[[listen]]\n", "[server]\ngrace_period = 5\n\n[[listen]]\n")
        .replace("builtin = \"echo\"", "builtin = \"echo\"\nretries = 3")
        .replace("upstream = \"echo\"", "upstream = \"billing\"");
    let (ok, err) = check(&bad);
    assert!(!ok);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].ends_with("gateway.toml: 3 problem(s)"), "{err}");
    for (at, expected) in [
        (
            1,
            "gateway.toml:3: server.grace_period: invalid type: integer `5`, \
             expected a duration such as \"5s\"",
        ),
        (
            2,
            "gateway.toml:10: upstreams.echo.retries: unknown field `retries`",
        ),
        (
            3,
            "gateway.toml:16: routes[0].upstream: no upstream named \"billing\"",
        ),
    ] {
        assert!(lines[at].contains(expected), "line {at}: {expected}\n{err}");
    }
    // In an inline table, a list, a required key: each named, nothing said
    // of the stand-in that replaced it.
    let bad = GOOD.replace(
        "path = \"/\"",
        "path = 7\nmethods = [\"GET\", 5]\nrate_limit = { requests = \"many\", per = \"1s\" }",
    );
    let (ok, err) = check(&bad);
    assert!(!ok);
    for expected in [
        "gateway.toml: 3 problem(s)",
        "gateway.toml:11: routes[0].path: invalid type: integer `7`, expected a string",
        "gateway.toml:12: routes[0].methods: invalid type: integer `5`, expected a string",
        // A string is never echoed: it may be a secret in the wrong place.
        "gateway.toml:13: routes[0].rate_limit.requests: invalid type: a string, \
         expected a whole number, 0 or more",
    ] {
        assert!(err.contains(expected), "{expected}\n{err}");
    }
}

#[test]
fn malformed_toml_fails_with_its_position() {
    let (ok, err) = check("[[listen]\naddr = \"s3cret\"");
    assert!(!ok);
    // Where and why, on one line; never the line itself.
    assert!(
        err.contains("gateway.toml:1: invalid table header; expected `.`, `]]`"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
}

#[test]
fn principals_need_hashed_secrets_and_the_dialects_login_fields() {
    let with = |principal: &str| {
        format!("{GOOD}\n[issuers.flat]\ndialect = \"client-flat\"\n\n[[issuers.flat.principals]]\n{principal}\n")
    };
    // Plain text is never accepted as a stored secret.
    let (ok, err) = check(&with(
        "client_id = \"c\"\nsecret_hash = \"demo_secret_456_ABCDEFGH\"",
    ));
    assert!(!ok);
    assert!(
        err.contains("issuers.flat.principals[0].secret_hash"),
        "{err}"
    );
    assert!(err.contains("portero hash-secret"), "{err}");
    // client-flat logs in by client_id.
    let hash = portero::credentials::hash_fast("s3cret-s3cret-s3cret");
    let (ok, err) = check(&with(&format!(
        "username = \"u\"\nsecret_hash = \"{hash}\""
    )));
    assert!(!ok);
    assert!(err.contains("needs client_id"), "{err}");
    let (ok, err) = check(&with(&format!(
        "client_id = \"c\"\nsecret_hash = \"{hash}\"\ncompany = \"acme\""
    )));
    assert!(ok, "{err}");
    let (ok, err) = check(&GOOD.replace("[issuers.demo]", "[issuers.demo]\ndialect = \"soap\""));
    assert!(!ok);
    assert!(err.contains("unknown dialect \"soap\""), "{err}");
}

#[test]
fn principals_can_live_in_their_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let hash = portero::credentials::hash_fast("s3cret-s3cret-s3cret");
    std::fs::write(
        dir.path().join("clients.toml"),
        format!(
            "[[principals]]\nclient_id = \"c\"\nsecret_hash = \"{hash}\"\ncompany = \"acme\"\n"
        ),
    )
    .unwrap();
    let config = format!(
        "{GOOD}\n[issuers.flat]\ndialect = \"client-flat\"\nprincipals_file = \"{}\"\n",
        dir.path().join("clients.toml").display()
    );
    let (ok, err) = check(&config);
    assert!(ok, "{err}");
    let (ok, err) = check(&config.replace("clients.toml", "missing.toml"));
    assert!(!ok);
    assert!(err.contains("principals_file"), "{err}");
    // A problem in the file is named by its key: the file's positions
    // are not the config's lines.
    std::fs::write(
        dir.path().join("clients.toml"),
        format!("[[principals]]\nclient_id = \"c\"\nsecret_hash = \"{hash}\"\nrole = \"x\"\n"),
    )
    .unwrap();
    let (ok, err) = check(&config);
    assert!(!ok);
    assert!(
        err.contains("gateway.toml: issuers.flat.principals[0].role: the client-flat dialect never reads role"),
        "{err}"
    );
    // A problem past the config's own length (a longer file) is named the
    // same way, and the config's text is never printed.
    std::fs::write(
        dir.path().join("clients.toml"),
        format!("{}[[principals]]\nclient_id = \"c\"\nsecret_hash = \"not-a-hash\"\ncompany = \"acme\"\n", "# padding\n".repeat(400)),
    )
    .unwrap();
    let (ok, err) = check(&config);
    assert!(!ok);
    assert!(
        err.contains("gateway.toml: issuers.flat.principals[0].secret_hash"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("[[listen]]"),
        "{err}"
    );
}

#[test]
fn store_settings_are_checked() {
    let with = |store: &str| format!("{GOOD}\n[store]\n{store}\n");
    let (ok, err) = check(&with(
        "backend = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\nkey_prefix = \"p:\"\ntimeout = \"250ms\"\non_outage = \"fail-closed\"",
    ));
    assert!(ok, "{err}");
    for (store, needle) in [
        (
            "backend = \"redis\"\nurl = \"redis://:hunter2@127.0.0.1:6379\"",
            "store.url: holds a password: name an environment variable in store.password_env instead",
        ),
        (
            "backend = \"redis\"\nurl = \"rediss://cache.internal:6380/#insecure\"",
            "store.url: TLS certificate checks cannot be turned off",
        ),
        (
            "backend = \"redis\"",
            "store.url: the redis backend needs a url",
        ),
        (
            "backend = \"redis\"\nurl = \"http://127.0.0.1:6379\"",
            "store.url: expected a redis:// or rediss:// url",
        ),
        ("backend = \"memcached\"", "store.backend: \"memcached\""),
        ("on_outage = \"fail-open\"", "store.on_outage: \"fail-open\""),
        ("url = \"redis://127.0.0.1:6379\"", "store.url: only the redis backend takes a url"),
        ("backend = \"redis\"\nurl = \"redis://x:1\"\npassword = \"x\"", "unknown field `password`"),
    ] {
        let (ok, err) = check(&with(store));
        assert!(!ok, "{store}");
        assert!(err.contains(needle), "{store}: {err}");
    }
}

#[test]
fn upstream_names_tls_files_and_dns_settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let upstream = format!(
        "[upstreams.api]\nservers = [\"orders.internal:8080\", \"10.0.0\", \"api:0\"]\n\
         tls = true\nca_file = \"{}\"\nclient_cert_file = \"{}\"\n\n\
         [upstreams.plain]\nservers = [\"127.0.0.1:9\"]\nsni = \"x\"\nprotocol = \"h2\"\n\n\
         [dns]\nmin_ttl = \"10m\"\nmax_ttl = \"1m\"\n",
        dir.path().join("missing.pem").display(),
        empty.display()
    );
    let (ok, err) = check(&format!("{GOOD}\n{upstream}"));
    assert!(!ok);
    for needle in [
        "upstreams.api.servers[1]: \"10.0.0\" is neither ip:port nor name:port",
        "upstreams.api.servers[2]",
        "upstreams.api.ca_file",
        "missing.pem",
        "upstreams.api.client_cert_file: client_cert_file and client_key_file go together",
        "upstreams.plain.sni: needs tls = true",
        "upstreams.plain.protocol: h2 needs tls = true",
        "dns.min_ttl",
    ] {
        assert!(err.contains(needle), "{needle}:\n{err}");
    }
    // Every problem names its line.
    let ca_line = GOOD.lines().count() + 5;
    assert!(
        err.contains(&format!(":{ca_line}: upstreams.api.ca_file")),
        "{err}"
    );

    // An existing file that holds no certificate is named too.
    let only_empty = format!(
        "{GOOD}\n[upstreams.api]\nservers = [\"orders.internal:8080\"]\ntls = true\nca_file = \"{}\"\n",
        empty.display()
    );
    let (ok, err) = check(&only_empty);
    assert!(!ok);
    assert!(err.contains("no certificate in it"), "{err}");
}

#[test]
fn health_check_tables_and_passive_ejection_are_checked() {
    let upstream =
        |extra: &str| format!("{GOOD}\n[upstreams.api]\nservers = [\"127.0.0.1:9\"]\n{extra}\n");
    let good = upstream(
        "health_check = { path = \"/healthz\", expect = [200], interval = \"2s\", timeout = \"1s\", \
         healthy_after = 2, unhealthy_after = 3 }\neject_after = 5\neject_for = \"30s\"\neject_on_5xx = true",
    );
    let (ok, err) = check(&good);
    assert!(ok, "{err}");
    for (extra, needle) in [
        (
            "health_check = { pth = \"/healthz\" }",
            "unknown field `pth`",
        ),
        (
            "health_check = { path = \"healthz\" }",
            "path must start with /",
        ),
        (
            "health_check = { path = \"/h\", interval = \"soon\" }",
            "health_check.interval",
        ),
        ("health_check = \"http\"", "unknown health check"),
        (
            "eject_after = 0",
            "upstreams.api.eject_after: must be at least 1",
        ),
    ] {
        let (ok, err) = check(&upstream(extra));
        assert!(!ok, "{extra}");
        assert!(err.contains(needle), "{extra}: {err}");
        assert!(err.contains("gateway.toml:"), "names the line: {err}");
    }
}

#[test]
fn external_issuer_problems_are_named_with_their_lines() {
    let external = |table: &str| GOOD.replace("[issuers.demo]\n", table);
    let good = external(
        "[issuers.demo]\ndiscovery_url = \"https://idp.example.com/.well-known/openid-configuration\"\n\
         jwks_refresh_min = \"30s\"\njwks_max_stale = \"12h\"\n",
    );
    let (ok, err) = check(&good);
    assert!(ok, "{err}");
    let loopback =
        external("[issuers.demo]\njwks_url = \"http://127.0.0.1:8081/jwks\"\niss = \"dev\"\n");
    let (ok, err) = check(&loopback);
    assert!(ok, "{err}");

    let cases = [
        (
            "[issuers.demo]\njwks_url = \"http://idp.example.com/jwks\"\niss = \"x\"\n",
            "gateway.toml:9: issuers.demo.jwks_url: \"http://idp.example.com/jwks\": keys over plain HTTP could be replaced on the way; use https",
        ),
        (
            "[issuers.demo]\njwks_url = \"https://idp.example.com/jwks\"\n",
            "issuers.demo.iss: an issuer with jwks_url needs iss",
        ),
        (
            "[issuers.demo]\ndiscovery_url = \"https://a/.well-known/openid-configuration\"\njwks_url = \"https://a/jwks\"\n",
            "gateway.toml:10: issuers.demo.jwks_url: give discovery_url or jwks_url, not both",
        ),
        (
            "[issuers.demo]\ndiscovery_url = \"https://a/x\"\ndialect = \"session\"\n",
            // A dialect's issuer holds its keys: it has no provider.
            "gateway.toml:9: issuers.demo.discovery_url: unknown field `discovery_url`",
        ),
        (
            "[issuers.demo]\ndiscovery_url = \"https://a/x\"\nca_file = \"/nonexistent/ca.pem\"\n",
            "gateway.toml:10: issuers.demo.ca_file: /nonexistent/ca.pem",
        ),
        (
            "[issuers.demo]\ndiscovery_url = \"https://a/x\"\njwks_refresh_min = \"2h\"\njwks_refresh_max = \"1h\"\n",
            "issuers.demo.jwks_refresh_min: is longer than jwks_refresh_max",
        ),
        (
            "[issuers.demo]\njwks_max_stale = \"1h\"\n",
            "gateway.toml:9: issuers.demo.jwks_max_stale: unknown field `jwks_max_stale`",
        ),
    ];
    for (table, problem) in cases {
        let (ok, err) = check(&external(table));
        assert!(!ok, "{table}");
        assert!(err.contains(problem), "{table}\n{err}");
    }
}

#[test]
fn limits_are_checked() {
    let good = format!(
        "{GOOD}rate_limit = {{ requests = 100, per = \"1s\", by = \"claim:tenant\", burst = 20, override_claim = \"rate\" }}\n\
         max_in_flight = 50\nconcurrency = {{ max_in_flight = 4, by = \"header:X-Api-Key\" }}\n\
         allow_ips = [\"10.0.0.0/8\", \"2001:db8::1\"]\ndeny_ips = [\"10.6.6.6\"]\n\
         [issuers.demo.rate_limit]\nrequests = 5\nper = \"1m\"\n"
    )
    .replace("[issuers.demo]\n", "[issuers.demo]\ndialect = \"session\"\n");
    let (ok, err) = check(&good);
    assert!(ok, "{err}");

    let route = |limit: &str| format!("{GOOD}{limit}\n");
    for (bad, needles) in [
        (
            route("rate_limit = { requests = 0, per = \"1s\" }"),
            &["routes[0].rate_limit.requests", "from 1 to"][..],
        ),
        (
            route("rate_limit = { requests = 5, per = \"10ms\" }"),
            &["routes[0].rate_limit.per", "at least 100ms"],
        ),
        (
            route("rate_limit = { requests = 5, per = \"1s\", by = \"tenant\" }"),
            &["routes[0].rate_limit.by", "\"tenant\""],
        ),
        (
            route("rate_limit = { requests = 5, per = \"1s\", scope = \"cluster\" }"),
            &["routes[0].rate_limit.scope", "store.backend = \"redis\""],
        ),
        (
            route("rate_limit = { requests = 5, per = \"1s\", scope = \"global\" }"),
            &[
                "routes[0].rate_limit.scope",
                "\"global\": expected \"instance\" or \"cluster\"",
            ],
        ),
        (
            route("rate_limit = { requests = 5, per = \"1s\", window = \"1s\" }"),
            &["unknown field `window`"],
        ),
        (route("max_in_flight = 0"), &["routes[0].max_in_flight", "at least 1"]),
        (
            route("concurrency = { max_in_flight = 2, by = \"sub\", extra = 1 }"),
            &["unknown field `extra`"],
        ),
        (
            route("allow_ips = [\"10.0.0.0/33\"]"),
            &["routes[0].allow_ips[0]", "not an IP address or CIDR"],
        ),
        (
            route("public = true\nrate_limit = { requests = 5, per = \"1s\", by = \"sub\" }"),
            &["routes[0].rate_limit.by", "needs a verified token"],
        ),
        (
            route("public = true\nrate_limit = { requests = 5, per = \"1s\", override_claim = \"rate\" }"),
            &["routes[0].rate_limit.override_claim", "needs a verified token"],
        ),
    ] {
        let (ok, err) = check(&bad);
        assert!(!ok, "{bad}");
        for needle in needles {
            assert!(err.contains(needle), "{needle:?} not in:\n{err}");
        }
    }
    let (ok, err) = check(&GOOD.replace(
        "[issuers.demo]\n",
        "[issuers.demo]\ndialect = \"session\"\nrate_limit = { requests = 5, per = \"1m\", by = \"sub\" }\n",
    ));
    assert!(!ok);
    assert!(err.contains("issuers.demo.rate_limit.by"), "{err}");
    let (ok, err) = check(&format!(
        "[server]\ndeny_ips = [\"nope\"]\nforward_auth_path = \"auth\"\n{GOOD}"
    ));
    assert!(!ok);
    assert!(err.contains("server.deny_ips[0]"), "{err}");
    assert!(err.contains("server.forward_auth_path"), "{err}");
    // The style must be named, be one portero knows, and come with a path.
    for (server, needle) in [
        (
            "forward_auth_path = \"/auth\"",
            "server.forward_auth_style: missing: name the proxy that asks",
        ),
        (
            "forward_auth_path = \"/auth\"\nforward_auth_style = \"haproxy\"",
            "\"haproxy\": expected \"nginx\", \"traefik\" or \"envoy\"",
        ),
        (
            "forward_auth_style = \"nginx\"",
            "server.forward_auth_style: needs server.forward_auth_path",
        ),
    ] {
        let (ok, err) = check(&format!("[server]\n{server}\n{GOOD}"));
        assert!(!ok, "{server}");
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
    let (ok, err) = check(&format!(
        "[server]\nforward_auth_path = \"/auth\"\nforward_auth_style = \"envoy\"\n{GOOD}"
    ));
    assert!(ok, "{err}");
    let (ok, err) = check(&GOOD.replace(
        "addr = \"127.0.0.1:8080\"",
        "addr = \"127.0.0.1:8080\"\nproxy_protocol = true",
    ));
    assert!(!ok);
    assert!(err.contains("listen[0].proxy_protocol"), "{err}");
}

/// The `gateway.toml` of each Kubernetes ConfigMap under deploy/kubernetes
/// is a config portero accepts.
#[test]
fn the_kubernetes_configs_pass() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let manifest = std::fs::read_to_string(&path).unwrap();
        let (_, block) = manifest
            .split_once("  gateway.toml: |\n")
            .unwrap_or_else(|| panic!("{}: no gateway.toml in a ConfigMap", path.display()));
        let config: String = block
            .lines()
            .take_while(|l| l.is_empty() || l.starts_with("    "))
            .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or("")))
            .collect();
        let (ok, err) = check(&config);
        assert!(ok, "{}: {err}", path.display());
        checked += 1;
    }
    assert_eq!(checked, 3);
}

#[test]
fn a_port_in_use_is_named_once_with_its_cause() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let config = GOOD.replace("127.0.0.1:8080", &addr.to_string());
    let data = dir.path().join("data");
    let server = format!(
        "[server]\ndata_dir = \"{}\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        data.display()
    );
    std::fs::write(&path, format!("{server}{config}")).unwrap();
    let out = std::process::Command::new(common::portero_binary())
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("listen: cannot listen on {addr}: ")),
        "{err}"
    );
    assert_eq!(err.matches("(os error 98)").count(), 1, "{err}");
}

#[test]
fn a_count_of_zero_is_named_with_its_line() {
    let bad = format!("[server]\nthreads = 0\n{GOOD}");
    let (ok, err) = check(&bad);
    assert!(!ok);
    assert!(
        err.contains("gateway.toml:2: server.threads: must be at least 1"),
        "{err}"
    );
}

#[test]
fn oauth2_needs_a_public_origin_and_clients() {
    let issuer = "[issuers.c]\ndialect = \"client-flat\"\n\n[issuers.c.oauth2]\n";
    let with = |server: &str, rest: &str| format!("[server]\n{server}\n{GOOD}\n{rest}");
    let (ok, err) = check(&with("", issuer));
    assert!(
        !ok && err.contains("issuers.c.oauth2") && err.contains("server.public_url"),
        "{err}"
    );
    // An issuer identifier has no query (RFC 8414 §2); portero serves it at its root.
    for url in ["http://x.test/base", "http://x.test/?q", "ftp://x.test"] {
        let (ok, err) = check(&with(&format!("public_url = \"{url}\""), issuer));
        assert!(!ok && err.contains("server.public_url"), "{url}: {err}");
    }
    let (ok, err) = check(&with("public_url = \"https://x.test/\"", issuer));
    assert!(ok, "{err}");
    let users = "[issuers.u]\ndialect = \"session\"\n\n[issuers.u.oauth2]\n";
    let (ok, err) = check(&with("public_url = \"https://x.test\"", users));
    assert!(
        !ok && err.contains("issuers.u.oauth2") && err.contains("users"),
        "{err}"
    );
    let unknown = format!("{issuer}grants = [\"implicit\"]\n");
    let (ok, err) = check(&with("public_url = \"https://x.test\"", &unknown));
    assert!(!ok && err.contains("grants"), "{err}");
    let method = "[issuers.c]\ndialect = \"client-flat\"\n\n[[issuers.c.principals]]\nclient_id = \"a\"\n\
                  secret_hash = \"$portero-hmac-sha256$eWKIcHJ5mWFyA1fH2QnC_Q$gN8GIR2gPZB7VAMZrc3jj8lqzJocb9KWCpkfYHO9YQo\"\n\
                  auth_method = \"private_key_jwt\"\n";
    let (ok, err) = check(&with("", method));
    assert!(!ok && err.contains("auth_method"), "{err}");
    // A legacy endpoint's retirement: RFC 3339 instants, the sunset not first.
    let retiring = |d: &str, s: &str| {
        format!("[issuers.c]\ndialect = \"client-flat\"\ndeprecation = \"{d}\"\nsunset = \"{s}\"\n")
    };
    let (ok, err) = check(&with(
        "",
        &retiring("2027-01-01T00:00:00Z", "2027-06-30T00:00:00Z"),
    ));
    assert!(ok, "{err}");
    let (ok, err) = check(&with("", &retiring("2027-01-01", "2027-06-30T00:00:00Z")));
    assert!(!ok && err.contains("issuers.c.deprecation"), "{err}");
    let (ok, err) = check(&with(
        "",
        &retiring("2027-06-30T00:00:00Z", "2027-01-01T00:00:00Z"),
    ));
    assert!(!ok && err.contains("issuers.c.sunset"), "{err}");
}

#[test]
fn stored_hashes_costing_past_the_limits_and_colliding_logins_are_refused() {
    let with = |principals: &str, limits: &str| {
        format!("{GOOD}\n{limits}\n[issuers.people]\ndialect = \"session\"\n\n{principals}")
    };
    let user = |name: &str, hash: &str| {
        format!("[[issuers.people.principals]]\nusername = \"{name}\"\nsecret_hash = '{hash}'\n")
    };
    let argon =
        "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";
    let pbkdf2 = "pbkdf2_sha256$4294967295$c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=";
    let bcrypt = "$2b$31$abcdefghijklmnopqrstuu5Jm1uF0wGbTe4CHqzGr3xJQQbYhKOy6";
    let scrypt = "$scrypt$ln=32,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";
    // Costs hidden in what a format leaves out or stretches: scrypt's ln
    // defaults to the library's 17 (with r = 64, 1 GiB), scrypt's lanes
    // run one after another, a PBKDF2 digest of many blocks costs the
    // rounds once a block.
    let long_digest = format!("pbkdf2_sha256$1000$salt${}", STANDARD.encode([7u8; 64_000]));
    // Two blocks of SHA-256 (as Keycloak keeps them) count the rounds twice.
    let two_blocks = format!("pbkdf2_sha256$6000000$salt${}", STANDARD.encode([7u8; 64]));
    let hidden = [
        "$scrypt$r=64,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA",
        "$scrypt$ln=15,r=8,p=16$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA",
        long_digest.as_str(),
        two_blocks.as_str(),
    ];
    for hash in hidden {
        let (ok, err) = check(&with(&user("h", hash), ""));
        assert!(!ok, "{hash:.60}");
        assert!(
            err.contains("issuers.people.principals[0].secret_hash"),
            "{err}"
        );
    }
    let all = [("a", argon), ("p", pbkdf2), ("b", bcrypt), ("s", scrypt)]
        .map(|(n, h)| user(n, h))
        .concat();
    let (ok, err) = check(&with(&all, ""));
    assert!(!ok);
    for expected in [
        "issuers.people.principals[0].secret_hash: argon2id hash with memory (bytes) 4398046510080, over the limit of 268435456 (hash_limits.memory)",
        "issuers.people.principals[1].secret_hash: pbkdf2 hash with 4294967295 rounds, over the limit of 10000000 (hash_limits.pbkdf2_rounds)",
        "issuers.people.principals[2].secret_hash: bcrypt hash with cost 31, over the limit of 16 (hash_limits.bcrypt_cost)",
        "issuers.people.principals[3].secret_hash: scrypt hash with ln 32, over the limit of 20 (hash_limits.scrypt_log_n)",
    ] {
        assert!(err.contains(expected), "{expected:?} in:\n{err}");
    }
    assert!(!err.contains("aGFzaGhh"), "a hash in:\n{err}");
    // Raised where an operator's hashes need it.
    let raised = "[hash_limits]\nbcrypt_cost = 31\npbkdf2_rounds = 4294967295\n";
    let (ok, err) = check(&with(
        &[user("b", bcrypt), user("p", pbkdf2)].concat(),
        raised,
    ));
    assert!(ok, "{err}");
    let (ok, err) = check(&with(
        "",
        "[hash_limits]\nbcrypt_cost = 32\nmemory = \"lots\"\nrounds = 1\n",
    ));
    assert!(!ok);
    assert!(err.contains("hash_limits.rounds: unknown field"), "{err}");

    // Two logins a case-insensitive table would make one.
    let hash = portero::credentials::hash_password("pw");
    let twins = [
        ("alice", "Alice"),
        ("alice", "alice "),
        ("alice", "ALICE"),
        ("alice", "ａｌｉｃｅ"),
        ("strasse", "straße"),
        ("ss", "ẞ"),
        ("σοφος", "ΣΟΦΟΣ"),
        ("σοφος", "σοφοσ"),
        ("xι", "x\u{345}"),
    ];
    for (one, twin) in twins {
        let (ok, err) = check(&with(&[user(one, &hash), user(twin, &hash)].concat(), ""));
        assert!(!ok, "{twin:?}");
        assert!(
            err.contains("issuers.people.principals: ") && err.contains("differ only in case"),
            "{twin:?}: {err}"
        );
    }
}

#[test]
fn a_project_business_with_a_slash_is_refused() {
    let hash = portero::credentials::hash_password("pw");
    let (ok, err) = check(&format!(
        "{GOOD}\n[issuers.p]\ndialect = \"project\"\n\n[[issuers.p.principals]]\n\
         business = \"a/b\"\nproyecto = \"c\"\nsecret_hash = '{hash}'\n"
    ));
    assert!(!ok);
    assert!(
        err.contains("issuers.p.principals[0].business: may not contain `/`"),
        "{err}"
    );
}

#[test]
fn a_misspelled_upstream_or_issuer_is_named_with_the_nearest_name() {
    let bad = GOOD.replace(
        "upstream = \"echo\"",
        "upstream = \"ecoh\"\nissuers = [\"dmeo\", \"billing\"]",
    );
    let (ok, err) = check(&bad);
    assert!(!ok);
    for expected in [
        "gateway.toml:12: routes[0].upstream: no upstream named \"ecoh\"; did you mean \"echo\"?",
        "gateway.toml:13: routes[0].issuers: no issuer named \"dmeo\"; did you mean \"demo\"?",
        // Nothing near: no suggestion.
        "gateway.toml:13: routes[0].issuers: no issuer named \"billing\"\n",
    ] {
        assert!(err.contains(expected), "{expected}\n{err}");
    }
}

#[test]
fn a_misspelled_dialect_is_the_one_problem_named() {
    let bad = format!(
        "[server]\npublic_url = \"https://x.test\"\n{GOOD}\n\
         [issuers.c]\ndialect = \"client-flatt\"\n\n[issuers.c.oauth2]\n"
    );
    let (ok, err) = check(&bad);
    assert!(!ok);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].ends_with("gateway.toml: 1 problem(s)"), "{err}");
    assert!(
        lines[1].contains("gateway.toml:17: issuers.c.dialect: unknown dialect \"client-flatt\""),
        "{err}"
    );
}

#[test]
fn introspection_settings_are_checked_where_they_are_written() {
    let config = format!(
        "{GOOD}
[issuers.a]
introspection_url = \"https://a.example/introspect\"
client_id = \"portero\"
client_secret_env = \"A_SECRET\"

[issuers.b]
introspection_url = \"https://b.example/introspect\"
client_id = \"portero\"

[issuers.c]
introspection_cache_ttl = \"1m\"

[issuers.e]
discovery_url = \"https://e.example/.well-known/openid-configuration\"
introspection_url = \"https://e.example/introspect\"
client_id = \"portero\"
client_secret_env = \"E_SECRET\"

[issuers.f]
iss = \"\"
introspection_url = \"https://f.example/introspect\"
client_id = \"portero\"
client_secret_env = \"F_SECRET\"

[issuers.d]
client_id = \"portero\"
client_secret_env = \"D_SECRET\"
introspection_url = \"ftp://d.example\"
introspection_on_failure = \"ignore\"
"
    );
    let (ok, err) = check(&config);
    assert!(!ok);
    for want in [
        // A route without `issuers` would take tokens of two introspecting issuers.
        "routes[0].issuers: at most one issuer of a route may introspect tokens",
        "issuers.b.client_secret_env: introspection needs the client's secret",
        "issuers.c.introspection_cache_ttl: unknown field `introspection_cache_ttl`",
        "issuers.d.introspection_url:",
        "issuers.e.iss: with discovery_url and introspection_url, give iss",
        "issuers.f.iss: is empty",
        "issuers.d.introspection_on_failure: \"ignore\": expected \"unavailable\" or \"unauthorized\"",
    ] {
        assert!(err.contains(want), "{want:?} not in:\n{err}");
    }
}

#[test]
fn a_principal_key_its_dialect_never_reads_or_a_missing_company_is_refused() {
    let hash = portero::credentials::hash_fast("s3cret-s3cret-s3cret");
    // Only the client-flat dialect reads companies.
    let with = |dialect: &str, principal: &str| {
        let companies = match dialect {
            "client-flat" => "companies = [\"acme\"]",
            _ => "",
        };
        format!(
            "{GOOD}\n[issuers.x]\ndialect = \"{dialect}\"\n{companies}\n\n\
             [[issuers.x.principals]]\nsecret_hash = \"{hash}\"\n{principal}\n"
        )
    };
    let line_of =
        |text: &str, start: &str| text.lines().position(|l| l.starts_with(start)).unwrap() + 1;
    // client-flat logs a client in only with a company, and never reads a role.
    let text = with("client-flat", "client_id = \"c\"\nrole = \"reporter\"");
    let (ok, err) = check(&text);
    assert!(!ok);
    let role = line_of(&text, "role = ");
    assert!(
        err.contains(&format!(
            "gateway.toml:{role}: issuers.x.principals[0].role: the client-flat dialect never reads role"
        )),
        "{err}"
    );
    // A missing key is named at its principal's secret_hash.
    let table = line_of(&text, "secret_hash = ");
    assert!(
        err.contains(&format!(
            "gateway.toml:{table}: issuers.x.principals[0].company: principal \"c\" has no company: \
             the client-flat dialect needs one to log in; add company = \"...\" (one of companies)"
        )),
        "{err}"
    );
    assert!(err.contains("2 problem(s)"), "{err}");
    let (ok, err) = check(&with(
        "client-flat",
        "client_id = \"c\"\ncompany = \"acme\"",
    ));
    assert!(ok, "{err}");
    // Each dialect reads its own keys: a user's name, id and role mean
    // nothing to a client, a company nothing to a user.
    for (dialect, principal, unread) in [
        (
            "client-envelope",
            "client_id = \"c\"\nnombre = \"Ana\"",
            "nombre",
        ),
        ("client-envelope", "client_id = \"c\"\nid = 7", "id"),
        (
            "project",
            "business = \"b\"\nproyecto = \"p\"\nrole = \"admin\"",
            "role",
        ),
        ("session", "username = \"u\"\ncompany = \"acme\"", "company"),
        (
            "session",
            "username = \"u\"\nclient_id = \"c\"",
            "client_id",
        ),
        (
            "login-refresh",
            "username = \"u\"\nnombre = \"Ana\"",
            "nombre",
        ),
        (
            "login-refresh",
            "username = \"u\"\npermissions = [\"read\"]",
            "permissions",
        ),
        // As an OAuth 2.0 client only, and this issuer has no oauth2 table.
        (
            "client-envelope",
            "client_id = \"c\"\nintrospect = true",
            "introspect",
        ),
    ] {
        let (ok, err) = check(&with(dialect, principal));
        assert!(!ok, "{dialect}: {principal}");
        assert!(
            err.contains(&format!(
                "issuers.x.principals[0].{unread}: the {dialect} dialect never reads {unread}"
            )),
            "{dialect}: {principal}\n{err}"
        );
    }
    for (dialect, principal) in [
        (
            "session",
            "username = \"u\"\nid = 1\nnombre = \"Ana\"\nrole = \"ADMIN\"\nrate_limit = 5",
        ),
        (
            "login-refresh",
            "username = \"u\"\nid = \"b331\"\nrole = \"ADMIN\"\nblocked = true",
        ),
        (
            "project",
            "business = \"b\"\nproyecto = \"p\"\nactive = false",
        ),
    ] {
        let (ok, err) = check(&with(dialect, principal));
        assert!(ok, "{dialect}: {principal}\n{err}");
    }
}

#[test]
fn an_oauth2_client_named_as_a_user_of_its_issuer_is_refused() {
    let app = portero::credentials::hash_fast("app-secret-0123456789");
    let user = portero::credentials::hash_password("pw");
    let config = |client: &str| {
        format!(
            "[server]\npublic_url = \"https://auth.example\"\n{GOOD}\n[issuers.people]\ndialect = \"session\"\n\n\
             [issuers.people.oauth2]\n\n[[issuers.people.oauth2.clients]]\nclient_id = \"{client}\"\n\
             secret_hash = \"{app}\"\n\n[[issuers.people.principals]]\nusername = \"admin\"\nsecret_hash = '{user}'\n"
        )
    };
    for namesake in ["admin", "Admin"] {
        let text = config(namesake);
        let (ok, err) = check(&text);
        assert!(!ok, "{namesake}");
        let at = text
            .lines()
            .position(|l| l.starts_with("client_id = "))
            .unwrap()
            + 1;
        assert!(
            err.contains(&format!(
                "gateway.toml:{at}: issuers.people.oauth2.clients[0].client_id: {namesake:?} is also \
                 a user of issuer \"people\" (\"admin\")"
            )),
            "{err}"
        );
    }
    let (ok, err) = check(&config("reporting-app"));
    assert!(ok, "{err}");
}

#[test]
fn oauth2_endpoints_on_a_host_the_public_url_does_not_name_are_refused() {
    let config = |public_url: &str, host: &str| {
        format!(
            "[server]\npublic_url = \"{public_url}\"\n{GOOD}\n[issuers.c]\ndialect = \"client-envelope\"\n\
             host = \"{host}\"\n\n[issuers.c.oauth2]\n"
        )
    };
    let text = config("http://127.0.0.1:8080", "maxpoint.localhost");
    let (ok, err) = check(&text);
    assert!(!ok);
    let at = text.lines().position(|l| l.starts_with("host = ")).unwrap() + 1;
    assert!(
        err.contains(&format!(
            "gateway.toml:{at}: issuers.c.host: the OAuth 2.0 endpoints are served on host \
             \"maxpoint.localhost\", but the metadata sends clients to server.public_url's host \
             \"127.0.0.1\""
        )),
        "{err}"
    );
    for (public_url, host) in [
        ("https://maxpoint.localhost", "maxpoint.localhost"),
        ("https://MaxPoint.localhost:8443/", "maxpoint.localhost"),
        ("https://auth.example.com", "*.example.com"),
        ("https://auth.example.com", "Auth.Example.com"),
    ] {
        let (ok, err) = check(&config(public_url, host));
        assert!(ok, "{public_url} {host}: {err}");
    }
    for (public_url, host) in [
        ("https://example.com", "*.example.com"),
        ("https://auth.example.com", "api.example.com"),
    ] {
        let (ok, err) = check(&config(public_url, host));
        assert!(
            !ok && err.contains("issuers.c.host"),
            "{public_url} {host}: {err}"
        );
    }
}

#[test]
fn a_protected_resource_takes_only_tokens_that_can_name_it() {
    let base = |route: &str, more: &str| {
        format!(
            "[server]\npublic_url = \"https://x.test\"\n\n[[listen]]\naddr = \"127.0.0.1:8080\"\n\n\
             [upstreams.echo]\nbuiltin = \"echo\"\n\n[issuers.app]\nkind = \"oauth2\"\n\n\
             [issuers.leg]\ndialect = \"client-flat\"\n\n{more}\
             [[routes]]\npath = \"/mcp\"\nupstream = \"echo\"\nresource_metadata = true\n{route}"
        )
    };
    let (ok, err) = check(&base("issuers = [\"app\"]\n", ""));
    assert!(ok, "{err}");
    for (route, more, named) in [
        // An audience other than the resource: its tokens would be refused.
        ("issuers = [\"app\"]\naudience = \"https://x.test/other\"\n", "", "resource identifier"),
        // A dialect without OAuth 2.0 endpoints never sets aud.
        ("issuers = [\"app\", \"leg\"]\n", "", "issuer \"leg\" has no OAuth 2.0 endpoints"),
        // One resource, two routes (on two hosts): one token would open both.
        (
            "issuers = [\"app\"]\n",
            "[[routes]]\nhost = \"x.test\"\npath = \"/mcp\"\nupstream = \"echo\"\nresource_metadata = true\nissuers = [\"app\"]\n\n",
            "already publishes",
        ),
    ] {
        let (ok, err) = check(&base(route, more));
        assert!(!ok && err.contains(named), "{route}{more}: {err}");
    }
}

#[test]
fn browser_sessions_are_refused_where_a_sign_in_could_never_complete_or_nothing_reads_them() {
    const HASH: &str =
        "$portero-hmac-sha256$eWKIcHJ5mWFyA1fH2QnC_Q$gN8GIR2gPZB7VAMZrc3jj8lqzJocb9KWCpkfYHO9YQo";
    // One of portero's own issuers signs people in for the client
    // `portal`, whose redirect URI is the gateway's callback.
    let good = format!(
        r#"[server]
public_url = "https://x.test"

[[listen]]
addr = "127.0.0.1:8080"

[upstreams.echo]
builtin = "echo"

[issuers.app]
kind = "oauth2"
login_client_id = "portal"

[[issuers.app.users]]
username = "ada"
secret_hash = "{HASH}"

[[issuers.app.clients]]
client_id = "portal"
redirect_uris = ["https://x.test/.portero/callback"]

[issuers.ext]
discovery_url = "https://idp.example.com/.well-known/openid-configuration"

[[routes]]
path = "/app"
upstream = "echo"
login = "app"
"#
    );
    let (ok, err) = check(&good);
    assert!(ok, "{err}");
    // Every key set, and a route taking bearer tokens beside sessions.
    let full = format!(
        "{good}login_pass_token = true\n\n[[routes]]\npath = \"/mixed\"\nupstream = \"echo\"\n\
         login = \"app\"\nissuers = [\"app\"]\ntoken_from = [\"bearer\", \"header:X-Token\"]\n\n\
         [sessions]\nidle_timeout = \"30m\"\nabsolute_timeout = \"8h\"\nrefresh_before = \"30s\"\n\
         post_logout_redirect_uri = \"https://x.test/bye\"\n"
    )
    .replace(
        "login_client_id = \"portal\"\n",
        "login_client_id = \"portal\"\nlogin_scopes = [\"openid\", \"profile\"]\n",
    );
    let (ok, err) = check(&full);
    assert!(ok, "{err}");

    // portero's callback is its sign-in client's redirect URI, written or not.
    for bare in [
        good.replace(
            "redirect_uris = [\"https://x.test/.portero/callback\"]\n",
            "",
        ),
        good.replace("/.portero/callback", "/elsewhere"),
    ] {
        let (ok, err) = check(&bare);
        assert!(ok, "{err}\n{bare}");
    }

    let no_login = good.replace("login = \"app\"\n", "");
    let cases: Vec<(String, &str, &str)> = vec![
        (
            good.replace("login = \"app\"", "login = \"nope\""),
            "routes[0].login",
            "nope",
        ),
        // An issuer portero holds no client of.
        (
            good.replace("login = \"app\"", "login = \"ext\""),
            "routes[0].login",
            "login_client_id",
        ),
        (no_login.clone(), "issuers.app.login_client_id", "no route signs in"),
        (
            no_login.replace("login_client_id = \"portal\"\n", "")
                + "\n[sessions]\nidle_timeout = \"1h\"\n",
            "sessions",
            "no route signs people in",
        ),
        (
            "[[listen]]\naddr = \"127.0.0.1:8080\"\n\n[upstreams.echo]\nbuiltin = \"echo\"\n\n\
             [issuers.ext]\ndiscovery_url = \"https://idp.example.com/.well-known/openid-configuration\"\n\
             login_client_id = \"gw\"\n\n[[routes]]\npath = \"/app\"\nupstream = \"echo\"\nlogin = \"ext\"\n"
                .to_string(),
            "server.public_url",
            "signs people in",
        ),
        (
            good.replace("login_client_id = \"portal\"", "login_client_id = \"nobody\""),
            "issuers.app.login_client_id",
            "nobody",
        ),
        (
            no_login.replace("login_client_id = \"portal\"\n", "") + "login_pass_token = true\n",
            "routes[0].login_pass_token",
            "login",
        ),
        (
            good.replace(
                "login_client_id = \"portal\"\n",
                "login_client_id = \"portal\"\nlogin_scopes = [\"profile\", \"email\"]\n",
            ),
            "issuers.app.login_scopes",
            "openid",
        ),
        // portero's own issuer, asked in process, with a secret to read
        // that nothing would send: a key its kind does not take.
        (
            good.replace(
                "client_id = \"portal\"\n",
                &format!("client_id = \"portal\"\nsecret_hash = \"{HASH}\"\n"),
            )
            .replace(
                "login_client_id = \"portal\"\n",
                "login_client_id = \"portal\"\nlogin_client_secret_env = \"PORTAL_SECRET\"\n",
            ),
            "issuers.app.login_client_secret_env",
            "unknown field `login_client_secret_env`",
        ),
        (
            format!("{good}token_from = [\"header:X-Token\"]\n"),
            "routes[0].token_from",
            "sessions only",
        ),
    ];
    for (config, key, says) in cases {
        let (ok, err) = check(&config);
        assert!(!ok, "{key}: passed\n{config}");
        let line = err
            .lines()
            .find(|l| l.contains(&format!("{key}:")))
            .unwrap_or_else(|| panic!("{key} not named:\n{err}\n{config}"));
        assert!(line.contains(says), "{key}: {line}");
    }
}

/// A public client whose redirect URI is on another origin than
/// `public_url` is a browser app there: without the issuer's `cors`
/// allowing that origin, every browser blocks its token call.
#[test]
fn a_public_client_on_another_origin_needs_the_issuers_cors() {
    let config = |cors: &str, client: &str| {
        format!(
            "[server]\npublic_url = \"https://auth.test\"\n{GOOD}\n[issuers.app]\nkind = \"oauth2\"\n{cors}\n\
             [[issuers.app.clients]]\nclient_id = \"spa\"\n{client}\n\
             [cors.spa]\nallow_origins = [\"https://app.test\"]\n\
             [[routes]]\npath = \"/spa\"\nupstream = \"echo\"\ncors = \"spa\"\n"
        )
    };
    let secret = "secret_hash = \"$portero-hmac-sha256$eWKIcHJ5mWFyA1fH2QnC_Q$gN8GIR2gPZB7VAMZrc3jj8lqzJocb9KWCpkfYHO9YQo\"";
    let on = |uri: &str| format!("redirect_uris = [\"{uri}\"]");
    for (cors, client) in [
        ("cors = \"spa\"", on("https://app.test/cb")),
        ("", on("https://auth.test/cb")),
        ("", on("http://127.0.0.1/cb")),
        ("", on("com.example.app:/cb")),
        ("", format!("{}\n{secret}", on("https://app.test/cb"))),
    ] {
        let (ok, err) = check(&config(cors, &client));
        assert!(ok, "{cors} {client}: {err}");
    }
    let bad = config("", &on("https://app.test/cb"));
    let line = bad
        .lines()
        .position(|l| l.starts_with("redirect_uris"))
        .unwrap()
        + 1;
    let (ok, err) = check(&bad);
    let at = format!("gateway.toml:{line}: issuers.app.clients[0].redirect_uris: ");
    assert!(
        !ok && err.contains(&at) && err.contains("https://app.test"),
        "{err}"
    );
    // A policy for other origins is none for this one.
    let elsewhere = config("cors = \"spa\"", &on("https://other.test/cb"));
    let (ok, err) = check(&elsewhere);
    assert!(
        !ok && err.contains("issuers.app.clients[0].redirect_uris"),
        "{err}"
    );
}

#[test]
fn a_sign_in_at_an_issuer_of_the_same_config_that_could_never_work_is_refused() {
    const HASH: &str =
        "$portero-hmac-sha256$eWKIcHJ5mWFyA1fH2QnC_Q$gN8GIR2gPZB7VAMZrc3jj8lqzJocb9KWCpkfYHO9YQo";
    // The issuer ext is portero's own issuer app, reached as an outside
    // provider (its discovery document); app's client portal is bare.
    let good = format!(
        r#"[server]
public_url = "https://x.test"

[[listen]]
addr = "127.0.0.1:8080"

[upstreams.echo]
builtin = "echo"

[issuers.app]
kind = "oauth2"

[[issuers.app.users]]
username = "ada"
secret_hash = "{HASH}"

[[issuers.app.clients]]
client_id = "portal"
redirect_uris = ["https://x.test/portal/callback"]

[[issuers.app.clients]]
client_id = "reports"
secret_hash = "{HASH}"
grant_types = ["client_credentials"]

[issuers.ext]
discovery_url = "https://x.test/oauth2/app/.well-known/openid-configuration"
login_client_id = "portal"

[[routes]]
path = "/app"
upstream = "echo"
login = "ext"
"#
    );
    let (ok, err) = check(&good);
    assert!(ok, "{err}");
    let cases: Vec<(String, &str, &str)> = vec![
        // A client the provider does not have.
        (
            good.replace("login_client_id = \"portal\"", "login_client_id = \"nobody\""),
            "issuers.ext.login_client_id",
            "\"nobody\" is not one of issuer \"app\"'s clients",
        ),
        // A client that may not use the code flow.
        (
            good.replace(
                "login_client_id = \"portal\"",
                "login_client_id = \"reports\"\nlogin_client_secret_env = \"REPORTS_SECRET\"",
            ),
            "issuers.ext.login_client_id",
            "authorization_code",
        ),
        // A public client named with a secret.
        (
            good.replace(
                "login_client_id = \"portal\"",
                "login_client_id = \"portal\"\nlogin_client_secret_env = \"PORTAL_SECRET\"",
            ),
            "issuers.ext.login_client_secret_env",
            "public",
        ),
        // portero's own issuer signs people in, but its callback on plain
        // http off loopback is no redirect URI the issuer could ever use.
        (
            good.replace("https://x.test\"", "http://x.test\"")
                .replace("login = \"ext\"", "login = \"app\"")
                .replace("[issuers.ext]\n", "[issuers.ext]\njwks_url = \"https://idp.test/jwks\"\n")
                .replace(
                    "discovery_url = \"https://x.test/oauth2/app/.well-known/openid-configuration\"\nlogin_client_id = \"portal\"\n",
                    "",
                )
                .replace("kind = \"oauth2\"\n", "kind = \"oauth2\"\nlogin_client_id = \"portal\"\n"),
            "server.public_url",
            "http only on a loopback host",
        ),
    ];
    for (config, key, says) in cases {
        let (ok, err) = check(&config);
        assert!(!ok, "{key}: passed\n{config}");
        let line = err
            .lines()
            // At its key, not where another problem's text names the key.
            .find(|l| l.contains(&format!(": {key}: ")))
            .unwrap_or_else(|| panic!("{key} not named:\n{err}\n{config}"));
        assert!(line.contains(says), "{key}: {line}");
    }
}

#[test]
fn clients_that_assert_their_identity_name_keys_or_identities_that_can_work() {
    let jwk = common::idp::IdpKey::ec("k1").jwk();
    let inline: Vec<String> = jwk
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    let jwks = format!("jwks = {{ keys = [{{ {} }}] }}\n", inline.join(", "));
    let with = |client: &str| {
        format!(
            "[server]\npublic_url = \"https://x.test\"\n{GOOD}\n\
             [issuers.k8s]\njwks_url = \"https://k8s.test/keys\"\niss = \"https://k8s.test\"\n\n\
             [issuers.app]\nkind = \"oauth2\"\n\n[[issuers.app.clients]]\nclient_id = \"job\"\n{client}"
        )
    };
    let fed = "federated = [{ issuer = \"k8s\", subject = \"system:serviceaccount:a:b\" }]\n";
    for good in [
        jwks.clone(),
        "jwks_uri = \"https://job.test/jwks\"\n".into(),
        fed.into(),
    ] {
        let (ok, err) = check(&with(&good));
        assert!(ok, "{good}: {err}");
    }
    let hash = "secret_hash = \"$portero-hmac-sha256$eWKIcHJ5mWFyA1fH2QnC_Q$gN8GIR2gPZB7VAMZrc3jj8lqzJocb9KWCpkfYHO9YQo\"\n";
    for (client, named) in [
        // A secret beside keys would never be checked.
        (
            format!("{jwks}{hash}"),
            "issuers.app.clients[0].secret_hash",
        ),
        (
            format!("{jwks}jwks_uri = \"https://job.test/jwks\"\n"),
            "issuers.app.clients[0].jwks_uri",
        ),
        (
            format!("{jwks}auth_method = \"client_secret_basic\"\n"),
            "issuers.app.clients[0].auth_method",
        ),
        (
            format!("{hash}auth_method = \"private_key_jwt\"\n"),
            "issuers.app.clients[0].auth_method",
        ),
        // A secret in a JWKS verifies nothing; a key of no known curve.
        (
            "jwks = { keys = [{ kty = \"oct\", k = \"c2VjcmV0\" }] }\n".into(),
            "issuers.app.clients[0].jwks",
        ),
        (
            "jwks = { keys = [] }\n".into(),
            "issuers.app.clients[0].jwks",
        ),
        (
            "jwks_uri = \"http://job.test/jwks\"\n".into(),
            "issuers.app.clients[0].jwks_uri",
        ),
        // Federated with an issuer whose keys portero does not fetch.
        (
            fed.replace("k8s", "app"),
            "issuers.app.clients[0].federated[0].issuer",
        ),
        (
            fed.replace("k8s", "nowhere"),
            "issuers.app.clients[0].federated[0].issuer",
        ),
        (
            fed.replace("system:serviceaccount:a:b", ""),
            "issuers.app.clients[0].federated[0].subject",
        ),
        (
            "federated = [{ issuer = \"k8s\", subject = \"s\", audience = \"x\" }]\n".into(),
            "audience",
        ),
        // One outside identity, two clients.
        (
            format!("{fed}\n[[issuers.app.clients]]\nclient_id = \"job2\"\n{fed}"),
            "issuers.app.clients[1].federated",
        ),
    ] {
        let (ok, err) = check(&with(&client));
        assert!(!ok && err.contains(named), "{client}: {err}");
    }
}
