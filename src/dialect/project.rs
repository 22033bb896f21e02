//! Seed 002, `POST /auth`: `{business, proyecto, password}` → the token as a
//! JSON string. `?withoutExpiration=true` mints one without expiry (if the
//! issuer allows it), `=N` one for N years (at most `max_years`), none the
//! default (2 years). Claims carry `business`, `proyecto`, `creacion` and,
//! unless without expiration, `expiracion` (ISO-8601, milliseconds, `Z`).
//! Errors: `{"error": "<message>"}`.

use chrono::{DateTime, Months, Utc};
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::{
    campo, denied_es, json_object, string_field, BodyError, IssuerContext, Reason, Reply,
    TokenRequest, Transport,
};
use crate::config::{project_login, LegacyEndpoint};

fn error(status: StatusCode, message: &str) -> Reply {
    Reply::json(status, json!({ "error": message }))
}

pub fn transport_error(e: Transport) -> Reply {
    match e {
        Transport::TooLarge => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "El cuerpo de la solicitud es demasiado grande",
        ),
        Transport::Timeout => error(StatusCode::REQUEST_TIMEOUT, "La solicitud tardó demasiado"),
        Transport::Unavailable => error(StatusCode::SERVICE_UNAVAILABLE, "Servicio no disponible"),
        Transport::RateLimited => error(
            StatusCode::TOO_MANY_REQUESTS,
            "Demasiadas solicitudes, intente más tarde",
        ),
    }
}

/// How long the token lives: `None` = without expiration.
#[derive(Debug, PartialEq, Eq)]
enum Expiry {
    Never,
    Years(u32),
}

fn expiry(
    query: Option<&str>,
    default_years: u32,
    max_years: u32,
    allow_never: bool,
) -> Result<Expiry, String> {
    let value = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == "withoutExpiration")
        .map(|(_, v)| v);
    match value {
        None | Some("false") => Ok(Expiry::Years(default_years)),
        Some("true") if allow_never => Ok(Expiry::Never),
        Some("true") => Err("Los tokens sin expiración están deshabilitados".into()),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=max_years).contains(&n) => Ok(Expiry::Years(n)),
            _ => Err(format!(
                "withoutExpiration debe ser true o un número de años entre 1 y {max_years}"
            )),
        },
    }
}

fn iso_millis(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub async fn handle(ctx: &IssuerContext<'_>, e: &LegacyEndpoint, req: &TokenRequest<'_>) -> Reply {
    let expiry = match expiry(
        req.query,
        e.default_years,
        e.max_years,
        ctx.config.allow_no_exp,
    ) {
        Ok(x) => x,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    let body = match json_object(req) {
        Ok(b) => b,
        Err(BodyError::NotJson) => {
            return error(
                StatusCode::BAD_REQUEST,
                "El cuerpo de la solicitud no es JSON válido",
            )
        }
        Err(BodyError::NotObject) => {
            return error(
                StatusCode::BAD_REQUEST,
                "El cuerpo de la solicitud debe ser un objeto JSON",
            )
        }
    };
    let mut fields =
        ["business", "proyecto", "password"].map(|name| (name, string_field(&body, name)));
    for (name, value) in &mut fields {
        if let Err(e) = value {
            return error(StatusCode::BAD_REQUEST, &campo(name, *e));
        }
    }
    let [business, proyecto, password] = fields.map(|(_, v)| v.expect("checked above"));
    // `business/proyecto` names one principal only while business has no
    // `/`: no principal has one (portero check refuses it), so none logs in.
    let login = project_login(business, proyecto);
    if business.contains('/') {
        let (status, message) = denied_es(ctx.logins.refuse(&login, Reason::UnknownPrincipal));
        return error(status, message);
    }
    let now = req.now.timestamp();
    let principal = match ctx.logins.log_in(&login, password, req.client, now).await {
        Ok(p) => p,
        Err(d) => {
            let (status, message) = denied_es(d);
            return error(status, message);
        }
    };
    // The principal's own names, not the spelling typed.
    let login = principal.login.as_str();
    let business = principal.business.as_deref().unwrap_or(business);
    let proyecto = principal.proyecto.as_deref().unwrap_or(proyecto);
    let created = DateTime::from_timestamp_millis(req.now.timestamp_millis()).unwrap_or(req.now);
    let mut claims = Map::new();
    claims.insert("business".into(), Value::String(business.into()));
    claims.insert("proyecto".into(), Value::String(proyecto.into()));
    claims.insert("creacion".into(), Value::String(iso_millis(created)));
    let lifetime = match expiry {
        Expiry::Never => None,
        Expiry::Years(n) => {
            // Calendar years: 2022-07-19 + 10 years = 2032-07-19, as in the seed.
            let Some(until) = created.checked_add_months(Months::new(12 * n)) else {
                return error(StatusCode::BAD_REQUEST, "withoutExpiration fuera de rango");
            };
            claims.insert("expiracion".into(), Value::String(iso_millis(until)));
            Some(std::time::Duration::from_secs(
                (until.timestamp() - now).max(0) as u64,
            ))
        }
    };
    match ctx.mint(login, claims, now, lifetime) {
        Ok(minted) => Reply::json(StatusCode::OK, Value::String(minted.token)),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "Servicio no disponible"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_expiration_query() {
        let q = |s: &str| expiry(Some(s), 2, 10, true);
        assert_eq!(expiry(None, 2, 10, true), Ok(Expiry::Years(2)));
        assert_eq!(q("withoutExpiration=true"), Ok(Expiry::Never));
        assert_eq!(q("withoutExpiration=4"), Ok(Expiry::Years(4)));
        assert_eq!(q("x=1&withoutExpiration=false"), Ok(Expiry::Years(2)));
        assert!(q("withoutExpiration=0").is_err());
        assert!(q("withoutExpiration=11").is_err());
        assert!(q("withoutExpiration=abc").is_err());
        assert!(q("withoutExpiration=").is_err());
        assert!(expiry(Some("withoutExpiration=true"), 2, 10, false).is_err());
    }
}
