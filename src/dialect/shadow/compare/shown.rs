//! How a value is shown in a difference: portero's as written, the legacy
//! service's by its type and a size that never runs to three of the
//! client's digits.

use serde_json::Value;

use super::{time, Jwt};

/// A size of the legacy's choosing: exact below 100, so that no size
/// shown carries a run of three of the client's digits.
pub(super) fn size(n: usize) -> String {
    if n < 100 {
        n.to_string()
    } else {
        "more than 99".into()
    }
}

/// `n` digits, in words the log shows.
pub(super) fn digits(n: usize) -> String {
    match n {
        1 => "1 digit".into(),
        n => format!("{} digits", size(n)),
    }
}

/// A difference of lifetimes by its unit alone.
pub(super) fn roughly(seconds: f64) -> &'static str {
    const MINUTE: f64 = 60.0;
    const HOUR: f64 = 60.0 * MINUTE;
    const DAY: f64 = 24.0 * HOUR;
    if seconds < MINUTE {
        "seconds"
    } else if seconds < HOUR {
        "minutes"
    } else if seconds < DAY {
        "hours"
    } else if seconds < 365.0 * DAY {
        "days"
    } else {
        "years"
    }
}

pub(super) fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value by its type (a present field the other side lacks).
pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::String(s) if Jwt::parse(s).is_some() => "JWT".into(),
        Value::String(s) if time(s).is_some() => "time".into(),
        v => type_of(v).into(),
    }
}

/// One of portero's strings compared by value, shown as written; a long
/// one without a space is more likely a secret than a message: its length
/// only.
pub(super) fn quoted(s: &str) -> String {
    if s.len() > 64 && !s.contains(' ') {
        format!("a string of {} characters", s.chars().count())
    } else {
        format!("{s:?}")
    }
}
