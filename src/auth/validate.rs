//! Token validation: signature with the key's own algorithm, time, issuer,
//! revocation, then the route's policy. Pure and I/O free: the caller passes
//! the current time, and the only shared state is read-only snapshots and
//! lock-free maps.

use std::borrow::Cow;
use std::hash::BuildHasher;
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::Mac;
use serde::Deserialize;

use super::keys::{Key, KeySet};
use super::revocation::Revocations;
use super::AuthError;
use crate::claims::{Claim, Claims};
use crate::config::Policy;

/// A token whose signature and issuer have been checked.
#[derive(Debug)]
pub struct Verified {
    /// The token itself, so a cache hit can be confirmed byte for byte
    /// (empty when the cache is off).
    token: Box<str>,
    /// Index of the issuer that signed it.
    pub issuer: usize,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
    pub claims: Claims,
    /// `sha256:` and the hex digest of a JWT without `jti` (of its header
    /// and payload, which its signature signs): the id it is revoked by.
    digest: Option<Box<str>>,
    /// The key it is bound to (`cnf`), whose holder alone may use it.
    pub binding: Option<Binding>,
    /// Its hash as a DPoP proof names it (`ath`), made the first time one does.
    ath: std::sync::OnceLock<Box<str>>,
}

/// What a token's `cnf` binds it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// A DPoP key, by its RFC 7638 thumbprint (`jkt`, RFC 9449 §6).
    Dpop(Box<str>),
    /// A client certificate, by the base64url SHA-256 of its DER
    /// (`x5t#S256`, RFC 8705 §3.1).
    Certificate(Box<str>),
}

impl Binding {
    /// The binding a `cnf` claim states; `Err` for one portero cannot
    /// check (another method, two at once, not an object): such a token
    /// is refused, never taken as a bearer token.
    pub fn of(cnf: Claim<'_>) -> Result<Binding, AuthError> {
        let Claim::Json(serde_json::Value::Object(cnf)) = cnf else {
            return Err(AuthError::SenderConstrained);
        };
        let text = |name| cnf.get(name).and_then(serde_json::Value::as_str);
        match (cnf.len(), text("jkt"), text("x5t#S256")) {
            (1, Some(jkt), None) if !jkt.is_empty() => Ok(Binding::Dpop(jkt.into())),
            (1, None, Some(x5t)) if !x5t.is_empty() => Ok(Binding::Certificate(x5t.into())),
            _ => Err(AuthError::SenderConstrained),
        }
    }
}

impl Verified {
    /// The credential it was verified for, when kept (empty otherwise).
    pub fn credential(&self) -> &str {
        &self.token
    }

    pub fn sub(&self) -> Option<&str> {
        self.claims.str("sub")
    }

    pub fn jti(&self) -> Option<&str> {
        self.claims.str("jti")
    }

    /// What a jti revocation of it names: its `jti`, else its digest.
    pub fn revocation_id(&self) -> Option<&str> {
        self.jti().or(self.digest.as_deref())
    }

    /// A browser session's identity as issuer `issuer`'s (its provider's):
    /// `claims` read from its ID token, without a `jti` of their own, so
    /// the session is revoked by `id` (`session:<hash>`) and by its
    /// subject's revocations after `iat`, its sign-in; it ends at `exp`.
    pub fn for_session(
        issuer: usize,
        claims: Claims,
        id: &str,
        iat: i64,
        exp: i64,
    ) -> Result<Verified, AuthError> {
        if claims.get("jti").is_some() {
            return Err(AuthError::Malformed);
        }
        let mut verified = Verified::of_claims(issuer, claims, Some(id.into()), Box::default())?;
        verified.iat = Some(iat);
        verified.exp = Some(exp);
        verified.nbf = None;
        Ok(verified)
    }

    /// Claims portero vouches for itself (an API key's record) as those
    /// of issuer `issuer`, for `credential` (kept, to confirm a cache hit
    /// and to look the key up again; empty to keep nothing). A binding to
    /// a key (`cnf`) is refused as in a token: nothing here checks it.
    pub fn vouched(issuer: usize, claims: Claims, credential: &str) -> Result<Verified, AuthError> {
        if claims.get("cnf").is_some() {
            return Err(AuthError::SenderConstrained);
        }
        Verified::of_claims(issuer, claims, None, credential.into())
    }

