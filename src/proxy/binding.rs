//! A verified token against what it is bound to (`cnf`) and how it came:
//! a DPoP-bound token opens a route only as `Authorization: DPoP`, with a
//! proof of the request signed by its key (RFC 9449 §7), taken once on
//! every instance; sent as `Bearer`, it is a stolen copy's downgrade
//! (§7.2). A route may take bound tokens only (`token_binding`).

use std::sync::Arc;

use http::request::Parts;

use super::{Gateway, RequestContext};
use crate::auth::policy::Presented;
use crate::auth::validate::{Binding, Verified};
use crate::auth::AuthError;
use crate::config::{OAuth2, Sender};
use crate::dpop::{self, Expected, Refused, Target};
use crate::oauth2;

const DPOP: http::HeaderName = http::HeaderName::from_static("dpop");
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_FORWARDED_HOST: &str = "x-forwarded-host";

/// `verified` as the route takes it without a DPoP proof, given how it
/// was presented: taken (`Ok(None)`), refused, or to be decided by a
/// proof signed by the key it names (`Ok(Some(jkt))`: a DPoP-bound token
/// sent as `DPoP`, [`Gateway::check_proof`]). A token bound to a
/// certificate is compared with the connection's here.
#[inline]
pub(super) fn without_proof<'v>(
    sender: &Sender,
    presented: &Presented<'_>,
    verified: &'v Verified,
    ctx: &RequestContext,
    headers: &http::HeaderMap,
) -> Result<Option<&'v str>, AuthError> {
    match (&verified.binding, presented.dpop) {
        (None, false) if sender.required => Err(AuthError::Unbound),
        (None, false) => Ok(None),
        (None, true) => Err(AuthError::Unbound),
        // RFC 8705 §3: the certificate the token is bound to, on this connection.
        (Some(Binding::Certificate(_)), false) => match ctx.has_certificate_of(verified, headers) {
            true => Ok(None),
            false => Err(AuthError::WrongCertificate),
        },
        (Some(Binding::Dpop(_)), false) | (Some(Binding::Certificate(_)), true) => {
            Err(AuthError::SenderConstrained)
        }
        (Some(Binding::Dpop(jkt)), true) => Ok(Some(jkt)),
    }
}

impl Gateway {
    /// A DPoP-bound token (its key's thumbprint `jkt`) as the route takes
    /// it: with a proof of this request signed by that key, taken once
    /// here. Where other instances share the store, the proof is taken
    /// once there too: the claim to make of it ([`Gateway::claim_proof`]).
    /// (Not async: a proof on a store of its own, as a single instance
    /// has, carries no future.) A refusal is the reason.
    pub(super) fn check_proof(
        &self,
        sender: &Sender,
        parts: &Parts,
        presented: &Presented<'_>,
        verified: &Verified,
        jkt: &str,
        ctx: &mut RequestContext,
    ) -> Result<Option<ProofClaim>, Bound> {
        let proof = one_proof(parts).ok_or(Bound::Refused(AuthError::BadProof))?;
        let now = self.shared.clock.unix();
        let target = target(parts, ctx).ok_or(Bound::Refused(AuthError::BadProof))?;
        let expected = Expected {
            method: parts.method.as_str(),
            target,
            ath: Some(verified.ath(presented.bytes())),
            algorithms: sender.algorithms,
            nonce: sender.nonce,
            now,
        };
        let proofs = &self.shared.proofs;
        let proven = match proofs.check(proof, &expected) {
            Ok(proven) => proven,
            Err(refused) => return Err(self.refused_proof(refused, now, ctx)),
        };
        if *proven.thumbprint != *jkt {
            tracing::debug!("DPoP proof signed by another key than the token's");
            return Err(Bound::Refused(AuthError::BadProof));
        }
        ctx.dpop_nonce = proven.next_nonce;
        Ok(proven.replay_key.map(|key| ProofClaim {
            key,
            ttl: proven.remember_for,
        }))
    }

