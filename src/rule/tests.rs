use proptest::prelude::*;

use super::*;
use http::HeaderName;

fn claims(json: &str) -> Claims {
    Claims::parse(json.as_bytes().to_vec()).unwrap()
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

const KEYCLOAK: &str = r#"{"sub":"u1","email_verified":true,"groups":["ops","dev"],
    "realm_access":{"roles":["user","auditor"]},
    "resource_access":{"my-app":{"roles":["admin"]},"other":{"roles":["root"]}},
    "https://example.com/roles":["editor"],"age":42,"ratio":0.5,"name":"Ann","tenant":null}"#;

/// Whether `rule` admits `claims` on `parts`, read as the gateway reads a
/// request: the path as routed, `x-auth-*` and `x-forwarded-for` hidden.
fn admitted(rule: &Rule, claims: &Claims, parts: &Parts) -> bool {
    let routed = crate::path::routing_key(parts.uri.path());
    let path = rule_path(&routed);
    let hidden = |name: &HeaderName| {
        name.as_str().starts_with("x-auth-") || name.as_str() == "x-forwarded-for"
    };
    let request = Request {
        parts,
        path,
        hidden: &hidden,
    };
    rule.admits(claims, &request)
}

fn holds(rule: &str) -> bool {
    let rule = Rule::compile(rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
    let req = request(
        "GET",
        "/orders/7",
        &[("host", "API.Example.com:8443"), ("x-env", "prod")],
    );
    admitted(&rule, &claims(KEYCLOAK), &req)
}

#[test]
fn rules_read_claims_where_providers_put_them() {
    for rule in [
        r#""ops" in claims.groups && claims.email_verified == true"#,
        r#""auditor" in claims.realm_access.roles"#,
        r#""admin" in claims.resource_access["my-app"].roles"#,
        r#""editor" in claims["https://example.com/roles"]"#,
        "claims.age >= 18 && claims.age < 100 && claims.ratio == 0.5 && claims.age == 42.0",
        r#"claims.name.startsWith("A") && claims.name.endsWith("nn") && claims.name.contains("n")"#,
        "size(claims.groups) == 2 && claims.groups.size() == 2 && size(claims.name) == 3",
        "has(claims.realm_access.roles) && !has(claims.realm_access.groups) && has(claims.tenant)",
        r#"claims.groups[0] == "ops" && claims.resource_access.other.roles == ["root"]"#,
        r#"request.method == "GET" && request.path.startsWith("/orders/")"#,
        r#"request.host == "api.example.com""#,
        r#""x-env" in request.headers && request.headers["x-env"] == "prod""#,
        r#"request.method in ["GET", "HEAD"] && claims.name in ["Ann", claims.sub]"#,
        r#""user" in {"user": 1} && claims.tenant == null"#,
        "false || true",
    ] {
        assert!(holds(rule), "{rule}");
    }
}

#[test]
fn rules_that_do_not_hold_refuse() {
    for rule in [
        r#""root" in claims.resource_access["my-app"].roles"#,
        r#""ops" in claims.realm_access.roles"#,
        "claims.age > 50",
        r#"request.method == "POST""#,
        r#"!("ops" in claims.groups)"#,
        r#"claims.groups == ["dev", "ops"]"#,
        "true && false",
    ] {
        assert!(!holds(rule), "{rule}");
    }
}

#[test]
fn a_rule_that_cannot_be_evaluated_refuses() {
    for rule in [
        // A claim that is not there.
        r#""ops" in claims.missing"#,
        "claims.missing == null",
        "!(claims.missing == 1)",
        r#"claims.realm_access.missing != "x""#,
        // A string where a list belongs, a list where a string belongs.
        r#""A" in claims.name"#,
        r#"claims.groups.startsWith("o")"#,
        // Ordering across types, an index past the end, a header not sent.
        r#"claims.age < claims.name"#,
        "claims.groups[5] == 1",
        r#"request.headers["x-none"] == "" "#,
        // An error is not absorbed by a later clause.
        r#"claims.missing == 1 || true"#,
        r#"!(claims.missing == 1 && false)"#,
    ] {
        assert!(!holds(rule), "{rule}");
    }
}

#[test]
fn a_header_sent_twice_has_no_value_for_a_rule() {
    let rule = Rule::compile(r#"request.headers["x-env"] == "prod""#).unwrap();
    let twice = request("GET", "/", &[("x-env", "prod"), ("x-env", "dev")]);
    assert!(!admitted(&rule, &claims(KEYCLOAK), &twice));
    let once = request("GET", "/", &[("X-Env", "prod")]);
    assert!(admitted(&rule, &claims(KEYCLOAK), &once));
    // Its `_` spelling beside it is a second copy to CGI, WSGI and Rack.
    let spelt_twice = request("GET", "/", &[("x-env", "prod"), ("x_env", "dev")]);
    assert!(!admitted(&rule, &claims(KEYCLOAK), &spelt_twice));
    let rule = Rule::compile(r#"request.headers["x-tenant-id"] == "acme""#).unwrap();
    for other in ["x-tenant_id", "x_tenant-id", "X_TENANT_ID"] {
        let sent = request("GET", "/", &[("x-tenant-id", "acme"), (other, "evil")]);
        assert!(!admitted(&rule, &claims(KEYCLOAK), &sent), "{other}");
    }
    // ...and any spelling of a header is that header to `in`.
    let deny = Rule::compile(r#"!("x-debug-mode" in request.headers)"#).unwrap();
    for spelt in [
        "x-debug-mode",
        "x_debug_mode",
        "x-debug_mode",
        "X_Debug-Mode",
    ] {
        let sent = request("GET", "/", &[(spelt, "1")]);
        assert!(!admitted(&deny, &claims(KEYCLOAK), &sent), "{spelt}");
    }
    assert!(admitted(
        &deny,
        &claims(KEYCLOAK),
        &request("GET", "/", &[])
    ));
}

#[test]
fn a_method_the_upstream_may_read_otherwise_cannot_pass_a_rule() {
    let rule = Rule::compile(r#"request.method != "DELETE""#).unwrap();
    let claims = claims(KEYCLOAK);
    assert!(admitted(&rule, &claims, &request("POST", "/", &[])));
    for (method, headers) in [
        ("delete", &[][..]),
        ("Delete", &[][..]),
        ("POST", &[("X-HTTP-Method-Override", "DELETE")][..]),
        ("POST", &[("x-method-override", "DELETE")][..]),
        ("POST", &[("x_http_method", "DELETE")][..]),
    ] {
        let sent = request(method, "/", headers);
        assert!(!admitted(&rule, &claims, &sent), "{method} {headers:?}");
    }
}

#[test]
fn a_rule_reads_no_header_the_upstream_will_not_get_as_sent() {
    let claims = claims(KEYCLOAK);
    for rule in [
        r#"request.headers["x-auth-sub"] == "alice""#,
        r#"request.headers["X-Forwarded-For"] == "10.0.0.1""#,
        r#""x-auth-sub" in request.headers"#,
    ] {
        let rule = Rule::compile(rule).unwrap();
        let sent = request(
            "GET",
            "/",
            &[("x-auth-sub", "alice"), ("x-forwarded-for", "10.0.0.1")],
        );
        assert!(!admitted(&rule, &claims, &sent));
    }
}

#[test]
fn the_path_a_rule_reads_is_the_path_as_routed() {
    let claims = claims(KEYCLOAK);
    let rule = Rule::compile(r#"!request.path.startsWith("/admin/")"#).unwrap();
    for path in [
        "/admin/secret",
        "//admin/secret",
        "/admin;x/secret",
        "/admin;/secret",
    ] {
        assert!(
            !admitted(&rule, &claims, &request("GET", path, &[])),
            "{path}"
        );
    }
    let exact = Rule::compile(r#"request.path != "/api/delete-all""#).unwrap();
    for path in [
        "/api/delete-all;x",
        "/api//delete-all",
        "//api/delete-all",
        "/api/delete-all/",
        "/api/delete-all//",
    ] {
        assert!(
            !admitted(&exact, &claims, &request("GET", path, &[])),
            "{path}"
        );
    }
}

#[test]
fn numbers_compare_exactly_whatever_their_spelling() {
    let token = claims(
        r#"{"a":9007199254740992.0,"b":9.007199254740992e15,"c":9223372036854775808,
            "d":9223372036854775806.0,"e":18446744073709551615,"f":2.5,"g":1e300}"#,
    );
    let req = request("GET", "/", &[]);
    let holds = |rule: &str| admitted(&Rule::compile(rule).unwrap(), &token, &req);
    for rule in [
        "claims.a == 9007199254740992",
        "claims.c > 9223372036854775807",
        "claims.e > claims.c",
        "claims.f > 2 && claims.f < 3",
        "claims.g > claims.e",
        "claims.a == claims.b",
    ] {
        assert!(holds(rule), "{rule}");
    }
    for rule in [
        "claims.a == 9007199254740993",
        "claims.b == 9007199254740993",
        "claims.c == 9223372036854775807",
        "claims.d == 9223372036854775807",
        "claims.f == 2",
    ] {
        assert!(!holds(rule), "{rule}");
    }
}

#[test]
fn a_double_in_a_token_is_the_double_it_spells() {
    let token = claims(r#"{"x":0.9509489954070259,"y":9.066630378804177e239}"#);
    let req = request("GET", "/", &[]);
    let holds = |rule: &str| admitted(&Rule::compile(rule).unwrap(), &token, &req);
    assert!(holds("claims.x == 0.9509489954070259"));
    assert!(!holds("claims.x != 0.9509489954070259"));
    assert!(holds("claims.y == 9.066630378804177e239"));
}

#[test]
fn rules_that_cannot_mean_anything_are_refused_at_load() {
    for (rule, why) in [
        ("", "empty"),
        ("claims.groups &&", "ends where a value belongs"),
        (r#""ops" in claims.groups)"#, "column 23: unexpected ')'"),
        ("claims", "claims is read by name"),
        ("user.groups", "unknown name \"user\""),
        ("request.body", "request has no \"body\""),
        ("claims.a.matches(\"x\")", "no method \"matches\""),
        (r#"claims.age < "x" && 1 == "1""#, "never equal"),
        (r#"1 < "x""#, "orders numbers with numbers"),
        (
            r#""a".startsWith(1)"#,
            "startsWith, endsWith and contains: a string is needed, not an int",
        ),
        (
            "request.method in 3",
            "'in': a list or a map is needed, not an int",
        ),
        ("claims.name", ""),
        ("1 + 1", "unexpected '+'"),
        (r#"size(1) == 1"#, "size(): a string or a list"),
        ("\"open", "not closed"),
        ("claims.age == 99999999999999999999", "not a 64-bit integer"),
        ("request.headers == 1", "read by a literal name"),
        ("size(request.headers) > 0", "read by a literal name"),
        (
            r#"request.headers[claims.name] == "x""#,
            "takes a literal name",
        ),
        ("claims.name in request.headers", "takes a literal name"),
        (r#"request.headers["x_env"] == "x""#, "'-' spelling"),
        (
            r#"request.headers["bad name"] == "x""#,
            "is not a header name",
        ),
        (
            r#"request.headers["Host"] == "x""#,
            "the host is request.host",
        ),
        (
            r#"claims.m == {"role": "user", "role": "admin"}"#,
            "in the map twice",
        ),
        ("claims.groups == [claims.sub]", "read only after 'in'"),
        ("\"x\"", "must be true or false"),
    ] {
        match Rule::compile(rule) {
            Err(e) => assert!(e.contains(why), "{rule}: {e}"),
            // A lone claim may be a boolean: it is checked when it runs.
            Ok(_) => assert_eq!(rule, "claims.name"),
        }
    }
    let deep = format!("{}true{}", "(".repeat(200), ")".repeat(200));
    assert!(Rule::compile(&deep).unwrap_err().contains("nested deeper"));
    // Chains nest as deeply as parentheses: fields, indexes, `&&`, `==`.
    for chain in [
        format!("has({{}}{})", ".a".repeat(2000)),
        format!("[[1]]{} == 1", "[0]".repeat(1300)),
        format!("true{}", " && true".repeat(65)),
        format!("1{} == 1", " == 1".repeat(65)),
    ] {
        let e = Rule::compile(&chain).unwrap_err();
        assert!(e.contains("nested deeper"), "{e}");
    }
    assert!(Rule::compile(&format!("true{}", " && true".repeat(60))).is_ok());
    // An exponent's sign is part of its number.
    assert!(Rule::compile("claims.f < 5e-324 || claims.f > 1E+3").is_ok());
    let long = format!("true{}", " || true".repeat(1000));
    assert!(Rule::compile(&long).unwrap_err().contains("longer than"));
}

/// Claims of any shape: strings, numbers, booleans, null, lists and maps.
fn claim_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-z]{0,3}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-c]", inner, 0..3)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Rules over claims `a`, `b` and `c`, each with the claims it reads.
const RULES: [(&str, &[&str]); 11] = [
    ("claims.a == 1", &["a"]),
    (r#""x" in claims.b"#, &["b"]),
    ("claims.a.b < 3", &["a"]),
    ("claims.c[0] == true", &["c"]),
    ("size(claims.a) > 0", &["a"]),
    (r#"claims.b.startsWith("a")"#, &["b"]),
    ("claims.a", &["a"]),
    ("claims.a || claims.b", &["a"]),
    ("claims.a.b != null", &["a"]),
    (r#"claims.a in {"k": 1}"#, &["a"]),
    ("claims.c == [1, 2]", &["c"]),
];

proptest! {
    /// Whatever the token holds: a rule over a claim it lacks refuses, and
    /// so does its negation; and a rule and its negation are never both
    /// admitted, so no value of the wrong type makes a rule true.
    #[test]
    fn no_rule_error_admits(
        token in prop::collection::btree_map("[a-c]", claim_value(), 0..4),
        which in 0..RULES.len(),
    ) {
        let (rule, reads) = RULES[which];
        let json = serde_json::Value::Object(token.clone().into_iter().collect()).to_string();
        let claims = claims(&json);
        let req = request("GET", "/", &[]);
        let admits = admitted(&Rule::compile(rule).unwrap(), &claims, &req);
        let negation = admitted(&Rule::compile(&format!("!({rule})")).unwrap(), &claims, &req);
        prop_assert!(!(admits && negation), "{} and its negation over {}", rule, json);
        if reads.iter().any(|name| !token.contains_key(*name)) {
            prop_assert!(!admits && !negation, "{} over {}", rule, json);
        }
    }
}
