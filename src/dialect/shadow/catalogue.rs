//! What each dialect itself answers, as `src/dialect/*.rs` writes it and
//! docs/dialects.md lists it: the statuses of its contract, its fixed
//! strings (messages, codes, reason phrases), the numbers it writes in
//! each place (error codes, a status in the body) and the field names of
//! its bodies. A legacy answer is shown in the log only through this list:
//! a value in it has a known meaning; any other may be anything the legacy
//! service chose to put there, the client's password (or a PIN's digits)
//! included.

use crate::config::Dialect;

/// One dialect's contract, as far as the comparison needs it.
pub struct Catalogue {
    /// Every status the dialect answers with.
    pub statuses: &'static [u16],
    /// Every fixed string its bodies carry.
    strings: &'static [&'static str],
    /// Messages that end in a number the config sets: the text before it.
    numbered: &'static [&'static str],
    /// The numbers the dialect writes under each field name.
    numbers: &'static [(&'static str, Numbers)],
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

    /// A status as the log shows it: as it is if the dialect answers with
    /// it, else its class alone (`5xx`): a status the legacy service
    /// chose may carry three of the client's digits.
    pub fn show_status(&self, status: u16) -> String {
        if self.uses(status) {
            status.to_string()
        } else {
            format!("{}xx", status / 100)
        }
    }

    /// One of the dialect's fixed strings, or a JWS algorithm name.
    pub fn is_fixed(&self, s: &str) -> bool {
        self.strings.contains(&s) || JWS_ALGORITHMS.contains(&s)
    }

    /// A numbered message: (the fixed text, the number after it). Only
    /// numbers a config could set (`u32`) count.
    pub fn numbered<'s>(&self, s: &'s str) -> Option<(&'static str, &'s str)> {
        self.numbered.iter().find_map(|prefix| {
            let n = s.strip_prefix(prefix)?;
            let digits = !n.is_empty() && n.len() <= 10 && n.bytes().all(|b| b.is_ascii_digit());
            digits.then_some((*prefix, n))
        })
    }

    /// A number the dialect itself writes under the field `key`.
    pub fn writes_number(&self, key: &str, n: &serde_json::Number) -> bool {
        let Some(n) = n.as_u64() else {
            return false;
        };
        self.numbers.iter().any(|(k, numbers)| {
            *k == key
                && match numbers {
                    Numbers::Codes(codes) => codes.contains(&n),
                    Numbers::Status => u16::try_from(n).is_ok_and(|s| self.uses(s)),
                }
        })
    }

    /// One of the field names of the dialect's bodies.
    pub fn is_key(&self, key: &str) -> bool {
        self.keys.contains(&key)
    }
}

/// The numbers a dialect writes in one field.
#[derive(Debug, PartialEq)]
enum Numbers {
    /// Its own codes.
    Codes(&'static [u64]),
    /// The answer's status, repeated in the body.
    Status,
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
    // docs/dialects.md: 1 bad credentials or request, 2 blocked, 3 server error.
    numbers: &[("error", Numbers::Codes(&[1, 2, 3]))],
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
    numbers: &[("status", Numbers::Status)],
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
    numbers: &[],
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
    numbers: &[("code", Numbers::Status)],
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
    numbers: &[],
    keys: &["msg", "error", "access_token", "exp", "iat"],
};

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    const DIALECTS: [(Dialect, &str); 5] = [
        (Dialect::Session, include_str!("../session.rs")),
        (Dialect::LoginRefresh, include_str!("../login_refresh.rs")),
        (Dialect::Project, include_str!("../project.rs")),
        (
            Dialect::ClientEnvelope,
            include_str!("../client_envelope.rs"),
        ),
        (Dialect::ClientFlat, include_str!("../client_flat.rs")),
    ];
    const SHARED: &str = include_str!("../../dialect.rs");

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
    fn a_number_the_config_sets_ends_a_numbered_message_never_a_fixed_one() {
        let c = Catalogue::of(Dialect::Project);
        let prefix = "withoutExpiration debe ser true o un número de años entre 1 y ";
        assert!(!c.is_fixed(&format!("{prefix}10")));
        assert_eq!(c.numbered(&format!("{prefix}9876")), Some((prefix, "9876")));
        assert_eq!(c.numbered(prefix), None);
        assert_eq!(c.numbered(&format!("{prefix}10 secreto")), None);
        assert!(!c.is_fixed("La clave secreta no corresponde"));
        assert!(c.uses(503) && !c.uses(101) && !c.uses(204) && !c.uses(302));
    }

    #[test]
    fn a_number_is_the_dialect_s_own_only_in_its_place() {
        let n = |v: u64| serde_json::Number::from(v);
        let session = Catalogue::of(Dialect::Session);
        assert!(session.writes_number("error", &n(2)));
        assert!(!session.writes_number("error", &n(91)));
        assert!(!session.writes_number("id", &n(2)));
        let envelope = Catalogue::of(Dialect::ClientEnvelope);
        assert!(envelope.writes_number("code", &n(401)));
        assert!(!envelope.writes_number("code", &n(555)));
        assert!(!envelope.writes_number("code", &n(401_000)));
        assert_eq!(session.show_status(403), "403");
        assert_eq!(session.show_status(555), "5xx");
    }

    /// The numbers under each name are those the dialect's code writes
    /// there.
    #[test]
    fn every_own_number_is_written_by_its_dialect() {
        for (dialect, source) in DIALECTS {
            for (key, numbers) in Catalogue::of(dialect).numbers {
                match numbers {
                    Numbers::Status => {
                        let written = format!("{key:?}: status.as_u16()");
                        assert!(source.contains(&written), "{}: {key}", dialect.name());
                    }
                    Numbers::Codes(codes) => {
                        for code in *codes {
                            // `error(status, code, message)` or `"key": code`.
                            let written = [format!(", {code}, "), format!("{key:?}: {code}")];
                            assert!(
                                written.iter().any(|w| source.contains(w)),
                                "{}: {key} {code}",
                                dialect.name()
                            );
                        }
                    }
                }
            }
        }
    }
}