    /// Claims a provider's introspection answer vouches for (RFC 7662
    /// §2.2), with the binding its `cnf` states (RFC 9449 §6.2, RFC 8705
    /// §3.2), held to the proof as a token's is.
    pub fn introspected(issuer: usize, claims: Claims) -> Result<Verified, AuthError> {
        let binding = claims.get("cnf").map(Binding::of).transpose()?;
        let mut verified = Verified::of_claims(issuer, claims, None, Box::default())?;
        verified.binding = binding;
        Ok(verified)
    }

    /// Its times read, and its `sub` and `jti` checked: strings (RFC 7519),
    /// or absent. A number or a list would reach the
    /// upstream as a subject no revocation by subject names.
    fn of_claims(
        issuer: usize,
        claims: Claims,
        digest: Option<Box<str>>,
        token: Box<str>,
    ) -> Result<Verified, AuthError> {
        // `jti` likewise: one that is not a string would be revoked by
        // no revocation an operator could write.
        let not_a_string = |name| claims.get(name).is_some_and(|c| c.as_str().is_none());
        if not_a_string("sub") || not_a_string("jti") {
            return Err(AuthError::Malformed);
        }
        Ok(Verified {
            token,
            issuer,
            exp: numeric_date(&claims, "exp")?,
            nbf: numeric_date(&claims, "nbf")?,
            iat: numeric_date(&claims, "iat")?,
            binding: None,
            ath: Default::default(),
            claims,
            digest,
        })
    }

    /// The hash of the credential, as a DPoP proof's `ath` names it.
    pub fn ath(&self, token: &[u8]) -> &str {
        self.ath.get_or_init(|| crate::dpop::ath(token))
    }

    /// The issuer's `iss`, which `verify` checked the claim against.
    pub fn iss(&self) -> &str {
        self.claims.str("iss").unwrap_or_default()
    }
}

pub struct Validator {
    keys: ArcSwap<KeySet>,
    revocations: Arc<Revocations>,
    /// Verified tokens by keyed hash of the token; repeat tokens skip the
    /// signature. Bounded; expiry is checked on every use.
    cache: Option<quick_cache::sync::Cache<u64, Arc<Verified>>>,
    /// Randomly seeded per process. A fast hash rather than SipHash: a hit is
    /// confirmed byte for byte, so a collision can only cost a cache miss.
    hasher: foldhash::fast::RandomState,
    leeway: i64,
}

/// The JOSE header fields portero reads, borrowed from the decoded bytes.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow)]
    kid: Option<Cow<'a, str>>,
    /// Present at all: refused, whatever it lists (`null` too).
    #[serde(default)]
    crit: crate::jwk::Present,
    #[serde(borrow)]
    typ: Option<Cow<'a, str>>,
}

/// What a token is verified as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Access,
    /// An OpenID Connect ID token (an `id_token_hint`).
    Identity,
    /// A provider's statement to portero as its client (an ID token, a
    /// logout token), whose claims the caller checks.
    Signed,
}

/// RFC 9068 §4: an access token of portero's OAuth 2.0 endpoints says
/// so in its `typ`; an ID token does not.
fn is_access_typ(typ: Option<&str>) -> bool {
    typ.is_some_and(|t| {
        t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
    })
}

#[derive(Deserialize)]
struct IssOnly<'a> {
    #[serde(borrow)]
    iss: Option<Cow<'a, str>>,
}

/// A usual token's decoded header fits on the stack.
const HEADER_ON_STACK: usize = 256;

impl Validator {
    pub fn new(
        keys: KeySet,
        revocations: Arc<Revocations>,
        cache_size: usize,
        leeway_secs: u64,
    ) -> Self {
        Validator {
            keys: ArcSwap::from_pointee(keys),
            revocations,
            cache: (cache_size > 0).then(|| quick_cache::sync::Cache::new(cache_size)),
            hasher: Default::default(),
            leeway: leeway_secs as i64,
        }
    }

    /// Seconds of clock difference allowed on `exp`, `nbf` and `iat`.
    pub fn leeway(&self) -> i64 {
        self.leeway
    }

    pub fn keys(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.keys.load()
    }

    /// Swaps in a changed key set. Tokens verified with a key that is gone
    /// must not be served from the cache, so it starts empty.
    pub fn replace_keys(&self, keys: KeySet) {
        self.keys.store(Arc::new(keys));
        if let Some(cache) = &self.cache {
            cache.clear();
        }
    }

