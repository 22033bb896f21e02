//! The walk over two answers' JSON, field by field: each pair of values
//! compared as its kind is (objects by their fields, strings as JWTs,
//! times or text, numbers as times or values), each difference noted with
//! its path.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::shown::{describe, digits, quoted, roughly, size, type_of};
use super::{epoch, time, Difference, Jwt, Kind, Rules};

/// Two answers' JSON being compared, and the differences found so far.
pub(super) struct Walk<'a> {
    pub(super) rules: &'a Rules<'a>,
    /// When each side answered: (portero, legacy).
    pub(super) at: (DateTime<Utc>, DateTime<Utc>),
    pub(super) found: Vec<Difference>,
}

impl Walk<'_> {
    pub(super) fn differ(&mut self, kind: Kind, path: &str, portero: String, legacy: String) {
        self.found.push(Difference {
            kind,
            path: path.to_string(),
            portero,
            legacy,
        });
    }

    /// A legacy string: as written if it is one of the dialect's fixed
    /// strings; a numbered message with its number only if the config
    /// sets that number, else in its place the number's size; any other
    /// by its length only.
    fn legacy_string(&self, s: &str) -> String {
        let catalogue = self.rules.catalogue;
        if catalogue.is_fixed(s) {
            return format!("{s:?}");
        }
        match catalogue.numbered(s) {
            Some((_, n)) if n.parse().is_ok_and(|n| self.rules.configured.contains(&n)) => {
                format!("{s:?}")
            }
            Some((text, n)) => format!("{:?}", format!("{text}<a number of {}>", digits(n.len()))),
            None => format!("a string of {} characters", size(s.chars().count())),
        }
    }

    /// A legacy number under `key`: as written if the dialect writes it
    /// there (its own codes, a status of its contract), else its size.
    fn legacy_number(&self, key: &str, n: &serde_json::Number) -> String {
        if self.rules.catalogue.writes_number(key, n) {
            return n.to_string();
        }
        match (n.as_u64(), n.as_i64()) {
            (Some(n), _) => format!("a number of {}", digits(n.to_string().len())),
            (None, Some(n)) => format!(
                "a negative number of {}",
                digits(n.unsigned_abs().to_string().len())
            ),
            _ => "a fractional number".into(),
        }
    }

    /// A legacy JSON value under `key`: a string as `legacy_string`, a
    /// number as `legacy_number`, a boolean or null as written, an array
    /// or object by its type.
    fn legacy_value(&self, key: &str, v: &Value) -> String {
        match v {
            Value::String(s) => self.legacy_string(s),
            Value::Number(n) => self.legacy_number(key, n),
            Value::Array(_) | Value::Object(_) => type_of(v).into(),
            v => v.to_string(),
        }
    }

    pub(super) fn values(&mut self, path: &str, p: &Value, l: &Value) {
        let key = path.rsplit(['.', '#']).next().unwrap_or(path);
        match (p, l) {
            (Value::Object(p), Value::Object(l)) => self.objects(path, p, l),
            (Value::Array(p), Value::Array(l)) => {
                let items = format!("{path}[]");
                if p.len() != l.len() {
                    let (pn, ln) = (p.len().to_string(), size(l.len()));
                    self.differ(
                        Kind::Value,
                        &items,
                        format!("{pn} items"),
                        format!("{ln} items"),
                    );
                }
                for (p, l) in p.iter().zip(l) {
                    self.values(&items, p, l);
                }
            }
            (Value::String(p), Value::String(l)) => self.strings(path, key, p, l),
            (Value::Number(p), Value::Number(l)) => self.numbers(path, key, p, l),
            _ if type_of(p) != type_of(l) => {
                self.differ(Kind::Type, path, type_of(p).into(), type_of(l).into());
            }
            _ if p != l => self.differ(Kind::Value, path, p.to_string(), l.to_string()),
            _ => {}
        }
    }

    fn objects(&mut self, path: &str, p: &Map<String, Value>, l: &Map<String, Value>) {
        for (name, pv) in p {
            let field = format!("{path}.{name}");
            match l.get(name) {
                Some(lv) => self.values(&field, pv, lv),
                None => self.differ(Kind::Missing, &field, describe(pv), "absent".into()),
            }
        }
        for (name, lv) in l.iter().filter(|(name, _)| !p.contains_key(*name)) {
            let name = if self.rules.catalogue.is_key(name) {
                name.clone()
            } else {
                format!("<a name of {} characters>", size(name.chars().count()))
            };
            self.differ(
                Kind::Missing,
                &format!("{path}.{name}"),
                "absent".into(),
                describe(lv),
            );
        }
    }

    fn strings(&mut self, path: &str, key: &str, p: &str, l: &str) {
        match (Jwt::parse(p), Jwt::parse(l)) {
            (Some(p), Some(l)) => return self.jwts(path, &p, &l),
            (None, None) => {}
            (p, l) => {
                let kind = |j: Option<Jwt>| if j.is_some() { "JWT" } else { "string" };
                return self.differ(Kind::Type, path, kind(p).into(), kind(l).into());
            }
        }
        match (time(p), time(l)) {
            (Some(pt), Some(lt)) => return self.lifetimes(path, pt, lt),
            (None, None) => {}
            (pt, lt) => {
                let kind = |t: Option<_>| if t.is_some() { "time" } else { "string" };
                return self.differ(Kind::Type, path, kind(pt).into(), kind(lt).into());
            }
        }
        if !by_type_only(key) && p != l {
            self.differ(Kind::Value, path, quoted(p), self.legacy_string(l));
        }
    }

    fn numbers(&mut self, path: &str, key: &str, p: &serde_json::Number, l: &serde_json::Number) {
        if is_time(key) {
            let (Some(p), Some(l)) = (p.as_f64(), l.as_f64()) else {
                return;
            };
            // Seconds since the epoch, or a lifetime in seconds.
            if p > 1e9 && l > 1e9 {
                self.lifetimes(path, epoch(p), epoch(l));
            } else {
                self.durations(path, p, l);
            }
        } else if !by_type_only(key) && p != l {
            self.differ(Kind::Value, path, p.to_string(), self.legacy_number(key, l));
        }
    }

    /// Two instants, each taken as a lifetime from its side's answer.
    fn lifetimes(&mut self, path: &str, p: DateTime<Utc>, l: DateTime<Utc>) {
        let seconds =
            |t: DateTime<Utc>, at: DateTime<Utc>| (t - at).num_milliseconds() as f64 / 1e3;
        self.durations(path, seconds(p, self.at.0), seconds(l, self.at.1));
    }

    /// Two lifetimes in seconds. The legacy one is shown only against
    /// portero's, by the unit of the difference: its exact value may be a
    /// number the client sent.
    fn durations(&mut self, path: &str, p: f64, l: f64) {
        let by = l - p;
        if by.abs() > self.rules.tolerance.as_secs_f64() {
            let longer = if by > 0.0 { "longer" } else { "shorter" };
            self.differ(
                Kind::Lifetime,
                path,
                format!("lifetime {}s", p.round()),
                format!("{longer} by {}", roughly(by.abs())),
            );
        }
    }

    fn jwts(&mut self, path: &str, p: &Jwt, l: &Jwt) {
        if p.alg != l.alg {
            self.differ(
                Kind::Jwt,
                &format!("{path}#alg"),
                quoted(&p.alg),
                self.legacy_string(&l.alg),
            );
        }
        if let (Some(pl), Some(ll)) = (p.lifetime(), l.lifetime()) {
            self.durations(&format!("{path}#exp"), pl, ll);
        } else if p.lifetime().is_some() != l.lifetime().is_some() {
            let has = |j: &Jwt| {
                if j.lifetime().is_some() {
                    "exp"
                } else {
                    "no exp"
                }
            };
            self.differ(
                Kind::Jwt,
                &format!("{path}#exp"),
                has(p).into(),
                has(l).into(),
            );
        }
        for claim in self.rules.claims {
            let (pv, lv) = (p.claims.get(claim), l.claims.get(claim));
            if pv != lv {
                let absent = || "absent".to_string();
                let (pv, lv) = (
                    pv.map_or_else(absent, Value::to_string),
                    lv.map_or_else(absent, |v| self.legacy_value(claim, v)),
                );
                self.differ(Kind::Jwt, &format!("{path}#{claim}"), pv, lv);
            }
        }
    }
}

/// Numbers under these names are times or lifetimes.
fn is_time(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    matches!(key.as_str(), "exp" | "iat" | "nbf") || key.contains("expire")
}

/// Values under these names differ between any two services answering the
/// same request (tokens, ids, the moment of an error): their type is
/// compared, never their value.
fn by_type_only(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    lower.contains("token")
        || lower == "id"
        || lower.ends_with("_id")
        || key.ends_with("Id")
        || lower == "jti"
        || lower == "timestamp"
}
