//! Portero's rules against standard CEL's answers, expression by
//! expression, over one claims document.

use super::*;

/// What a rule comes to: CEL's three answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    True,
    False,
    Error,
}

/// The claims the differential table below runs over.
const CEL_CLAIMS: &str = r#"{"sub":"u1","email_verified":true,"groups":["ops","dev"],
    "realm_access":{"roles":["user","auditor"]},"age":42,"ratio":0.5,
    "x":0.9509489954070259,"name":"Ann","tenant":null,"s":[{"b":1}],
    "big":9223372036854775807}"#;

/// Expressions over `CEL_CLAIMS` bound as `claims`, with the answers of
/// standard CEL: those of cel-rust (the `cel` crate, 0.15.0), run over the
/// same document. cel-python (0.5.0) answers otherwise where it predates
/// CEL's heterogeneous equality (`1 == 1.0`), reads `"A" in "Ann"` as a
/// substring test, answers false for `has()` over a missing or non-map
/// parent and errors on a non-string key against a map; there the
/// language definition (google/cel-spec doc/langdef.md: "Field Selection",
/// "Equality") and cel-go's JSON map lookup side with cel-rust.
const CEL_ANSWERS: &[(&str, Answer)] = {
    use Answer::*;
    &[
        // Numbers as written, in a token and in a rule.
        ("claims.x == 0.9509489954070259", True),
        ("claims.x != 0.9509489954070259", False),
        ("-9223372036854775808 < 0", True),
        ("0x1F == 31", True),
        ("0x1f == 31", True),
        ("-0x1F == -31", True),
        ("-0x8000000000000000 < 0", True),
        (".5 == 0.5", True),
        ("-.5 < 0.0", True),
        ("0.5e1 == 5", True),
        (".5e1 == 5", True),
        ("1e3 == 1000", True),
        ("1.5e-3 < 1.0", True),
        ("1E+3 == 1000", True),
        ("1 == 1.0", True),
        ("claims.age == 42.0", True),
        ("claims.age > 41.5", True),
        ("claims.ratio == 0.5", True),
        ("claims.big == 9223372036854775807", True),
        ("[1, 2] == [1, 2.0]", True),
        (r#"{"a": 1} == {"a": 1.0}"#, True),
        // Lists: built whole before `in` looks.
        (r#""a" in ["a", claims.missing]"#, Error),
        (r#""a" in ["b", claims.missing]"#, Error),
        (r#"claims.sub in ["u1", claims.missing]"#, Error),
        (r#"claims.missing in ["a"]"#, Error),
        ("claims.missing in []", Error),
        (r#""a" in []"#, False),
        ("claims.age in [42.0]", True),
        (r#""ops" in claims.groups"#, True),
        (r#"claims.groups in [["ops", "dev"]]"#, True),
        // Maps: a key of another type is in none.
        ("2 in {}", False),
        ("claims.age in {}", False),
        ("claims.age in claims.realm_access", False),
        ("claims.age in claims", False),
        (r#""2" in {"2": 1}"#, True),
        (r#""roles" in claims.realm_access"#, True),
        (r#""k" in claims.realm_access"#, False),
        // `claims` is a map.
        ("size(claims) == 11", True),
        ("claims.size() == 11", True),
        (r#""sub" in claims"#, True),
        (r#""nope" in claims"#, False),
        // has(): a field of a map; no map to look in is an error.
        ("has(claims.sub)", True),
        ("has(claims.zzz)", False),
        ("has(claims.realm_access.roles)", True),
        ("has(claims.realm_access.groups)", False),
        ("has(claims.s[0].b)", True),
        (r#"has(claims["realm_access"].roles)"#, True),
        ("has(claims.missing.b)", Error),
        ("has(claims.s[1].b)", Error),
        ("has(claims.name.b)", Error),
        ("has(claims.tenant.b)", Error),
        ("has(claims.groups.b)", Error),
        // Fields, indexes, functions.
        (r#"claims.groups == ["ops", "dev"]"#, True),
        (
            r#"claims.realm_access == {"roles": ["user", "auditor"]}"#,
            True,
        ),
        (
            r#"claims.realm_access["roles"] == ["user", "auditor"]"#,
            True,
        ),
        (r#"claims["realm_access"]["roles"][0] == "user""#, True),
        (r#"claims.realm_access.roles[0] == "user""#, True),
        ("claims.realm_access.roles.size() == 2", True),
        ("claims.s[0].b == 1", True),
        (r#"claims.s[0]["b"] == 1"#, True),
        ("size(claims.name) == 3", True),
        ("claims.name.size() == 3", True),
        (
            r#"claims.name.startsWith("A") && claims.name.endsWith("nn") && claims.name.contains("n")"#,
            True,
        ),
        (r#"claims.name.contains("")"#, True),
        ("size({}) == 0", True),
        ("size([]) == 0", True),
        ("claims.tenant == null", True),
        ("null == null", True),
        ("claims.email_verified", True),
        ("!claims.email_verified", False),
        ("claims.age >= 18 && claims.age < 100", True),
        (r#""b" < "a""#, False),
        (r#""Ann" < claims.name"#, False),
        (r#"'x' == "x""#, True),
        (r#""\\" == '\\'"#, True),
        (r#""a\tb" != "a b""#, True),
        ("((((true))))", True),
        ("!!true", True),
        ("1 == 1 == true", True),
        ("true || claims.missing == 1", True),
        ("false && claims.missing == 1", False),
        // Errors: what is not there, or not of a type the operator takes.
        ("claims.missing == null", Error),
        ("claims.missing.b == 1", Error),
        ("claims.name.b == 1", Error),
        ("claims.tenant.b == 1", Error),
        ("claims.age < claims.name", Error),
        ("claims.groups[5] == 1", Error),
        ("claims.groups[-1] == 1", Error),
        (r#""A" in claims.name"#, Error),
    ]
};

/// Where portero answers otherwise, on purpose: CEL lets a later `&&` or
/// `||` clause absorb an error, portero refuses (its answers, not CEL's).
const ABSORBED_BY_CEL: &[(&str, Answer)] = &[
    ("claims.missing == 1 || true", Answer::True),
    ("claims.missing || true", Answer::True),
    ("claims.missing == 1 && false", Answer::False),
    ("!(claims.missing == 1 && false)", Answer::True),
];

/// Rules standard CEL does not parse, refused when read.
const CEL_PARSE_ERRORS: &[&str] = &[
    r#"has(claims["sub"])"#,
    "0X1F == 31",
    "1e == 1",
    "1. == 1.0",
    "9223372036854775808 > 0",
    "0x8000000000000000 > 0",
];

/// A rule's answer over `claims`, or why it is refused when read.
fn answer(rule: &str, claims: &Claims) -> Result<Answer, String> {
    let rule = Rule::compile(rule)?;
    let parts = request("GET", "/", &[]);
    let request = Request {
        parts: &parts,
        path: "/",
        hidden: &|_: &HeaderName| false,
    };
    let context = eval::Context {
        claims,
        request: &request,
        host: None,
    };
    Ok(match eval::eval(&rule.expr, &context) {
        Ok(eval::Val::Bool(true)) => Answer::True,
        Ok(eval::Val::Bool(false)) => Answer::False,
        _ => Answer::Error,
    })
}

#[test]
fn rules_agree_with_standard_cel() {
    let token = claims(CEL_CLAIMS);
    let wrong: Vec<String> = CEL_ANSWERS
        .iter()
        .filter_map(|&(rule, cel)| {
            let ours = answer(rule, &token);
            (ours != Ok(cel)).then(|| format!("{rule}: CEL {cel:?}, portero {ours:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // An error refuses: the rule admits exactly where CEL answers true.
    for &(rule, cel) in CEL_ANSWERS {
        let admits = admitted(
            &Rule::compile(rule).unwrap(),
            &token,
            &request("GET", "/", &[]),
        );
        assert_eq!(admits, cel == Answer::True, "{rule}");
    }
    for &(rule, cel) in ABSORBED_BY_CEL {
        assert_ne!(cel, Answer::Error, "{rule}");
        assert_eq!(answer(rule, &token), Ok(Answer::Error), "{rule}");
    }
    for rule in CEL_PARSE_ERRORS {
        assert!(Rule::compile(rule).is_err(), "{rule}");
    }
}