    /// The proof claimed in the shared store: refused where another
    /// instance took it first.
    pub(super) async fn claim_proof(&self, claim: ProofClaim) -> Result<(), Bound> {
        match self.shared.store.claim(&claim.key, claim.ttl).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Bound::Refused(AuthError::ReplayedProof)),
            Err(_) => Err(Bound::Unavailable),
        }
    }

    /// A proof refused: its reason, and the nonce to use where one is asked for.
    fn refused_proof(&self, refused: Refused, now: i64, ctx: &mut RequestContext) -> Bound {
        Bound::Refused(match refused {
            Refused::Invalid(why) => {
                tracing::debug!(why, "DPoP proof refused");
                AuthError::BadProof
            }
            Refused::Nonce => {
                ctx.dpop_nonce = Some(self.shared.proofs.nonce(now));
                AuthError::NonceRequired
            }
            Refused::Replayed => AuthError::ReplayedProof,
            Refused::Full => {
                tracing::warn!("DPoP replay cache full: proofs refused until it empties");
                AuthError::ReplayedProof
            }
        })
    }
}

/// A proof to take once in the store other instances share.
pub(super) struct ProofClaim {
    key: String,
    ttl: std::time::Duration,
}

/// Why a bound token did not pass.
pub(super) enum Bound {
    Refused(AuthError),
    /// The shared store could not say whether the proof was taken before.
    Unavailable,
}

/// The request's one `DPoP` field (RFC 9449 §4.3: not two).
fn one_proof(parts: &Parts) -> Option<&[u8]> {
    let mut all = parts.headers.get_all(DPOP).iter();
    let (Some(proof), None) = (all.next(), all.next()) else {
        return None;
    };
    Some(proof.as_bytes())
}

/// The URI the client named: over TLS `https`, or as a trusted proxy in
/// front says (its `X-Forwarded-Proto` and `-Host`); the host the request
/// names; the path as routed. `None` when no host is named.
fn target<'p>(parts: &'p Parts, ctx: &RequestContext) -> Option<Target<'p>> {
    let said = |name: &str| {
        let mut all = parts.headers.get_all(name).iter();
        match (all.next(), all.next()) {
            (Some(v), None) => v.to_str().ok().map(str::trim),
            _ => None,
        }
    };
    let mut https = ctx.tls;
    let mut authority = parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| parts.headers.get(http::header::HOST)?.to_str().ok())?;
    if ctx.from_trusted_proxy {
        // One scheme, or none said: a list or a field twice (a proxy that
        // appends to a client's copy) names no one scheme, and the proof
        // is refused rather than read against the connection's.
        if parts.headers.contains_key(X_FORWARDED_PROTO) {
            https = match said(X_FORWARDED_PROTO) {
                Some(p) if p.eq_ignore_ascii_case("https") => true,
                Some(p) if p.eq_ignore_ascii_case("http") => false,
                _ => return None,
            };
        }
        if let Some(host) = said(X_FORWARDED_HOST).filter(|h| !h.is_empty()) {
            authority = host;
        }
    }
    Some(Target {
        https,
        authority,
        path: parts.uri.path(),
    })
}

/// What a token request's DPoP proof proved: the key, and a newer nonce
/// for the client.
#[derive(Default)]
pub(super) struct Proved {
    pub(super) key: Option<Arc<str>>,
    pub(super) next_nonce: Option<Arc<str>>,
}

impl Gateway {
    /// The DPoP proof a request to an issuer's endpoint came with: at its
    /// token and PAR endpoints (RFC 9449 §5), and at userinfo, a resource,
    /// with a token sent as `DPoP` (§7, its `ath` that token's): none, the
    /// key it proves, or the endpoint's refusal. Its `htu` is the endpoint
    /// as the issuer's metadata names it.
    pub(super) async fn endpoint_proof(
        &self,
        settings: &OAuth2,
        route_path: &str,
        parts: &Parts,
    ) -> Result<Proved, oauth2::Answer> {
        // The endpoint the route serves (`token;x` is routed to `token`).
        let endpoint = route_path.rsplit('/').next().unwrap_or_default();
        let post = parts.method == http::Method::POST;
        match endpoint {
            "token" | "par" if post => self.proof_at(settings, endpoint, parts, None).await,
            "userinfo" if post || parts.method == http::Method::GET => {
                let Some(token) = dpop_token(parts) else {
                    return Ok(Proved::default());
                };
                let ath = dpop::ath(token.as_bytes());
                self.proof_at(settings, endpoint, parts, Some(&ath)).await
            }
            _ => Ok(Proved::default()),
        }
    }

