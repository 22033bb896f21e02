//! Two answers to one token request compared by meaning, not by bytes:
//! the status; for JSON bodies every field path and the type of its value;
//! codes and fixed strings (messages, `token_type`, a user's name) by
//! value; tokens and ids by type only; times as lifetimes (the time less
//! the moment the answer came) within a tolerance; a JWT as a JWT: its
//! `alg`, its lifetime, and the claims the operator lists by value.
//!
//! A difference names its field path and describes each side's value by
//! its type, or by its value where values are compared (codes and fixed
//! strings); never a token. A legacy value is shown only when the dialect
//! itself writes it there (`catalogue`): one of its fixed strings, its own
//! codes, a status of its contract, a field name it uses. Anything else
//! the legacy service writes may echo what the client sent (a password, a
//! PIN's digits, split over several fields), so it is described by its
//! type and size: a string's length, a number's count of digits, a
//! status's class, a lifetime only as longer or shorter than portero's
//! and by roughly how much. No size shown runs to three digits.
//!
//! The field-by-field walk is `walk`; how each side's value is shown, `shown`.

mod shown;
mod walk;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use http::StatusCode;
use serde_json::{Map, Value};

use super::catalogue::Catalogue;
use shown::type_of;
use walk::Walk;

/// One side's answer.
pub struct Answer {
    pub status: StatusCode,
    pub body: bytes::Bytes,
    /// When it was answered: the origin of its lifetimes.
    pub at: DateTime<Utc>,
}

/// What is compared beyond the shape.
pub struct Rules<'a> {
    /// JWT claims compared by value.
    pub claims: &'a [String],
    /// Lifetimes that differ by at most this much are the same.
    pub tolerance: Duration,
    /// The dialect's fixed strings and field names: what of the legacy
    /// answer may be shown.
    pub catalogue: &'a Catalogue,
    /// The numbers the issuer's config has the dialect end a numbered
    /// message with (project's `max_years`).
    pub configured: &'a [u64],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Status,
    /// A field one side has and the other has not.
    Missing,
    /// The same field with values of different types.
    Type,
    Value,
    Lifetime,
    /// JWTs signed with different algorithms, or a listed claim differing.
    Jwt,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Status => "status",
            Kind::Missing => "missing",
            Kind::Type => "type",
            Kind::Value => "value",
            Kind::Lifetime => "lifetime",
            Kind::Jwt => "jwt",
        }
    }
}

/// A field path's values seen differently; `portero` and `legacy` describe
/// each side's value (its type, or its value where values are compared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub kind: Kind,
    /// `$` for the whole body, `$.usuario.id`, `$.errors[]`, `$.token#role`
    /// for a JWT's claim.
    pub path: String,
    pub portero: String,
    pub legacy: String,
}

/// Every difference between the two answers; none when they mean the same.
pub fn compare(rules: &Rules, portero: &Answer, legacy: &Answer) -> Vec<Difference> {
    let mut walk = Walk {
        rules,
        at: (portero.at, legacy.at),
        found: Vec::new(),
    };
    if portero.status != legacy.status {
        let status = legacy.status.as_u16();
        let legacy = if rules.catalogue.uses(status) {
            status.to_string()
        } else {
            format!(
                "a {} status outside the contract",
                rules.catalogue.show_status(status)
            )
        };
        walk.differ(
            Kind::Status,
            "$",
            portero.status.as_u16().to_string(),
            legacy,
        );
    }
    match (parse(&portero.body), parse(&legacy.body)) {
        (Body::Json(p), Body::Json(l)) => walk.values("$", &p, &l),
        (p, l) if p != l => walk.differ(Kind::Type, "$", p.describe(), l.describe()),
        _ => {}
    }
    walk.found
}

#[derive(PartialEq)]
enum Body {
    Json(Value),
    Empty,
    /// Not JSON; compared by its bytes, never shown.
    Text(bytes::Bytes),
}

impl Body {
    fn describe(&self) -> String {
        match self {
            Body::Json(v) => format!("JSON {}", type_of(v)),
            Body::Empty => "empty".into(),
            Body::Text(_) => "not JSON".into(),
        }
    }
}

fn parse(body: &bytes::Bytes) -> Body {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Body::Empty;
    }
    match serde_json::from_slice(body) {
        Ok(v) => Body::Json(v),
        Err(_) => Body::Text(body.clone()),
    }
}

/// A JWT's header algorithm and claims (its signature is not checked:
/// each side signs with its own key).
struct Jwt {
    alg: String,
    claims: Map<String, Value>,
}

