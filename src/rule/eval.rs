//! A compiled rule against one request: values are borrowed from the
//! token's claims, the rule's literals and the request, never copied.

use std::cmp::Ordering;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Number, Value};

use super::{Expr, Field, Method, Op, Request};
use crate::claims::{Claim, Claims};
use crate::header_name::same_field;
use crate::method_override::is_override;

pub(super) struct Context<'a> {
    pub claims: &'a Claims,
    pub request: &'a Request<'a>,
    /// `request.host`, when the rule reads it.
    pub host: Option<&'a str>,
}

/// A value while a rule runs: borrowed, so copied for free and never dropped.
#[derive(Debug, Clone, Copy)]
pub(super) enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    /// A whole number past `i64::MAX`, as a token may carry.
    Uint(u64),
    Double(f64),
    Str(&'a str),
    /// A JSON list or map, from a claim or a literal.
    Json(&'a Value),
    /// `claims`: the map of every claim.
    Claims(&'a Claims),
}

/// Why a rule could not be evaluated: it refuses, whatever the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Error;

type Result<T> = std::result::Result<T, Error>;

pub(super) fn eval<'a>(expr: &'a Expr, cx: &Context<'a>) -> Result<Val<'a>> {
    Ok(match expr {
        Expr::Const(v) => of_json(v),
        Expr::Claim(path) => of_claim(path.find(cx.claims).ok_or(Error)?),
        Expr::Claims => Val::Claims(cx.claims),
        Expr::Request(Field::Method) => Val::Str(method(cx.request)?),
        Expr::Request(Field::Path) => Val::Str(cx.request.path),
        Expr::Request(Field::Host) => Val::Str(cx.host.ok_or(Error)?),
        // Refused when the rule is read.
        Expr::Headers => return Err(Error),
        Expr::Header(name) => Val::Str(header(cx.request, name)?),
        Expr::HasHeader(name) => {
            Val::Bool(!(cx.request.hidden)(name) && spellings(cx.request, name).next().is_some())
        }
        // Read only after `in` (below); refused anywhere else at load.
        Expr::List(_) => return Err(Error),
        Expr::Not(e) => Val::Bool(!truth(eval(e, cx)?)?),
        Expr::And(a, b) => Val::Bool(truth(eval(a, cx)?)? && truth(eval(b, cx)?)?),
        Expr::Or(a, b) => Val::Bool(truth(eval(a, cx)?)? || truth(eval(b, cx)?)?),
        Expr::Compare(op, a, b) => Val::Bool(compare(*op, &eval(a, cx)?, &eval(b, cx)?)?),
        Expr::In(item, collection) => {
            let item = eval(item, cx)?;
            match &**collection {
                Expr::List(items) => Val::Bool(in_list(&item, items, cx)?),
                collection => Val::Bool(contains(&eval(collection, cx)?, &item)?),
            }
        }
        Expr::HasField(map, name) => Val::Bool(field(eval(map, cx)?, name)?.is_some()),
        Expr::Size(e) => Val::Int(size(&eval(e, cx)?)?),
        Expr::Call(method, receiver, argument) => {
            let (Val::Str(s), Val::Str(arg)) = (eval(receiver, cx)?, eval(argument, cx)?) else {
                return Err(Error);
            };
            Val::Bool(match method {
                Method::StartsWith => s.starts_with(arg),
                Method::EndsWith => s.ends_with(arg),
                Method::Contains => s.contains(arg),
            })
        }
        Expr::Index(e, index) => index_of(eval(e, cx)?, &eval(index, cx)?)?,
        Expr::Field(e, name) => field(eval(e, cx)?, name)?.ok_or(Error)?,
    })
}

/// `item in [a, b, ...]`: as CEL builds the list before looking in it,
/// every item is evaluated (an error in any is the answer), without
/// building it.
fn in_list<'a>(item: &Val<'_>, items: &'a [Expr], cx: &Context<'a>) -> Result<bool> {
    let mut found = false;
    for e in items {
        let value = eval(e, cx)?;
        found = found || equal(item, &value);
    }
    Ok(found)
}

/// The value of key `name` in a map, if it holds one; an error for
/// anything but a map.
fn field<'a>(map: Val<'a>, name: &str) -> Result<Option<Val<'a>>> {
    match map {
        Val::Json(Value::Object(m)) => Ok(m.get(name).map(of_json)),
        Val::Claims(claims) => Ok(claims.get(name).map(of_claim)),
        _ => Err(Error),
    }
}

fn truth(v: Val<'_>) -> Result<bool> {
    match v {
        Val::Bool(b) => Ok(b),
        _ => Err(Error),
    }
}

/// The request's method, if it is the one the upstream will act on: in
/// capitals (a framework may read `delete` as `DELETE`), and with no
/// method-override header in any spelling.
fn method<'a>(request: &Request<'a>) -> Result<&'a str> {
    let method = request.parts.method.as_str();
    let overridden = request
        .parts
        .headers
        .keys()
        .any(|name| is_override(name.as_str()));
    if overridden || method.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(Error);
    }
    Ok(method)
}

/// The values of every header the upstream may read as `name`: CGI, WSGI
/// and Rack read `x_a-b` and `x-a_b` as `x-a-b`.
fn spellings<'a>(
    request: &Request<'a>,
    name: &'a HeaderName,
) -> impl Iterator<Item = &'a HeaderValue> + 'a {
    let headers: &'a HeaderMap = &request.parts.headers;
    headers
        .iter()
        .filter(move |(sent, _)| same_field(sent.as_str(), name.as_str()))
        .map(|(_, value)| value)
}

