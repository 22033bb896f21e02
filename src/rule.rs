//! Route rules: a subset of CEL (the Common Expression Language) over the
//! verified token's claims and the request, e.g.
//! `"ops" in claims.groups && claims.email_verified == true`.
//!
//! A rule is parsed and type-checked once, when the configuration is read
//! (`parse`, `check`), into a tree whose claim paths are already resolved;
//! a request walks that tree (`eval`) reading claims where they sit in the
//! token, so a rule costs a request no allocation in its usual forms.
//!
//! A rule only ever narrows: it runs after the token is verified and the
//! route's other requirements hold, and a rule that cannot be evaluated (a
//! claim missing, a value of the wrong type) refuses the request. Unlike
//! full CEL, an error is never absorbed by a later `||` or `&&` clause:
//! clauses run left to right, and the first error ends the rule as false.
//! Elsewhere the answers are CEL's (`has()` over a missing map is an
//! error, a list literal is evaluated whole, a non-string key is in no
//! map), held to another implementation's by `tests::rules_agree_with_standard_cel`.

mod check;
mod eval;
mod parse;

use http::request::Parts;
use http::HeaderName;
use serde_json::Value;

use crate::claim_path::ClaimPath;
use crate::claims::Claims;

/// The longest rule read, in bytes, and the deepest nesting (each
/// parenthesis, list or map literal, operator, call, index or field is a
/// level, so a chain of 64 `&&` is as deep as 64 parentheses): a rule is
/// a line or two, and reading, checking and evaluating it recurse once
/// per level. The deepest rules of each shape are read and run on a
/// 2 MiB thread stack, a Tokio worker's, by a test (64 parentheses, the
/// deepest reading, take about 768 KiB in a debug build).
pub const MAX_LENGTH: usize = 4096;
pub const MAX_DEPTH: usize = 64;

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    expr: Expr,
    /// Whether it reads `request.host`, which is found (and lower-cased)
    /// only for rules that do.
    reads_host: bool,
}

/// What a rule may read of a request, as the gateway will pass it on.
pub struct Request<'a> {
    pub parts: &'a Parts,
    /// The path as routed: empty segments, `;` parameters and a trailing
    /// `/` left out, so `//admin/`, `/admin;x` are `/admin` to a rule.
    pub path: &'a str,
    /// Whether a header never reaches the upstream as the client sent
    /// it (portero strips or writes it): a rule sees no client copy.
    pub hidden: &'a dyn Fn(&HeaderName) -> bool,
}

/// A rule's tree, with every constant folded and every claim path resolved.
#[derive(Debug, Clone, PartialEq)]
enum Expr {
    /// A literal, or a list or map of literals.
    Const(Value),
    /// `claims.a.b`, `claims["a"].b`: the claim at a path.
    Claim(ClaimPath),
    /// `claims` itself: the map of every claim.
    Claims,
    /// `request.method`, `request.path`, `request.host`.
    Request(Field),
    /// `request.headers` while parsing: read only by a literal name, as
    /// `Header` and `HasHeader`, never whole.
    Headers,
    /// `request.headers["name"]`: the header's one value.
    Header(HeaderName),
    /// `"name" in request.headers`.
    HasHeader(HeaderName),
    /// A list literal with an item that is not a literal: read only
    /// right after `in`.
    List(Vec<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Op, Box<Expr>, Box<Expr>),
    /// `a in b`: an item of a list, or a key of a map.
    In(Box<Expr>, Box<Expr>),
    /// `has(x.f)`: whether the map `x` holds the key `f` (`has(claims.a.b)`
    /// asks `claims.a` for `b`).
    HasField(Box<Expr>, String),
    Size(Box<Expr>),
    Call(Method, Box<Expr>, Box<Expr>),
    /// `x[i]`: a list's item, or a map's value.
    Index(Box<Expr>, Box<Expr>),
    /// `x.f` on a map that is not a claim path.
    Field(Box<Expr>, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Method,
    Path,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    StartsWith,
    EndsWith,
    Contains,
}

impl Rule {
    /// Parses and type-checks `text`; the error says what is wrong and,
    /// for a syntax error, at which column.
    pub fn compile(text: &str) -> Result<Rule, String> {
        if text.len() > MAX_LENGTH {
            return Err(format!("longer than {MAX_LENGTH} bytes"));
        }
        let expr = parse::parse(text)?;
        check::boolean(&expr)?;
        Ok(Rule {
            reads_host: expr.reads(Field::Host),
            expr,
        })
    }

    /// Whether the rule holds for a request with these verified claims;
    /// an error while evaluating it is a refusal.
    pub fn admits(&self, claims: &Claims, request: &Request<'_>) -> bool {
        let host = self.reads_host.then(|| request_host(request.parts));
        let context = eval::Context {
            claims,
            request,
            host: host.as_deref(),
        };
        matches!(eval::eval(&self.expr, &context), Ok(eval::Val::Bool(true)))
    }
}

/// The path a rule reads, from the path as routed (`path::routing_key`):
/// without a trailing `/`, as `/a/` and `/a` are one resource to most
/// upstreams.
pub fn rule_path(routed: &str) -> &str {
    match routed.trim_end_matches('/') {
        "" => "/",
        trimmed => trimmed,
    }
}

/// The host the request names, lower-cased, without a port or a trailing
/// dot: the host its route was chosen by, however the client spelt it.
/// (The gateway has already refused a request whose host is not one.)
fn request_host(request: &Parts) -> String {
    let host = match request.uri.host() {
        Some(host) => host,
        None => match request.headers.get(http::header::HOST).map(|h| h.to_str()) {
            Some(Ok(host)) => match host.rsplit_once(':') {
                // Not the colons of an IPv6 literal.
                Some((name, port))
                    if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') =>
                {
                    name
                }
                _ => host,
            },
            _ => "",
        },
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

impl Expr {
    /// Whether the tree reads this field of the request.
    fn reads(&self, field: Field) -> bool {
        let any = |items: &[&Expr]| items.iter().any(|e| e.reads(field));
        match self {
            Expr::Request(f) => *f == field,
            Expr::Const(_)
            | Expr::Claim(_)
            | Expr::Claims
            | Expr::Headers
            | Expr::Header(_)
            | Expr::HasHeader(_) => false,
            Expr::List(items) => items.iter().any(|e| e.reads(field)),
            Expr::Not(e) | Expr::Size(e) | Expr::HasField(e, _) | Expr::Field(e, _) => {
                e.reads(field)
            }
            Expr::And(a, b)
            | Expr::Or(a, b)
            | Expr::Compare(_, a, b)
            | Expr::In(a, b)
            | Expr::Call(_, a, b)
            | Expr::Index(a, b) => any(&[a, b]),
        }
    }
}

#[cfg(test)]
mod tests;
