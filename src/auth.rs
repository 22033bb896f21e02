//! Bearer-token authentication: the key cache, the revocation cache, route
//! policies and the validation that combines them. Everything here is plain
//! data and pure functions; `proxy.rs` calls them, the admin API feeds them.

pub mod keys;
pub mod policy;
pub mod revocation;
pub mod validate;

/// Why a request was denied. One variant per reason; [`AuthError::reason`] is
/// the bounded metric label; `respond` turns it into an HTTP answer.
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
    /// `iat` later than now, beyond the leeway: no issuer's clock is that
    /// far ahead, and a token "from the future" would outlive a
    /// revocation of its subject.
    #[error("token issued in the future")]
    IssuedInFuture,
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
    /// The route's `rule` is false, or cannot be evaluated for this token.
    #[error("the route's rule refused the request")]
    RuleRefused,
    /// A claim mapped to an identity header that no header can carry as
    /// it is (CR, LF, NUL, or a list item with a comma).
    #[error("a mapped claim cannot be an identity header")]
    UnsafeClaim,
    /// The token names a critical header extension (RFC 7515 §4.1.11);
    /// portero understands none.
    #[error("unsupported critical extension")]
    CriticalExtension,
    #[error("unknown or revoked API key")]
    UnknownApiKey,
    /// A key portero made and has since revoked or rotated out. The
    /// client is told no more than for a key that never existed.
    #[error("unknown or revoked API key")]
    RevokedApiKey,
    #[error("token not active")]
    Inactive,
    /// The token is bound to a key (`cnf`: DPoP, a client certificate)
    /// whose proof portero does not check: a stolen copy must not pass as
    /// a bearer token (RFC 9449 §7.2, RFC 8705 §3).
    #[error("sender-constrained token")]
    SenderConstrained,
    /// The route takes only tokens bound to a key (`token_binding =
    /// "required"`), or the token came as `DPoP` and is bound to none.
    #[error("token not bound to a key")]
    Unbound,
    /// No DPoP proof of the request with the key the token is bound to
    /// (none, two, malformed, of another request, method or key, stale).
    #[error("invalid DPoP proof")]
    BadProof,
    /// A DPoP proof taken before, here or on another instance.
    #[error("DPoP proof replayed")]
    ReplayedProof,
    /// The route asks for a server nonce in proofs (RFC 9449 §9), and
    /// the proof has none, or not a current one.
    #[error("DPoP nonce required")]
    NonceRequired,
    /// A certificate-bound token (RFC 8705 §3) over a connection whose
    /// client certificate is another, or none.
    #[error("client certificate does not match the token")]
    WrongCertificate,
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
            Self::IssuedInFuture => "issued_in_future",
            Self::MissingExpiry => "missing_exp",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::WrongTokenUse => "wrong_token_use",
            Self::Revoked => "revoked",
            Self::MissingRole => "missing_role",
            Self::MissingScope => "missing_scope",
            Self::ClaimMismatch => "claim_mismatch",
            Self::RuleRefused => "rule_refused",
            Self::UnsafeClaim => "unsafe_claim",
            Self::CriticalExtension => "critical_extension",
            Self::UnknownApiKey => "unknown_api_key",
            Self::RevokedApiKey => "revoked_api_key",
            Self::Inactive => "inactive",
            Self::SenderConstrained => "sender_constrained",
            Self::Unbound => "unbound_token",
            Self::BadProof => "bad_proof",
            Self::ReplayedProof => "replayed_proof",
            Self::NonceRequired => "nonce_required",
            Self::WrongCertificate => "wrong_certificate",
        }
    }

    /// The refusal's status, and its RFC 6750 §3.1 error code (none when
    /// no token came).
    pub fn status_and_code(self) -> (http::StatusCode, Option<&'static str>) {
        use http::StatusCode;
        match self {
            Self::MissingToken => (StatusCode::UNAUTHORIZED, None),
            Self::MissingRole | Self::MissingScope | Self::ClaimMismatch | Self::RuleRefused => {
                (StatusCode::FORBIDDEN, Some("insufficient_scope"))
            }
            Self::RepeatedToken => (StatusCode::BAD_REQUEST, Some("invalid_request")),
            Self::BadProof | Self::ReplayedProof => {
                (StatusCode::UNAUTHORIZED, Some("invalid_dpop_proof"))
            }
            Self::NonceRequired => (StatusCode::UNAUTHORIZED, Some("use_dpop_nonce")),
            _ => (StatusCode::UNAUTHORIZED, Some("invalid_token")),
        }
    }

    /// Whether it is answered `401` (no token, or one that fails validation).
    pub fn is_unauthorized(self) -> bool {
        self.status_and_code().0 == http::StatusCode::UNAUTHORIZED
    }

    /// The `WWW-Authenticate` challenge every route answers it with (RFC
    /// 6750 §3): `Bearer`, the realm, and the error and its description
    /// when a token came. A route that publishes resource metadata adds
    /// its own parameters after these (`resource_metadata`).
    pub fn challenge_text(self) -> String {
        let scheme = if self.of_proof() { "DPoP" } else { "Bearer" };
        self.challenge_in(scheme)
    }

    /// Its challenge in `scheme` (`Bearer`, or `DPoP`: RFC 9449 §7.1).
    pub fn challenge_in(self, scheme: &str) -> String {
        match self.status_and_code().1 {
            None => format!(r#"{scheme} realm="portero""#),
            Some(code) => {
                format!(r#"{scheme} realm="portero", error="{code}", error_description="{self}""#)
            }
        }
    }

    /// A refusal of the DPoP proof, not of the token: said in the DPoP
    /// challenge alone.
    pub fn of_proof(self) -> bool {
        matches!(
            self,
            Self::BadProof | Self::ReplayedProof | Self::NonceRequired
        )
    }

    /// The reason's place in `ALL`, for what is made once per reason.
    pub fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|&e| e == self)
            .expect("ALL lists every reason")
    }

    /// Every reason, for pre-registering metric series.
    pub const ALL: [AuthError; 29] = [
        Self::MissingToken,
        Self::RepeatedToken,
        Self::Malformed,
        Self::UnknownKey,
        Self::BadAlgorithm,
        Self::BadSignature,
        Self::Expired,
        Self::NotYetValid,
        Self::IssuedInFuture,
        Self::MissingExpiry,
        Self::WrongIssuer,
        Self::WrongAudience,
        Self::WrongTokenUse,
        Self::Revoked,
        Self::MissingRole,
        Self::MissingScope,
        Self::ClaimMismatch,
        Self::RuleRefused,
        Self::UnsafeClaim,
        Self::CriticalExtension,
        Self::UnknownApiKey,
        Self::RevokedApiKey,
        Self::Inactive,
        Self::SenderConstrained,
        Self::Unbound,
        Self::BadProof,
        Self::ReplayedProof,
        Self::NonceRequired,
        Self::WrongCertificate,
    ];
}