    /// The proof at `endpoint`, with `ath` where a token comes with it
    /// (a resource's request, refused as a resource refuses).
    async fn proof_at(
        &self,
        settings: &OAuth2,
        endpoint: &str,
        parts: &Parts,
        ath: Option<&str>,
    ) -> Result<Proved, oauth2::Answer> {
        let mut all = parts.headers.get_all(DPOP).iter();
        let proof = match (all.next(), all.next()) {
            (None, _) => return Ok(Proved::default()),
            (Some(proof), None) => Some(proof.as_bytes()),
            (Some(_), Some(_)) => None,
        };
        let resource = ath.is_some();
        let refused = || oauth2::proof_refused(Some(None), resource);
        let proof = proof.ok_or_else(refused)?;
        let now = self.shared.clock.unix();
        // The endpoint as the metadata names it, or its mutual-TLS alias.
        let at = |base: &str| {
            let (scheme, rest) = base.split_once("://").unwrap_or_default();
            let (authority, issuer_path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            (
                scheme == "https",
                authority.to_string(),
                format!("{issuer_path}/{endpoint}"),
            )
        };
        let mut named = vec![at(&settings.issuer_id)];
        named.extend(settings.mtls_issuer_id.as_deref().map(at));
        let expected = |(https, authority, path): &(bool, String, String)| {
            let target = Target {
                https: *https,
                authority: &authority[..],
                path: &path[..],
            };
            let expected = Expected {
                method: parts.method.as_str(),
                target,
                ath,
                algorithms: dpop::Algorithms::ALL,
                nonce: settings.dpop_nonce,
                now,
            };
            self.shared.proofs.check(proof, &expected)
        };
        let proofs = &self.shared.proofs;
        let mut checked = expected(&named[0]);
        if let (Err(Refused::Invalid(_)), Some(alias)) = (&checked, named.get(1)) {
            checked = expected(alias);
        }
        let proven = match checked {
            Ok(proven) => proven,
            Err(Refused::Nonce) => {
                return Err(oauth2::proof_refused(
                    Some(Some(proofs.nonce(now))),
                    resource,
                ))
            }
            Err(why) => {
                tracing::debug!(?why, "DPoP proof at an issuer's endpoint refused");
                return Err(refused());
            }
        };
        if let Some(replay_key) = &proven.replay_key {
            match self
                .shared
                .store
                .claim(replay_key, proven.remember_for)
                .await
            {
                Ok(true) => {}
                Ok(false) => return Err(refused()),
                Err(_) => return Err(oauth2::proof_refused(None, resource)),
            }
        }
        Ok(Proved {
            key: Some(proven.thumbprint),
            next_nonce: proven.next_nonce,
        })
    }
}

/// The token of a request's one `Authorization: DPoP <token>` field, as
/// userinfo reads it ([`oauth2::oidc::authorization`]): the proof's `ath`
/// is that token's.
fn dpop_token(parts: &Parts) -> Option<&str> {
    let mut all = parts.headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(value), None) = (all.next(), all.next()) else {
        return None;
    };
    match oauth2::oidc::authorization(value.as_bytes())? {
        (token, true) => Some(token),
        (_, false) => None,
    }
}

/// The `DPoP-Nonce` field's value (RFC 9449 §8.1).
pub(super) fn nonce_header(nonce: &str) -> Option<http::HeaderValue> {
    http::HeaderValue::from_str(nonce).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target_of(proto: &[&str], trusted: bool) -> Option<(bool, String)> {
        let mut request = http::Request::get("/a").header("host", "api.example");
        for p in proto {
            request = request.header(X_FORWARDED_PROTO, *p);
        }
        let (parts, ()) = request.body(()).unwrap().into_parts();
        let mut ctx = RequestContext::new(std::time::Instant::now(), false, None, false);
        ctx.from_trusted_proxy = trusted;
        target(&parts, &ctx).map(|t| (t.https, t.uri()))
    }

    #[test]
    fn a_trusted_proxy_names_one_scheme_or_the_proof_is_refused() {
        assert_eq!(
            target_of(&[], true),
            Some((false, "http://api.example/a".into()))
        );
        assert_eq!(target_of(&["HTTPS"], true).map(|t| t.0), Some(true));
        assert_eq!(target_of(&["http"], true).map(|t| t.0), Some(false));
        // A list, a field twice, another scheme: no one scheme.
        for proto in [
            &["https, http"][..],
            &["http, https"],
            &["https", "https"],
            &["wss"],
            &[""],
        ] {
            assert_eq!(target_of(proto, true), None, "{proto:?}");
        }
        // From anyone else the field is not read.
        assert_eq!(target_of(&["https, http"], false).map(|t| t.0), Some(false));
    }
}
