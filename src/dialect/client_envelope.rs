//! Seed 003, `POST /api/auth/token` (MAXPOINT): `{clientId, clientSecret}` →
//! `{code: 200, status: "success", message, data: {token, expire_in}}`;
//! 400 with an `errors` list naming every bad field, 401 bad credentials.

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::{
    campo, denied_es, json_object, plain_datetime, string_field, FieldError, IssuerContext, Reply,
    TokenRequest, Transport,
};

fn error(status: StatusCode, message: &str) -> Reply {
    Reply::json(
        status,
        json!({ "code": status.as_u16(), "status": "error", "message": message }),
    )
}

fn validation(errors: Vec<String>) -> Reply {
    Reply::json(
        StatusCode::BAD_REQUEST,
        json!({
            "code": 400,
            "status": "error",
            "message": "Error en la validación de datos",
            "errors": errors,
        }),
    )
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

pub async fn handle(ctx: &IssuerContext<'_>, req: &TokenRequest<'_>) -> Reply {
    let Ok(body) = json_object(req) else {
        return validation(vec![
            "El cuerpo de la solicitud debe ser un objeto JSON válido".into(),
        ]);
    };
    // Both fields are checked before answering, so the list names every problem.
    let client_id = string_field(&body, "clientId");
    let secret = string_field(&body, "clientSecret");
    let (client_id, secret) = match (client_id, secret) {
        (Ok(c), Ok(s)) => (c, s),
        (c, s) => {
            let errors = [("clientId", c.err()), ("clientSecret", s.err())]
                .into_iter()
                // The document has one message for a field that is not a
                // non-empty string: it is required.
                .filter_map(|(name, e)| e.map(|_| campo(name, FieldError::Missing)))
                .collect();
            return validation(errors);
        }
    };
    let now = req.now.timestamp();
    let principal = match ctx.logins.log_in(client_id, secret, req.client, now).await {
        Ok(p) => p,
        Err(d) => {
            let (status, message) = denied_es(d);
            return error(status, message);
        }
    };
    // The client's own id, not the spelling typed.
    let client_id = principal.login.as_str();
    let mut claims = Map::new();
    claims.insert("client_id".into(), Value::String(client_id.to_string()));
    let Ok(minted) = ctx.mint(client_id, claims, now, Some(ctx.config.token_ttl)) else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "Servicio no disponible");
    };
    let exp = chrono::DateTime::from_timestamp(minted.exp.unwrap_or(now), 0).unwrap_or(req.now);
    Reply::json(
        StatusCode::OK,
        json!({
            "code": 200,
            "status": "success",
            "message": "Token generado exitosamente",
            // The seed says UTC for this field.
            "data": { "token": minted.token, "expire_in": plain_datetime(exp) },
        }),
    )
}
