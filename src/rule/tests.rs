use proptest::prelude::*;

use super::*;
use http::HeaderName;

/// The differential table against standard CEL.
mod standard_cel;

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
fn a_list_literal_is_evaluated_whole() {
    // CEL builds the list before `in` looks into it: an item that cannot
    // be evaluated is an error even past a match.
    for rule in [
        r#""a" in ["a", claims.missing]"#,
        r#"claims.name in [claims.name, claims.groups[9]]"#,
        r#"!("a" in ["b", claims.missing])"#,
    ] {
        assert!(!holds(rule), "{rule}");
    }
    assert!(holds(r#"claims.name in ["x", claims.name, claims.sub]"#));
}

#[test]
fn a_key_of_another_type_is_in_no_map() {
    for rule in [
        "!(2 in {})",
        "!(claims.age in {})",
        "!(claims.age in claims.realm_access)",
        "!(null in claims.resource_access)",
    ] {
        assert!(holds(rule), "{rule}");
    }
    // As CEL's checker: a map literal with keys has string keys.
    let e = Rule::compile(r#"2 in {"a": 1}"#).unwrap_err();
    assert!(e.contains("a key before 'in'"), "{e}");
}

#[test]
fn integer_literals_are_read_as_cel_writes_them() {
    for rule in [
        "-9223372036854775808 < -9223372036854775807",
        "claims.age > -9223372036854775808",
        "0x1F == 31 && 0x1f == 31.0 && -0x1F == -31 && 0x0 == 0",
        "-0x8000000000000000 == -9223372036854775808",
        "0x7fffffffffffffff == 9223372036854775807",
        "007 == 7",
    ] {
        assert!(holds(rule), "{rule}");
    }
    for (rule, why) in [
        ("9223372036854775808 > 0", "not a 64-bit integer"),
        ("-(9223372036854775808) < 0", "not a 64-bit integer"),
        ("0x8000000000000000 > 0", "not a 64-bit integer"),
        ("0X1F == 31", "not a number"),
        ("0x == 0", "not a number"),
        ("0x1G == 0", "not a number"),
        ("1u == 1", "not a number"),
        ("1e == 1", "not a number"),
    ] {
        let e = Rule::compile(rule).unwrap_err();
        assert!(e.contains(why), "{rule}: {e}");
    }
}

#[test]
fn a_double_may_start_with_its_point() {
    for rule in [
        ".5 == 0.5",
        "-.5 < 0.0",
        ".5e1 == 5 && .25E-1 == 0.025",
        "claims.ratio == .5",
        "[.5][0] == 0.5",
    ] {
        assert!(holds(rule), "{rule}");
    }
    // CEL reads `1.` as the integer 1 and a field: no double.
    assert!(Rule::compile("1. == 1").is_err());
}

#[test]
fn claims_is_a_map_of_the_tokens_claims() {
    let req = request("GET", "/", &[]);
    let token = claims(r#"{"sub":"u1","age":42,"https://example.com/roles":["editor"]}"#);
    let holds = |rule: &str| admitted(&Rule::compile(rule).unwrap(), &token, &req);
    for rule in [
        "size(claims) == 3 && claims.size() == 3",
        r#""sub" in claims && "https://example.com/roles" in claims"#,
        r#"!("email" in claims) && !(1 in claims)"#,
        r#"claims == {"sub": "u1", "age": 42.0, "https://example.com/roles": ["editor"]}"#,
        r#"claims != {"sub": "u1"} && claims != {}"#,
        r#"claims["sub"] == "u1" && claims[["sub"][0]] == "u1""#,
        r#"claims in [{}, claims]"#,
    ] {
        assert!(holds(rule), "{rule}");
    }
    assert!(!holds(r#"claims[["none"][0]] == "u1""#));
    let e = Rule::compile("claims").unwrap_err();
    assert!(
        e.contains("must be true or false; this one is a map"),
        "{e}"
    );
}

#[test]
fn has_reads_the_request_as_a_map() {
    for rule in [
        "has(request.path) && has(request.host) && has(request.method)",
        "has(request.headers.accept) == false",
        "has(request.headers.x) == false",
    ] {
        let rule = Rule::compile(rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
        let plain = request("GET", "/", &[("x-env", "prod")]);
        assert!(admitted(&rule, &claims(KEYCLOAK), &plain));
    }
    let rule = Rule::compile("has(request.headers.accept)").unwrap();
    let sent = request("GET", "/", &[("accept", "*/*")]);
    assert!(admitted(&rule, &claims(KEYCLOAK), &sent));
    // The method's field is there even when its value is not readable:
    // a guard on it cannot admit an overridden method.
    let rule = Rule::compile(r#"!has(request.method) || request.method == "GET""#).unwrap();
    let overridden = request("GET", "/", &[("x-http-method-override", "DELETE")]);
    assert!(!admitted(&rule, &claims(KEYCLOAK), &overridden));
}

#[test]
fn has_is_an_error_where_cel_has_no_map_to_look_in() {
    // As in CEL: `has(e.f)` asks whether the map `e` holds `f`; when `e`
    // is missing or not a map, that is an error, so the rule refuses
    // with or without a `!` before it.
    let token = claims(
        r#"{"s":[{"b":1}],"name":"Ann","tenant":null,"groups":["ops"],
            "realm_access":{"roles":["user"]},"resource_access":{"other":{"roles":["root"]}}}"#,
    );
    let req = request("GET", "/", &[]);
    let holds = |rule: &str| admitted(&Rule::compile(rule).unwrap(), &token, &req);
    for rule in [
        "has(claims.missing.b)",
        "has(claims.s[1].b)",
        "has(claims.name.b)",
        "has(claims.tenant.b)",
        "has(claims.groups.b)",
        "has(claims.realm_access.roles.b)",
    ] {
        assert!(!holds(rule), "{rule}");
        assert!(!holds(&format!("!{rule}")), "!{rule}");
    }
    for rule in [
        "has(claims.s[0].b)",
        "has(claims.realm_access.roles)",
        "!has(claims.realm_access.groups)",
        "!has(claims.missing)",
        r#"has(claims["resource_access"].other)"#,
        "!has(claims.resource_access.other.groups)",
    ] {
        assert!(holds(rule), "{rule}");
    }
    // `has()` takes a field, as CEL's does: a name that is no field is
    // asked with `in`.
    let e = Rule::compile(r#"has(claims["https://example.com/roles"])"#).unwrap_err();
    assert!(e.contains("in claims"), "{e}");
    assert!(Rule::compile(r#"has(request.headers["x-env"])"#).is_err());
}

/// For each shape of nesting, a rule of exactly `depth` levels.
fn nested(depth: usize) -> [String; 8] {
    let n = depth;
    [
        format!("{}true{}", "(".repeat(n), ")".repeat(n)),
        format!("{}true", "!".repeat(n)),
        format!("true{}", " && true".repeat(n)),
        format!("false{}", " || false".repeat(n)),
        format!("true{}", " == true".repeat(n)),
        format!("{}1{} == [1]", "[".repeat(n), "]".repeat(n)),
        format!("claims.deep{} == 1", "[0]".repeat(n)),
        format!("claims.objects[0]{} == 1", ".a".repeat(n - 1)),
    ]
}

#[test]
fn has_guards_admit_what_the_docs_say() {
    let req = request("GET", "/", &[]);
    let tokens = [
        r#"{"sub":"u1"}"#,
        r#"{"org":{}}"#,
        r#"{"org":{"tenant":"acme"},"tenant":"acme"}"#,
        r#"{"org":{"tenant":"evil"},"tenant":"evil"}"#,
        r#"{"org":"acme"}"#,
    ];
    for (rule, admits) in [
        (
            r#"!has(claims.tenant) || claims.tenant == "acme""#,
            [true, true, true, false, true],
        ),
        (
            r#"!has(claims.org.tenant) || claims.org.tenant == "acme""#,
            [false, true, true, false, false],
        ),
        (
            r#"!has(claims.org) || !has(claims.org.tenant) || claims.org.tenant == "acme""#,
            [true, true, true, false, false],
        ),
    ] {
        let compiled = Rule::compile(rule).unwrap();
        for (token, admits) in tokens.iter().zip(admits) {
            assert_eq!(
                admitted(&compiled, &claims(token), &req),
                admits,
                "{rule} over {token}"
            );
        }
    }
}

#[test]
fn nesting_is_limited_to_what_the_docs_say() {
    for (fits, past) in nested(MAX_DEPTH).iter().zip(nested(MAX_DEPTH + 1)) {
        assert!(Rule::compile(fits).is_ok(), "{fits}");
        let e = Rule::compile(&past).unwrap_err();
        assert!(e.contains("nested deeper than 64 levels"), "{past}: {e}");
    }
}

#[test]
fn the_deepest_rules_run_on_a_small_thread_stack() {
    // Tokio's worker threads have 2 MiB: rules are read on a reload and
    // run on every request there.
    let lists = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    let objects = format!(
        "[{}1{}]",
        r#"{"a":"#.repeat(MAX_DEPTH - 1),
        "}".repeat(MAX_DEPTH - 1)
    );
    let token = format!(r#"{{"deep":{lists},"objects":{objects}}}"#);
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let token = claims(&token);
            let req = request("GET", "/", &[]);
            let admits = [true, true, true, false, true, false, true, true];
            for (rule, admits) in nested(MAX_DEPTH).iter().zip(admits) {
                let compiled = Rule::compile(rule).unwrap();
                assert_eq!(admitted(&compiled, &token, &req), admits, "{rule}");
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn rules_that_cannot_mean_anything_are_refused_at_load() {
    for (rule, why) in [
        ("", "empty"),
        ("claims.groups &&", "ends where a value belongs"),
        (r#""ops" in claims.groups)"#, "column 23: unexpected ')'"),
        ("claims", "this one is a map"),
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