    /// Validates `token` for a route with `policy` at Unix time `now`.
    pub fn validate(
        &self,
        token: &str,
        policy: &Policy,
        now: i64,
    ) -> Result<Arc<Verified>, AuthError> {
        self.admit(self.verified(token)?, policy, now)
    }

    /// A verified credential (a token, or an API key's record) against
    /// the route's policy at Unix time `now`: its times, issuer, audience,
    /// revocation, then the route's requirements.
    #[inline]
    pub fn admit(
        &self,
        verified: Arc<Verified>,
        policy: &Policy,
        now: i64,
    ) -> Result<Arc<Verified>, AuthError> {
        self.check_time(&verified, now)?;
        self.admit_in_time(verified, policy)
    }

    /// As [`Validator::admit`], for a credential whose times the caller
    /// checked (an introspected token may have no `exp`: its provider
    /// vouches for it while the answer is kept).
    #[inline]
    pub fn admit_in_time(
        &self,
        verified: Arc<Verified>,
        policy: &Policy,
    ) -> Result<Arc<Verified>, AuthError> {
        policy.check_token(&verified)?;
        let revocations = &self.revocations;
        if !revocations.none() && self.is_revoked(&verified) {
            return Err(AuthError::Revoked);
        }
        policy.check_requirements(&verified)?;
        Ok(verified)
    }

    /// Whether any credential is revoked at all: when none is, nothing
    /// need be looked up.
    #[inline]
    pub fn any_revoked(&self) -> bool {
        !self.revocations.none()
    }

    /// Whether `t` is revoked: by its `jti`, or with every token its
    /// subject got from its issuer before a time, whichever endpoint
    /// (legacy or OAuth 2.0) issued it.
    pub fn is_revoked(&self, t: &Verified) -> bool {
        let keys = self.keys.load();
        let iss = keys.issuers.get(t.issuer).map_or(t.iss(), |i| &i.iss);
        self.revocations
            .is_revoked(iss, t.sub(), t.revocation_id(), t.iat)
    }

    /// The Unix time from which `validate` refuses `t` as expired (`exp`
    /// plus the leeway); `None` for a token without `exp`.
    pub fn refused_from(&self, t: &Verified) -> Option<i64> {
        t.exp.map(|exp| exp.saturating_add(self.leeway))
    }

    /// The verified form of `token`, from the cache or by checking its signature.
    fn verified(&self, token: &str) -> Result<Arc<Verified>, AuthError> {
        let Some(cache) = &self.cache else {
            return self.verify(token).map(Arc::new);
        };
        if let Some(hit) = self.cached(token.as_bytes()) {
            return Ok(hit);
        }
        let mut verified = self.verify(token)?;
        verified.token = token.into();
        let verified = Arc::new(verified);
        cache.insert(self.cache_key(token.as_bytes()), verified.clone());
        Ok(verified)
    }

    /// A token's place in the cache: its length and last 32 bytes, which
    /// in a JWT are its signature's, one token's own, so that a longer
    /// token costs no more to find. Tokens alike there share a place: that
    /// costs only a miss, as a hit is confirmed byte for byte.
    #[inline]
    fn cache_key(&self, token: &[u8]) -> u64 {
        let tail = &token[token.len().saturating_sub(32)..];
        self.hasher.hash_one((token.len(), tail))
    }

    /// The verified form of a token with these bytes, when it is cached
    /// (its time, issuer and revocation not yet checked: [`Validator::admit`]).
    #[inline]
    pub fn cached(&self, token: &[u8]) -> Option<Arc<Verified>> {
        let hit = self.cache.as_ref()?.get(&self.cache_key(token))?;
        (hit.token.as_bytes() == token).then_some(hit)
    }

    pub fn check_time(&self, t: &Verified, now: i64) -> Result<(), AuthError> {
        match t.exp {
            Some(exp) if now >= exp.saturating_add(self.leeway) => return Err(AuthError::Expired),
            Some(_) => {}
            None if !self.keys.load().issuers[t.issuer].allow_no_exp => {
                return Err(AuthError::MissingExpiry)
            }
            None => {}
        }
        self.check_not_before(t, now)
    }

