//! What each dialect itself answers, as `src/issue/*.rs` writes it and
//! docs/dialects.md lists it: the statuses of its contract, its fixed
//! strings (messages, codes, reason phrases) and the field names of its
//! bodies. A legacy answer is shown in the log only through this list: a
//! string in it is a message of known meaning; any other may be anything
//! the legacy service chose to put there, the client's password included.

use crate::config::Dialect;

/// One dialect's contract, as far as the comparison needs it.
pub struct Catalogue {
    /// Every status the dialect answers with.
    pub statuses: &'static [u16],
    /// Every fixed string its bodies carry.
    strings: &'static [&'static str],
    /// Messages that end in a number the config sets: the text before it.
    numbered: &'static [&'static str],
    /// Every field name its bodies carry.
    keys: &'static [&'static str],
}

impl Catalogue {
    pub fn of(dialect: Dialect) -> &'static Catalogue {
        match dialect {
            Dialect::Session => &SESSION,
            Dialect::LoginRefresh => &LOGIN_REFRESH,
            Dialect::Project => &PROJECT,
            Dialect::ClientEnvelope => &CLIENT_ENVELOPE,
            Dialect::ClientFlat => &CLIENT_FLAT,
        }
    }

    /// A status the dialect answers with; any other (1xx, 204, 3xx, ...)
    /// is outside its contract.
    pub fn uses(&self, status: u16) -> bool {
        self.statuses.contains(&status)
    }

    /// One of the dialect's fixed strings, or a JWS algorithm name.
    pub fn is_fixed(&self, s: &str) -> bool {
        self.strings.contains(&s)
            || JWS_ALGORITHMS.contains(&s)
            || self.numbered.iter().any(|prefix| {
                s.strip_prefix(prefix).is_some_and(|n| {
                    !n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit())
                })
            })
    }

    /// One of the field names of the dialect's bodies.
    pub fn is_key(&self, key: &str) -> bool {
        self.keys.contains(&key)
    }
}

/// RFC 7518 §3.1 and RFC 8037 §3.1: the `alg` a JWT may name.
const JWS_ALGORITHMS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256",
    "PS384", "PS512", "EdDSA", "none",
];

const SESSION: Catalogue = Catalogue {
    statuses: &[200, 400, 401, 403, 408, 413, 429, 500],
    strings: &[
        "Credenciales inválidas",
        "Usuario bloqueado",
        "Error del servidor",
        "El cuerpo de la solicitud no es JSON válido",
        "El cuerpo de la solicitud debe ser un objeto JSON",
        "El campo 'username' es requerido",
        "El campo 'username' no puede estar vacío",
        "El campo 'username' debe ser una cadena",
        "El campo 'username' es demasiado largo",
        "El campo 'password' es requerido",
        "El campo 'password' no puede estar vacío",
        "El campo 'password' debe ser una cadena",
        "El campo 'password' es demasiado largo",
        "El cuerpo de la solicitud es demasiado grande",
        "La solicitud tardó demasiado",
        "Demasiadas solicitudes, intente más tarde",
    ],
    numbered: &[],
    keys: &[
        "tokenValido",
        "vencimiento",
        "usuario",
        "id",
        "username",
        "nombre",
        "error",
        "message",
    ],
};

const LOGIN_REFRESH: Catalogue = Catalogue {
    statuses: &[200, 400, 401, 408, 413, 429, 503],
    strings: &[
        "Malformed JSON request",
        "username and password are required strings",
        "refreshToken is a required string",
        "Bad credentials",
        "Invalid refresh token",
        "Too many failed login attempts",
        "Service unavailable",
        "Request body too large",
        "Request body not received in time",
        "Too many requests",
        // Spring's `error`: the reason phrase of each error status above.
        "Bad Request",
        "Unauthorized",
        "Request Timeout",
        "Payload Too Large",
        "Too Many Requests",
        "Service Unavailable",
        // `path`: the seed's two endpoints.
        "/api/auth/token",
        "/api/auth/refreshtoken",
    ],
    numbered: &[],
    keys: &[
        "id",
        "username",
        "role",
        "accessToken",
        "contentToken",
        "refreshToken",
        "token",
        "expiresIn",
        "timestamp",
        "status",
        "error",
        "message",
        "path",
    ],
};

