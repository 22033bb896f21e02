//! Why a token endpoint answered as it did, beyond its status: the
//! `reason` label of `portero_token_requests_total` and
//! `portero_oauth2_requests_total`, a bounded set. A refused login (at a
//! dialect's endpoint, or an OAuth 2.0 client's or user's authentication)
//! is said once, where it is decided: one WARN line naming the issuer, the
//! login as typed (quoted, so no control character in it can forge a
//! line) and the reason, never the secret.

use http::StatusCode;

use super::{Denied, Logins};

/// Why a token endpoint answered as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A token, or the answer asked for (a revocation, an introspection).
    Ok,
    /// The body, a field or a parameter is unusable.
    MalformedRequest,
    /// No principal by the login typed (a user, or a dialect's client).
    UnknownPrincipal,
    /// No OAuth 2.0 client by the id presented.
    UnknownClient,
    WrongSecret,
    /// Too many failures: the login or the address is cooling down.
    Locked,
    /// Flagged `active = false`.
    Inactive,
    /// Flagged `blocked = true`.
    Blocked,
    /// client-flat: no `company`, or one not in `companies`.
    NoCompany,
    /// An OAuth 2.0 client authenticating another way than its `auth_method`.
    AuthMethod,
    /// A client assertion (RFC 7523) that does not verify, or is not for
    /// this issuer, or has lapsed.
    BadAssertion,
    /// A client assertion already used (its `jti`).
    Replayed,
    /// A one-time code, recovery code or passkey that is not the person's.
    WrongCode,
    /// A password alone, where the person must also give a second factor.
    PasswordAlone,
    /// A grant the issuer does not serve.
    UnsupportedGrant,
    /// A refresh token or subject token that is unknown, dead or another
    /// client's.
    InvalidGrant,
    /// A scope the client does not hold.
    InvalidScope,
    /// Over the endpoint's `rate_limit`.
    RateLimited,
    /// A body over `max_body_size`.
    TooLarge,
    /// A body slower than `body_timeout`.
    Timeout,
    /// The store, a user store or the legacy service did not answer, or
    /// the slow checks were queued to their limit.
    Unavailable,
}

impl Reason {
    /// Every reason, for the docs and for making series ahead.
    pub const ALL: [Reason; 21] = [
        Reason::Ok,
        Reason::MalformedRequest,
        Reason::UnknownPrincipal,
        Reason::UnknownClient,
        Reason::WrongSecret,
        Reason::Locked,
        Reason::Inactive,
        Reason::Blocked,
        Reason::NoCompany,
        Reason::AuthMethod,
        Reason::BadAssertion,
        Reason::Replayed,
        Reason::WrongCode,
        Reason::PasswordAlone,
        Reason::UnsupportedGrant,
        Reason::InvalidGrant,
        Reason::InvalidScope,
        Reason::RateLimited,
        Reason::TooLarge,
        Reason::Timeout,
        Reason::Unavailable,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::MalformedRequest => "malformed_request",
            Reason::UnknownPrincipal => "unknown_principal",
            Reason::UnknownClient => "unknown_client",
            Reason::WrongSecret => "wrong_secret",
            Reason::Locked => "locked",
            Reason::Inactive => "inactive",
            Reason::Blocked => "blocked",
            Reason::NoCompany => "no_company",
            Reason::AuthMethod => "auth_method",
            Reason::BadAssertion => "bad_assertion",
            Reason::Replayed => "replayed",
            Reason::WrongCode => "wrong_code",
            Reason::PasswordAlone => "password_alone",
            Reason::UnsupportedGrant => "unsupported_grant",
            Reason::InvalidGrant => "invalid_grant",
            Reason::InvalidScope => "invalid_scope",
            Reason::RateLimited => "rate_limited",
            Reason::TooLarge => "too_large",
            Reason::Timeout => "timeout",
            Reason::Unavailable => "unavailable",
        }
    }

    /// An answer's reason, where no refusal was noted: what its status
    /// means in every dialect (the only 401 left is an invalid refresh
    /// token; every other refusal is noted where it is decided), and at
    /// the authorization endpoint (a redirect back with a code, a page).
    pub fn of_status(status: StatusCode) -> Reason {
        match status.as_u16() {
            200..=399 => Reason::Ok,
            400 => Reason::MalformedRequest,
            401 | 403 | 404 => Reason::InvalidGrant,
            408 => Reason::Timeout,
            413 => Reason::TooLarge,
            429 => Reason::RateLimited,
            _ => Reason::Unavailable,
        }
    }

    /// The answer a dialect gives the refusal.
    fn denied(self) -> Denied {
        match self {
            Reason::Locked => Denied::Locked,
            Reason::Blocked => Denied::Blocked,
            Reason::Unavailable => Denied::Unavailable,
            _ => Denied::BadCredentials,
        }
    }
}

impl From<Denied> for Reason {
    /// What the lockout and the principal lookup refuse with.
    fn from(d: Denied) -> Reason {
        match d {
            Denied::Locked => Reason::Locked,
            Denied::Unavailable => Reason::Unavailable,
            Denied::Blocked => Reason::Blocked,
            Denied::BadCredentials => Reason::WrongSecret,
        }
    }
}

impl Logins<'_> {
    /// Refuses the login `login` (as typed) for `why`: logged once, noted
    /// for the request's metric, and answered as the dialects answer it.
    pub fn refuse(&self, login: &str, why: Reason) -> Denied {
        tracing::warn!(
            target: "portero::login",
            issuer = %self.identity.issuer,
            login = ?login,
            reason = %why.label(),
            "login refused"
        );
        self.note(why);
        why.denied()
    }

    /// Refuses the OAuth 2.0 client `id` (as presented) for `why`, as
    /// [`Logins::refuse`] refuses a login.
    pub fn refuse_client(&self, id: &str, why: Reason) {
        tracing::warn!(
            target: "portero::login",
            issuer = %self.identity.issuer,
            client = ?id,
            reason = %why.label(),
            "client authentication refused"
        );
        self.note(why);
    }

    /// Notes the request's reason; the first one noted stands.
    pub fn note(&self, why: Reason) {
        let _ = self.refused.set(why);
    }

    /// The reason noted for this request, if any.
    pub fn noted(&self) -> Option<Reason> {
        self.refused.get().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_label() {
        let mut labels: Vec<&str> = Reason::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Reason::ALL.len());
    }
}