    /// `nbf` and `iat` alone (with the leeway): for a credential whose
    /// lifetime is bounded elsewhere (an introspection answer without `exp`).
    pub fn check_not_before(&self, t: &Verified, now: i64) -> Result<(), AuthError> {
        let latest = now.saturating_add(self.leeway);
        match (t.nbf, t.iat) {
            (Some(nbf), _) if latest < nbf => Err(AuthError::NotYetValid),
            (_, Some(iat)) if latest < iat => Err(AuthError::IssuedInFuture),
            _ => Ok(()),
        }
    }

    /// Checks the signature with the key the token names and that key's own
    /// algorithm, then parses the claims and checks `iss` against the key's
    /// issuer. A token of an issuer's OAuth 2.0 endpoints must be an access
    /// token (`typ: at+jwt`): its ID tokens open nothing.
    pub fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        self.verify_as(token, Use::Access)
    }

    /// As [`Validator::verify`], for an ID token of an issuer's OAuth 2.0
    /// endpoints (never an access token, nor a legacy token).
    pub fn verify_id_token(&self, token: &str) -> Result<Verified, AuthError> {
        self.verify_as(token, Use::Identity)
    }

    /// As [`Validator::verify`], for what a provider portero signs people
    /// in at says to portero itself: its signature and `iss` only.
    pub fn verify_for_client(&self, token: &str) -> Result<Verified, AuthError> {
        self.verify_as(token, Use::Signed)
    }

    fn verify_as(&self, token: &str, as_use: Use) -> Result<Verified, AuthError> {
        let (message, signature) = token.rsplit_once('.').ok_or(AuthError::Malformed)?;
        let (header_b64, payload_b64) = message.split_once('.').ok_or(AuthError::Malformed)?;
        let mut header_buf = [0u8; HEADER_ON_STACK];
        let header_json = decode_b64(header_b64, &mut header_buf)?;
        let header: Header =
            serde_json::from_slice(&header_json).map_err(|_| AuthError::Malformed)?;
        if header.crit.0 {
            return Err(AuthError::CriticalExtension);
        }
        // Onto the heap at once: the claims keep it.
        let payload = base64_simd::URL_SAFE_NO_PAD
            .decode_to_vec(payload_b64)
            .map_err(|_| AuthError::Malformed)?;
        let keys = self.keys.load();
        let key: &Arc<Key> = match header.kid.as_deref().map(|kid| (kid, keys.by_kid(kid))) {
            Some((_, Some(key))) => {
                check_signature(key, &header.alg, message, signature)?;
                key
            }
            // A kid two issuers use: the keys of the one the token claims.
            Some((kid, None)) => {
                let iss = claimed_iss(&payload)?;
                let candidates = keys
                    .shared_kid(kid)
                    .iter()
                    .filter(|k| keys.issuers[k.issuer].claims(&iss));
                first_to_verify(candidates, &header.alg, message, signature)?
            }
            // No kid: try the keys of the issuer the token claims.
            None => {
                let iss = claimed_iss(&payload)?;
                let candidates = keys.for_iss(&iss).iter();
                first_to_verify(candidates, &header.alg, message, signature)?
            }
        };
        let claims = Claims::parse(payload).map_err(|_| AuthError::Malformed)?;
        if !claims
            .str("iss")
            .is_some_and(|iss| keys.issuers[key.issuer].claims(iss))
        {
            return Err(AuthError::WrongIssuer);
        }
        let standard = keys.issuers[key.issuer].oauth2_iss.as_deref() == claims.str("iss");
        let access = is_access_typ(header.typ.as_deref());
        let fits = match as_use {
            Use::Access => (!standard || access) && !for_login(&keys.issuers[key.issuer], &claims),
            Use::Identity => standard && !access,
            Use::Signed => true,
        };
        if !fits {
            return Err(AuthError::WrongTokenUse);
        }
        // A token bound to a key (`cnf`: DPoP, a client certificate) opens
        // a route only with a proof of that key (`proxy::admission`).
        let binding = match claims.get("cnf") {
            Some(cnf) if as_use == Use::Access => Some(Binding::of(cnf)?),
            _ => None,
        };
        // Over what the signature signs: an ECDSA signature has a twin
        // (s and n - s) that verifies too, so the whole token's digest
        // would let a copy with the other one escape its revocation.
        let digest = match claims.get("jti") {
            Some(_) => None,
            None => Some(token_digest(message).into()),
        };
        let mut verified = Verified::of_claims(key.issuer, claims, digest, Box::default())?;
        verified.binding = binding;
        Ok(verified)
    }
}