const PROJECT: Catalogue = Catalogue {
    statuses: &[200, 400, 401, 408, 413, 429, 503],
    strings: &[
        "Credenciales inválidas",
        "Demasiados intentos fallidos, intente más tarde",
        "Servicio no disponible",
        "El cuerpo de la solicitud no es JSON válido",
        "El cuerpo de la solicitud debe ser un objeto JSON",
        "Los tokens sin expiración están deshabilitados",
        "withoutExpiration fuera de rango",
        "El campo 'business' es requerido",
        "El campo 'business' no puede estar vacío",
        "El campo 'business' debe ser una cadena",
        "El campo 'business' es demasiado largo",
        "El campo 'proyecto' es requerido",
        "El campo 'proyecto' no puede estar vacío",
        "El campo 'proyecto' debe ser una cadena",
        "El campo 'proyecto' es demasiado largo",
        "El campo 'password' es requerido",
        "El campo 'password' no puede estar vacío",
        "El campo 'password' debe ser una cadena",
        "El campo 'password' es demasiado largo",
        "El cuerpo de la solicitud es demasiado grande",
        "La solicitud tardó demasiado",
        "Demasiadas solicitudes, intente más tarde",
    ],
    numbered: &["withoutExpiration debe ser true o un número de años entre 1 y "],
    keys: &["error"],
};

const CLIENT_ENVELOPE: Catalogue = Catalogue {
    statuses: &[200, 400, 401, 408, 413, 429, 503],
    strings: &[
        "success",
        "error",
        "Token generado exitosamente",
        "Error en la validación de datos",
        "El campo 'clientId' es requerido",
        "El campo 'clientSecret' es requerido",
        "El cuerpo de la solicitud debe ser un objeto JSON válido",
        "Credenciales inválidas",
        "El cuerpo de la solicitud es demasiado grande",
        "La solicitud tardó demasiado",
        "Demasiadas solicitudes, intente más tarde",
    ],
    numbered: &[],
    keys: &[
        "code",
        "status",
        "message",
        "data",
        "token",
        "expire_in",
        "errors",
    ],
};

const CLIENT_FLAT: Catalogue = Catalogue {
    statuses: &[200, 400, 401, 404, 408, 413, 429, 503],
    strings: &[
        "Missing JSON in request",
        "Missing client_id parameter",
        "Missing client_secret parameter",
        "Invalid login details",
        "credential inactive",
        "Not Found",
        "Too many failed login attempts",
        "Service unavailable",
        "Request body too large",
        "Request timed out",
        "Too many requests",
    ],
    numbered: &[],
    keys: &["msg", "error", "access_token", "exp", "iat"],
};

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    const DIALECTS: [(Dialect, &str); 5] = [
        (Dialect::Session, include_str!("../issue/session.rs")),
        (
            Dialect::LoginRefresh,
            include_str!("../issue/login_refresh.rs"),
        ),
        (Dialect::Project, include_str!("../issue/project.rs")),
        (
            Dialect::ClientEnvelope,
            include_str!("../issue/client_envelope.rs"),
        ),
        (Dialect::ClientFlat, include_str!("../issue/client_flat.rs")),
    ];
    const SHARED: &str = include_str!("../issue.rs");

    /// Every fixed string is one the dialect's code writes (or its
    /// shared helpers do), so the list holds no message of its own.
    #[test]
    fn every_fixed_string_is_written_by_its_dialect() {
        for (dialect, source) in DIALECTS {
            let c = Catalogue::of(dialect);
            for s in c.strings {
                let campo = s
                    .strip_prefix("El campo '")
                    .and_then(|rest| rest.split_once('\''))
                    .map(|(name, tail)| (format!("{name:?}"), format!("'{{name}}'{tail}")));
                let written = match campo {
                    Some((name, template)) => source.contains(&name) && SHARED.contains(&template),
                    None => {
                        let quoted = format!("{s:?}");
                        source.contains(&quoted)
                            || SHARED.contains(&quoted)
                            || c.statuses.iter().any(|code| {
                                StatusCode::from_u16(*code).unwrap().canonical_reason() == Some(s)
                            })
                            || dialect.default_path() == *s
                            || *s == "/api/auth/refreshtoken"
                    }
                };
                assert!(written, "{}: {s:?}", dialect.name());
            }
            for prefix in c.numbered {
                assert!(source.contains(prefix), "{}: {prefix:?}", dialect.name());
            }
        }
    }

    #[test]
    fn spring_reason_phrases_are_those_of_its_statuses() {
        let c = Catalogue::of(Dialect::LoginRefresh);
        for code in c.statuses.iter().filter(|c| **c >= 400) {
            let reason = StatusCode::from_u16(*code).unwrap().canonical_reason();
            assert!(c.is_fixed(reason.unwrap()), "{code}");
        }
    }

    #[test]
    fn a_number_the_config_sets_ends_a_fixed_message() {
        let c = Catalogue::of(Dialect::Project);
        let prefix = "withoutExpiration debe ser true o un número de años entre 1 y ";
        assert!(c.is_fixed(&format!("{prefix}10")));
        assert!(!c.is_fixed(prefix));
        assert!(!c.is_fixed(&format!("{prefix}10 secreto")));
        assert!(!c.is_fixed("La clave secreta no corresponde"));
        assert!(c.uses(503) && !c.uses(101) && !c.uses(204) && !c.uses(302));
    }
}
