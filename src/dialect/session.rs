//! Seed 000, `POST /api/Session/GetToken`: `{username, password}` →
//! `{tokenValido, vencimiento, usuario: {id, username, nombre}}`; errors
//! `{error: <code>, message}` with code 1 (401 bad credentials, 400 bad
//! request), 2 (403 blocked or locked out), 3 (500 server error).

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::{
    campo, json_object, plain_datetime, string_field, BodyError, Denied, IssuerContext, Reply,
    TokenRequest, Transport,
};
use crate::config::LegacyEndpoint;

fn error(status: StatusCode, code: u8, message: &str) -> Reply {
    Reply::json(status, json!({ "error": code, "message": message }))
}

pub fn transport_error(e: Transport) -> Reply {
    match e {
        Transport::TooLarge => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            1,
            "El cuerpo de la solicitud es demasiado grande",
        ),
        Transport::Timeout => error(
            StatusCode::REQUEST_TIMEOUT,
            1,
            "La solicitud tardó demasiado",
        ),
        Transport::Unavailable => error(StatusCode::INTERNAL_SERVER_ERROR, 3, "Error del servidor"),
        Transport::RateLimited => error(
            StatusCode::TOO_MANY_REQUESTS,
            1,
            "Demasiadas solicitudes, intente más tarde",
        ),
    }
}

pub async fn handle(
    ctx: &IssuerContext<'_>,
    endpoint: &LegacyEndpoint,
    req: &TokenRequest<'_>,
) -> Reply {
    let body = match json_object(req) {
        Ok(b) => b,
        Err(BodyError::NotJson) => {
            return error(
                StatusCode::BAD_REQUEST,
                1,
                "El cuerpo de la solicitud no es JSON válido",
            )
        }
        Err(BodyError::NotObject) => {
            return error(
                StatusCode::BAD_REQUEST,
                1,
                "El cuerpo de la solicitud debe ser un objeto JSON",
            )
        }
    };
    let username = match string_field(&body, "username") {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, 1, &campo("username", e)),
    };
    let password = match string_field(&body, "password") {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, 1, &campo("password", e)),
    };
    let now = req.now.timestamp();
    let principal = match ctx.logins.log_in(username, password, req.client, now).await {
        Ok(p) => p,
        Err(Denied::BadCredentials) => {
            return error(StatusCode::UNAUTHORIZED, 1, "Credenciales inválidas")
        }
        Err(Denied::Locked | Denied::Blocked) => {
            return error(StatusCode::FORBIDDEN, 2, "Usuario bloqueado")
        }
        Err(Denied::Unavailable) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, 3, "Error del servidor")
        }
    };
    // Who logged in is the principal's own login, not the spelling typed
    // (a case-insensitive table matches both).
    let username = principal.login.as_str();
    let nombre = principal.nombre.clone().unwrap_or_default();
    let mut claims = Map::new();
    claims.insert("id".into(), principal.id.clone());
    claims.insert("username".into(), Value::String(username.to_string()));
    claims.insert("nombre".into(), Value::String(nombre.clone()));
    if let Some(role) = &principal.role {
        claims.insert("role".into(), Value::String(role.clone()));
    }
    let minted = match ctx.mint(username, claims, now, Some(ctx.config.token_ttl)) {
        Ok(m) => m,
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, 3, "Error del servidor"),
    };
    let exp = chrono::DateTime::from_timestamp(minted.exp.unwrap_or(now), 0).unwrap_or(req.now);
    Reply::json(
        StatusCode::OK,
        json!({
            "tokenValido": minted.token,
            "vencimiento": plain_datetime(exp.with_timezone(&endpoint.time_zone)),
            "usuario": { "id": principal.id, "username": username, "nombre": nombre },
        }),
    )
}
