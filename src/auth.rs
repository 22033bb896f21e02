//! Bearer-token authentication: the key cache, the revocation cache, route
//! policies and the validation that combines them. Everything here is plain
//! data and pure functions; `proxy.rs` calls them, the admin API feeds them.

pub mod claims;
pub mod keys;
pub mod policy;
pub mod revocation;
pub mod validate;

/// Why a request was denied. One variant per reason; [`AuthError::reason`] is
/// the bounded metric label and [`denial`] the single place that turns a
/// reason into an HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no token")]
    MissingToken,
    #[error("token sent more than once")]
    RepeatedToken,
    #[error("malformed token")]
    Malformed,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("algorithm does not match the key")]
    BadAlgorithm,
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token has no expiry")]
    MissingExpiry,
    #[error("issuer not accepted")]
    WrongIssuer,
    #[error("audience not accepted")]
    WrongAudience,
    #[error("token use not accepted")]
    WrongTokenUse,
    #[error("token revoked")]
    Revoked,
    #[error("required role missing")]
    MissingRole,
    #[error("required scope missing")]
    MissingScope,
    #[error("required claim missing")]
    ClaimMismatch,
}

impl AuthError {
    pub fn reason(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::RepeatedToken => "repeated_token",
            Self::Malformed => "malformed",
            Self::UnknownKey => "unknown_kid",
            Self::BadAlgorithm => "bad_algorithm",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::MissingExpiry => "missing_exp",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::WrongTokenUse => "wrong_token_use",
            Self::Revoked => "revoked",
            Self::MissingRole => "missing_role",
            Self::MissingScope => "missing_scope",
            Self::ClaimMismatch => "claim_mismatch",
        }
    }

    /// Every reason, for pre-registering metric series.
    pub const ALL: [AuthError; 16] = [
        Self::MissingToken,
        Self::RepeatedToken,
        Self::Malformed,
        Self::UnknownKey,
        Self::BadAlgorithm,
        Self::BadSignature,
        Self::Expired,
        Self::NotYetValid,
        Self::MissingExpiry,
        Self::WrongIssuer,
        Self::WrongAudience,
        Self::WrongTokenUse,
        Self::Revoked,
        Self::MissingRole,
        Self::MissingScope,
        Self::ClaimMismatch,
    ];
}

/// An HTTP answer to a denied request.
pub struct Denial {
    pub status: u16,
    pub www_authenticate: String,
    pub body: String,
}

/// RFC 6750 §3: no `error` attribute when the request carried no credentials;
/// `invalid_request` (400) for a credential sent twice; `invalid_token` (401) for a token that fails validation;
/// `insufficient_scope` (403) for a good token that does not meet the route.
pub fn denial(err: AuthError) -> Denial {
    let (status, code) = match err {
        AuthError::MissingToken => {
            return Denial {
                status: 401,
                www_authenticate: r#"Bearer realm="portero""#.to_string(),
                body: r#"{"error":"unauthorized","error_description":"no token"}"#.to_string(),
            }
        }
        AuthError::MissingRole | AuthError::MissingScope | AuthError::ClaimMismatch => {
            (403, "insufficient_scope")
        }
        AuthError::RepeatedToken => (400, "invalid_request"),
        _ => (401, "invalid_token"),
    };
    Denial {
        status,
        www_authenticate: format!(
            r#"Bearer realm="portero", error="{code}", error_description="{err}""#
        ),
        body: format!(r#"{{"error":"{code}","error_description":"{err}"}}"#),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_token_has_no_error_attribute() {
        let d = denial(AuthError::MissingToken);
        assert_eq!(d.status, 401);
        assert!(!d.www_authenticate.contains("error="));
    }

    #[test]
    fn requirement_failures_are_403_insufficient_scope() {
        for e in [
            AuthError::MissingRole,
            AuthError::MissingScope,
            AuthError::ClaimMismatch,
        ] {
            let d = denial(e);
            assert_eq!(d.status, 403);
            assert!(d.www_authenticate.contains(r#"error="insufficient_scope""#));
        }
        let d = denial(AuthError::Expired);
        assert_eq!(d.status, 401);
        assert!(d.www_authenticate.contains(r#"error="invalid_token""#));
        serde_json::from_str::<serde_json::Value>(&d.body).unwrap();
    }
}