/// Whether `claims` are addressed to portero as the issuer's login
/// client (`aud` names it): an ID token, which opens no route.
fn for_login(issuer: &super::keys::IssuerInfo, claims: &Claims) -> bool {
    let Some(client) = issuer.login_client.as_deref() else {
        return false;
    };
    match claims.get("aud") {
        Some(Claim::Str(aud)) => aud == client,
        Some(Claim::Json(serde_json::Value::Array(list))) => {
            list.iter().any(|v| v.as_str() == Some(client))
        }
        _ => false,
    }
}

/// `sha256:` and the hex SHA-256 of `token`: the jti a token without one
/// is revoked by (an opaque token's whole text; a JWT's signed part).
pub fn token_digest(token: &str) -> String {
    use sha2::Digest;
    use std::fmt::Write;
    let digest = sha2::Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The `iss` a token claims, before anything about it is verified.
fn claimed_iss(payload: &[u8]) -> Result<Cow<'_, str>, AuthError> {
    serde_json::from_slice::<IssOnly>(payload)
        .map_err(|_| AuthError::Malformed)?
        .iss
        .ok_or(AuthError::UnknownKey)
}

/// The `iss` a token claims, for deciding whose keys to refetch when its
/// `kid` is unknown; `None` when it is not a readable token.
pub fn unverified_iss(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let payload = base64_simd::URL_SAFE_NO_PAD.decode_to_vec(payload).ok()?;
    claimed_iss(&payload).ok().map(Cow::into_owned)
}

/// The first of `candidates` the signature verifies with.
fn first_to_verify<'k>(
    candidates: impl Iterator<Item = &'k Arc<Key>>,
    alg: &str,
    message: &str,
    signature: &str,
) -> Result<&'k Arc<Key>, AuthError> {
    let mut result = Err(AuthError::UnknownKey);
    for key in candidates {
        result = check_signature(key, alg, message, signature).map(|_| key);
        if result.is_ok() {
            break;
        }
    }
    result
}

/// The token's `alg` header must name the key's algorithm; it never chooses it.
fn check_signature(key: &Key, alg: &str, message: &str, signature: &str) -> Result<(), AuthError> {
    if alg != key.alg_name {
        return Err(AuthError::BadAlgorithm);
    }
    if let Some(keyed) = &key.hmac {
        // HS256 in place: no allocation, constant-time comparison.
        let mut expected = [0u8; 32];
        let len = URL_SAFE_NO_PAD
            .decode_slice(signature, &mut expected)
            .map_err(|_| AuthError::BadSignature)?;
        let mut mac = keyed.clone();
        mac.update(message.as_bytes());
        return mac
            .verify_slice(&expected[..len])
            .map_err(|_| AuthError::BadSignature);
    }
    match jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key.decoding, key.alg) {
        Ok(true) => Ok(()),
        Ok(false) => Err(AuthError::BadSignature),
        Err(_) => Err(AuthError::Malformed),
    }
}

/// Decodes base64url into `buf` when it surely fits, else onto the heap.
/// The header and payload take the SIMD decoder (the signature covers their
/// text); the signature itself is decoded by `base64`, which refuses
/// non-canonical trailing bits, so one token has one spelling.
fn decode_b64<'b>(b64: &str, buf: &'b mut [u8]) -> Result<Cow<'b, [u8]>, AuthError> {
    let simd = base64_simd::URL_SAFE_NO_PAD;
    if simd.estimated_decoded_length(b64.len()) <= buf.len() {
        let len = simd
            .decode(b64.as_bytes(), base64_simd::Out::from_slice(buf))
            .map_err(|_| AuthError::Malformed)?
            .len();
        return Ok(Cow::Borrowed(&buf[..len]));
    }
    simd.decode_to_vec(b64)
        .map(Cow::Owned)
        .map_err(|_| AuthError::Malformed)
}

/// RFC 7519 NumericDate: seconds, possibly fractional. Present but not a number is malformed.
fn numeric_date(claims: &Claims, name: &str) -> Result<Option<i64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Claim::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or(AuthError::Malformed),
        Some(_) => Err(AuthError::Malformed),
    }
}

#[cfg(test)]
mod tests;