impl Jwt {
    fn parse(text: &str) -> Option<Jwt> {
        let mut parts = text.split('.');
        let (header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let decode = |part: &str| -> Option<Map<String, Value>> {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
        };
        let alg = decode(header)?.get("alg")?.as_str()?.to_string();
        Some(Jwt {
            alg,
            claims: decode(payload)?,
        })
    }

    /// `exp` less `iat`, in seconds.
    fn lifetime(&self) -> Option<f64> {
        let claim = |name: &str| self.claims.get(name).and_then(Value::as_f64);
        Some(claim("exp")? - claim("iat")?)
    }
}

/// The date forms the dialects print: RFC 3339, and `YYYY-MM-DD HH:mm:ss`
/// (taken as UTC on both sides, so a zone that differs shows).
fn time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|t| t.and_utc())
}

fn epoch(seconds: f64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis((seconds * 1e3) as i64).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dialect;

    const NOW: i64 = 1_800_000_000;

    fn answer(status: u16, body: Value, at_offset: i64) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            body: body.to_string().into(),
            at: DateTime::from_timestamp(NOW + at_offset, 0).unwrap(),
        }
    }

    fn jwt(alg: &str, claims: Value) -> String {
        let part = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.c2ln",
            part(serde_json::json!({"alg": alg})),
            part(claims)
        )
    }

    fn differences(p: &Answer, l: &Answer) -> Vec<(Kind, String)> {
        let claims = ["role".to_string()];
        let rules = Rules {
            claims: &claims,
            tolerance: Duration::from_secs(5),
            catalogue: Catalogue::of(Dialect::Session),
            configured: &[],
        };
        compare(&rules, p, l)
            .into_iter()
            .map(|d| (d.kind, d.path))
            .collect()
    }

    #[test]
    fn tokens_times_and_ids_differ_by_value_and_still_mean_the_same() {
        let p = answer(
            200,
            serde_json::json!({
                "tokenValido": jwt("HS256", serde_json::json!({"iat": NOW, "exp": NOW + 3600, "role": "USER", "jti": "a"})),
                "vencimiento": "2027-01-15 09:00:00",
                "usuario": {"id": 7, "username": "ana"},
                "refreshToken": {"token": "abc", "expiresIn": 3600},
            }),
            0,
        );
        let l = answer(
            200,
            serde_json::json!({
                "tokenValido": jwt("HS256", serde_json::json!({"iat": NOW + 1, "exp": NOW + 3601, "role": "USER", "jti": "b"})),
                "vencimiento": "2027-01-15 09:00:01",
                "usuario": {"id": 8, "username": "ana"},
                "refreshToken": {"token": "xyz", "expiresIn": 3599},
            }),
            1,
        );
        assert_eq!(differences(&p, &l), []);
    }

    #[test]
    fn each_kind_of_difference_is_named_by_its_path() {
        let p = answer(
            401,
            serde_json::json!({"error": 1, "message": "Credenciales inválidas", "n": 1, "t": jwt("HS256", serde_json::json!({"iat": 0, "exp": 3600, "role": "USER"})), "e": "2027-01-15 09:00:00"}),
            0,
        );
        let l = answer(
            403,
            serde_json::json!({"error": 2, "mensaje": "x", "n": "1", "t": jwt("RS256", serde_json::json!({"iat": 0, "exp": 60, "role": "ADMIN"})), "e": "2027-01-15 10:00:00"}),
            0,
        );
        assert_eq!(
            differences(&p, &l),
            [
                (Kind::Status, "$".to_string()),
                (Kind::Value, "$.error".into()),
                (Kind::Missing, "$.message".into()),
                (Kind::Type, "$.n".into()),
                (Kind::Jwt, "$.t#alg".into()),
                (Kind::Lifetime, "$.t#exp".into()),
                (Kind::Jwt, "$.t#role".into()),
                (Kind::Lifetime, "$.e".into()),
                // A name the dialect never writes is not shown.
                (Kind::Missing, "$.<a name of 7 characters>".into()),
            ]
        );
    }

    #[test]
    fn a_legacy_string_is_shown_only_when_the_dialect_writes_it() {
        let shown = |p: &Answer, l: &Answer| {
            let claims = ["role".to_string()];
            let rules = Rules {
                claims: &claims,
                tolerance: Duration::from_secs(5),
                catalogue: Catalogue::of(Dialect::Session),
                configured: &[],
            };
            compare(&rules, p, l)
                .into_iter()
                .map(|d| (d.path, d.portero, d.legacy))
                .collect::<Vec<_>>()
        };
        let p = answer(
            401,
            serde_json::json!({"error": 1, "message": "Credenciales inválidas", "t": jwt("HS256", serde_json::json!({"role": "USER"}))}),
            0,
        );
        let l = answer(
            401,
            serde_json::json!({"error": 1, "message": "La clave hunter2 no corresponde", "t": jwt("hunter2", serde_json::json!({"role": "hunter2"})), "hunter2": 1, "usuario": 2}),
            0,
        );
        assert_eq!(
            shown(&p, &l),
            [
                (
                    "$.message".to_string(),
                    "\"Credenciales inválidas\"".to_string(),
                    "a string of 31 characters".to_string()
                ),
                (
                    "$.t#alg".into(),
                    "\"HS256\"".into(),
                    "a string of 7 characters".into()
                ),
                (
                    "$.t#role".into(),
                    "\"USER\"".into(),
                    "a string of 7 characters".into()
                ),
                (
                    "$.<a name of 7 characters>".into(),
                    "absent".into(),
                    "number".into()
                ),
                ("$.usuario".into(), "absent".into(), "number".into()),
            ]
        );
        let l = answer(
            403,
            serde_json::json!({"error": 2, "message": "Usuario bloqueado", "t": jwt("RS256", serde_json::json!({"role": 7}))}),
            0,
        );
        let found = shown(&p, &l);
        assert!(found.contains(&(
            "$.message".into(),
            "\"Credenciales inválidas\"".into(),
            "\"Usuario bloqueado\"".into()
        )));
        assert!(found.contains(&("$.t#alg".into(), "\"HS256\"".into(), "\"RS256\"".into())));
        assert!(found.contains(&(
            "$.t#role".into(),
            "\"USER\"".into(),
            "a number of 1 digit".into()
        )));
    }

    #[test]
    fn a_legacy_number_is_shown_only_when_the_dialect_writes_it_there() {
        let shown = |dialect, p: &Answer, l: &Answer| {
            let claims = ["id".to_string()];
            let rules = Rules {
                claims: &claims,
                tolerance: Duration::from_secs(5),
                catalogue: Catalogue::of(dialect),
                configured: &[10],
            };
            compare(&rules, p, l)
                .into_iter()
                .map(|d| (d.path, d.portero, d.legacy))
                .collect::<Vec<_>>()
        };
        let row = |path: &str, p: &str, l: &str| (path.to_string(), p.to_string(), l.to_string());
        let t = |claims| jwt("HS256", claims);
        let p = answer(
            401,
            serde_json::json!({"error": 1, "n": 1, "a": [1], "t": t(serde_json::json!({"iat": 0, "exp": 3600, "id": 7}))}),
            0,
        );
        let l = answer(
            555,
            serde_json::json!({"error": 71234, "n": -0.5, "a": vec![1; 1234], "t": t(serde_json::json!({"iat": 0, "exp": 1234, "id": -1234567}))}),
            0,
        );
        assert_eq!(
            shown(Dialect::Session, &p, &l),
            [
                row("$", "401", "a 5xx status outside the contract"),
                row("$.error", "1", "a number of 5 digits"),
                row("$.n", "1", "a fractional number"),
                row("$.a[]", "1 items", "more than 99 items"),
                row("$.t#exp", "lifetime 3600s", "shorter by minutes"),
                row("$.t#id", "7", "a negative number of 7 digits"),
            ]
        );
        // The dialect's own: a status of its contract, its codes.
        let l = answer(
            403,
            serde_json::json!({"error": 2, "n": 1, "a": [1], "t": t(serde_json::json!({"iat": 0, "exp": 40000, "id": 7}))}),
            0,
        );
        assert_eq!(
            shown(Dialect::Session, &p, &l),
            [
                row("$", "401", "403"),
                row("$.error", "1", "2"),
                row("$.t#exp", "lifetime 3600s", "longer by hours"),
            ]
        );
        // A numbered message: its number shown only if the config sets it.
        let text = "withoutExpiration debe ser true o un número de años entre 1 y ";
        let p = answer(400, serde_json::json!({"error": "x"}), 0);
        let with = |n: &str| answer(400, serde_json::json!({"error": format!("{text}{n}")}), 0);
        assert_eq!(
            shown(Dialect::Project, &p, &with("10")),
            [row(
                "$.error",
                "\"x\"",
                &format!("{:?}", format!("{text}10"))
            )]
        );
        assert_eq!(
            shown(Dialect::Project, &p, &with("9876")),
            [row(
                "$.error",
                "\"x\"",
                &format!("{:?}", format!("{text}<a number of 4 digits>"))
            )]
        );
    }

    #[test]
    fn a_body_that_is_not_json_is_told_apart_without_being_shown() {
        let p = answer(200, serde_json::json!("eyJ"), 0);
        let l = Answer {
            body: "<html>busy</html>".into(),
            ..answer(200, Value::Null, 0)
        };
        let found = compare(
            &Rules {
                claims: &[],
                tolerance: Duration::ZERO,
                catalogue: Catalogue::of(Dialect::Session),
                configured: &[],
            },
            &p,
            &l,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].portero.as_str(), found[0].legacy.as_str()),
            ("JSON string", "not JSON")
        );
    }
}