/// A header's one value as the upstream gets it: none if portero strips
/// or writes it, or if the client sent it twice (in any spellings CGI
/// reads as one).
fn header<'a>(request: &Request<'a>, name: &'a HeaderName) -> Result<&'a str> {
    if (request.hidden)(name) {
        return Err(Error);
    }
    let mut values = spellings(request, name);
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(Error);
    };
    value.to_str().map_err(|_| Error)
}

fn of_json(v: &Value) -> Val<'_> {
    match v {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => of_number(n),
        Value::String(s) => Val::Str(s),
        list_or_map => Val::Json(list_or_map),
    }
}

fn of_number(n: &Number) -> Val<'static> {
    match (n.as_i64(), n.as_u64()) {
        (Some(i), _) => Val::Int(i),
        (None, Some(u)) => Val::Uint(u),
        _ => Val::Double(n.as_f64().unwrap_or(f64::NAN)),
    }
}

fn of_claim(c: Claim<'_>) -> Val<'_> {
    match c {
        Claim::Str(s) => Val::Str(s),
        Claim::Number(n) => of_number(n),
        Claim::Json(v) => of_json(v),
    }
}

/// CEL's equality: values of different types are unequal (numbers
/// compare by value, exactly: `1 == 1.0`, but 2^53 + 1 is not the double
/// 2^53); lists item by item, maps key by key.
fn equal(a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (
            Val::Int(_) | Val::Uint(_) | Val::Double(_),
            Val::Int(_) | Val::Uint(_) | Val::Double(_),
        ) => order(a, b) == Some(Ordering::Equal),
        (Val::Json(Value::Object(x)), Val::Json(Value::Object(y))) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| equal(&of_json(v), &of_json(w))))
        }
        (Val::Json(Value::Array(x)), Val::Json(Value::Array(y))) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(v, w)| equal(&of_json(v), &of_json(w)))
        }
        // One token's claims: the same map.
        (Val::Claims(_), Val::Claims(_)) => true,
        (Val::Claims(c), Val::Json(Value::Object(m)))
        | (Val::Json(Value::Object(m)), Val::Claims(c)) => {
            c.iter().count() == m.len()
                && c.iter()
                    .all(|(k, v)| m.get(k).is_some_and(|w| equal(&of_claim(v), &of_json(w))))
        }
        _ => false,
    }
}

/// Two numbers in exact order: whole numbers as `i128`, a double against
/// a whole number without rounding either; `None` for NaN or non-numbers.
fn order(a: &Val<'_>, b: &Val<'_>) -> Option<Ordering> {
    let whole = |v: &Val<'_>| match v {
        Val::Int(i) => Some(i128::from(*i)),
        Val::Uint(u) => Some(i128::from(*u)),
        _ => None,
    };
    match (a, b, whole(a), whole(b)) {
        (_, _, Some(x), Some(y)) => Some(x.cmp(&y)),
        (Val::Double(x), Val::Double(y), _, _) => x.partial_cmp(y),
        (_, Val::Double(d), Some(i), _) => whole_against_double(i, *d),
        (Val::Double(d), _, _, Some(i)) => whole_against_double(i, *d).map(Ordering::reverse),
        _ => None,
    }
}

fn whole_against_double(i: i128, d: f64) -> Option<Ordering> {
    if d.is_nan() {
        return None;
    }
    // Past i128's range (or infinite), a double is beyond every whole number here.
    if d.abs() >= 1.7e38 {
        return Some(if d > 0.0 {
            Ordering::Less
        } else {
            Ordering::Greater
        });
    }
    if d.fract() == 0.0 {
        return Some(i.cmp(&(d as i128)));
    }
    // A double with a fraction is under 2^53, where `i as f64` keeps the order.
    (i as f64).partial_cmp(&d)
}

fn compare(op: Op, a: &Val<'_>, b: &Val<'_>) -> Result<bool> {
    let order = match (a, b) {
        _ if op == Op::Eq => return Ok(equal(a, b)),
        _ if op == Op::Ne => return Ok(!equal(a, b)),
        (Val::Str(x), Val::Str(y)) => x.cmp(y),
        _ => order(a, b).ok_or(Error)?,
    };
    Ok(match op {
        Op::Lt => order.is_lt(),
        Op::Le => order.is_le(),
        Op::Gt => order.is_gt(),
        Op::Ge => order.is_ge(),
        Op::Eq | Op::Ne => unreachable!("answered above"),
    })
}

/// `item in collection`. A map's keys are strings: any other key is in
/// none (false, as CEL's map lookup answers, not an error).
fn contains(collection: &Val<'_>, item: &Val<'_>) -> Result<bool> {
    let key = match item {
        Val::Str(key) => Some(*key),
        _ => None,
    };
    match collection {
        Val::Json(Value::Array(list)) => Ok(list.iter().any(|v| equal(&of_json(v), item))),
        Val::Json(Value::Object(map)) => Ok(key.is_some_and(|k| map.contains_key(k))),
        Val::Claims(claims) => Ok(key.is_some_and(|k| claims.get(k).is_some())),
        _ => Err(Error),
    }
}

fn size(v: &Val<'_>) -> Result<i64> {
    let n = match v {
        Val::Str(s) => s.chars().count(),
        Val::Json(Value::Array(list)) => list.len(),
        Val::Json(Value::Object(map)) => map.len(),
        Val::Claims(claims) => claims.iter().count(),
        _ => return Err(Error),
    };
    i64::try_from(n).map_err(|_| Error)
}

fn index_of<'a>(collection: Val<'a>, index: &Val<'_>) -> Result<Val<'a>> {
    match (collection, index) {
        (Val::Json(Value::Array(list)), Val::Int(i)) => {
            let i = usize::try_from(*i).map_err(|_| Error)?;
            list.get(i).map(of_json).ok_or(Error)
        }
        (map, Val::Str(key)) => field(map, key)?.ok_or(Error),
        _ => Err(Error),
    }
}
