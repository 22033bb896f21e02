//! DPoP (RFC 9449): a proof, in the request's `DPoP` header, that its
//! sender holds the private key a token is bound to (`cnf.jkt`). Checked
//! the same way at a route (with the token's hash, `ath`) and at
//! portero's token endpoint (without): `typ` `dpop+jwt`, an asymmetric
//! `alg` the place allows, a public `jwk` whose own algorithm is the
//! `alg`, the signature, `htm` and `htu` against the request, `iat`
//! within [`PROOF_AGE`], a server nonce where one is asked for, and
//! each proof taken once (here in memory; the caller claims it in a
//! shared store too).

pub mod htu;
mod key;
pub mod nonce;
mod payload;
mod replay;

use std::borrow::Cow;
use std::hash::BuildHasher;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

pub use htu::Target;
pub use key::thumbprint;
use key::ProofKey;
use nonce::{Freshness, Nonces};
use payload::Payload;
use replay::{Replays, Seen};

/// Seconds a proof is taken after its `iat`.
pub const PROOF_AGE: i64 = 60;

/// Seconds an `iat` may be ahead of this instance's clock.
pub const PROOF_SKEW: i64 = 15;

/// How long this instance remembers a proof: past it, its `iat` is too
/// old (taken up to `PROOF_AGE` after an `iat` up to `PROOF_SKEW` ahead,
/// in whole seconds).
pub const REPLAY_LIFETIME: i64 = PROOF_AGE + PROOF_SKEW + 2;

/// Seconds after an instance starts in which a proof dated then may have
/// been taken by an earlier instance on its store: one dated up to
/// `PROOF_SKEW` ahead of that instance's clock (and `started` is cut to
/// whole seconds).
pub const RESTART_WINDOW: i64 = PROOF_SKEW + 1;

/// A proof longer than this is refused unread (an RSA key of 4096 bits
/// and its signature fit in a quarter of it).
pub const MAX_PROOF: usize = 8192;

/// A `jti` longer than this is refused: the replay cache and the store
/// keep it.
const MAX_JTI: usize = 256;

/// Every signature algorithm a proof may use: asymmetric ones only.
pub const ALGORITHMS: [&str; 9] = [
    "ES256", "ES384", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
];

/// A set of [`ALGORITHMS`], by their places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Algorithms(u16);

impl Algorithms {
    pub const ALL: Algorithms = Algorithms((1 << ALGORITHMS.len()) - 1);

    /// The set of `names`, or the first name that is not an asymmetric
    /// algorithm a proof may use.
    pub fn of<'n>(names: impl IntoIterator<Item = &'n str>) -> Result<Algorithms, &'n str> {
        let mut set = 0;
        for name in names {
            let at = ALGORITHMS.iter().position(|a| *a == name).ok_or(name)?;
            set |= 1 << at;
        }
        Ok(Algorithms(set))
    }

    /// Whether every algorithm of `other` is one of these.
    pub fn includes(self, other: Algorithms) -> bool {
        other.0 & !self.0 == 0
    }

    pub fn allows(self, alg: &str) -> bool {
        ALGORITHMS
            .iter()
            .position(|a| *a == alg)
            .is_some_and(|at| self.0 & (1 << at) != 0)
    }

    /// The names, space separated (`algs` of a challenge, RFC 9449 §7.1).
    pub fn names(self) -> String {
        self.list().join(" ")
    }

    pub fn list(self) -> Vec<&'static str> {
        ALGORITHMS
            .iter()
            .enumerate()
            .filter(|(at, _)| self.0 & (1 << at) != 0)
            .map(|(_, a)| *a)
            .collect()
    }
}

/// What a proof must say of the request it came with.
pub struct Expected<'a> {
    /// The method the request is acted on as.
    pub method: &'a str,
    pub target: Target<'a>,
    /// At a route: the hash of the access token it comes with, as `ath`
    /// names it ([`ath`]).
    pub ath: Option<&'a str>,
    pub algorithms: Algorithms,
    /// A server nonce is required.
    pub nonce: bool,
    pub now: i64,
}

/// Why a proof is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `invalid_dpop_proof`, and why (logged, never sent).
    Invalid(&'static str),
    /// `use_dpop_nonce`: no nonce, or not a current one.
    Nonce,
    /// Its `jti` was taken before.
    Replayed,
    /// The replay cache is full: no proof can be taken once.
    Full,
}

/// A proof taken.
#[derive(Debug)]
pub struct Proven {
    /// The thumbprint of its key (RFC 7638), as `cnf.jkt` names it.
    pub thumbprint: Arc<str>,
    /// What a shared store keeps it as, to be claimed once across
    /// instances; `None` where no other instance shares the store.
    pub replay_key: Option<String>,
    /// How long the store keeps it: until its `iat` is too old on any
    /// instance, whose clock may be `PROOF_SKEW` behind this one's.
    pub remember_for: std::time::Duration,
    /// A newer nonce, to hand to a client whose proof used the last one.
    pub next_nonce: Option<Arc<str>>,
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow)]
    jwk: Option<&'a RawValue>,
    #[serde(default)]
    crit: crate::jwk::Present,
}

/// The gateway's proof checking: its nonces, its replay cache and the
/// keys it has read.
pub struct Proofs {
    nonces: Nonces,
    replays: Replays,
    keys: quick_cache::sync::Cache<u64, Arc<ProofKey>>,
    hasher: foldhash::fast::RandomState,
    /// A proof made before this instance started is refused: its replay
    /// cache began empty then. (After an earlier instance on a store of
    /// its own, one dated in the [`RESTART_WINDOW`] after it is taken only
    /// with this instance's own nonce.)
    started: i64,
    /// The store is shared by other instances: each proof is claimed in
    /// it too ([`Proven::replay_key`]).
    shared: bool,
}

impl Proofs {
    /// `secret` is shared by every instance (the nonces); `started` is
    /// this process's start; `shared`, whether other instances share the
    /// store; `after_another`, whether an earlier instance used this
    /// store (of its own) up to the start, so that a proof it took may
    /// be dated in the [`RESTART_WINDOW`].
    pub fn new(secret: &[u8], started: i64, shared: bool, after_another: bool) -> Proofs {
        // Handed out until no proof dated in the window is taken.
        let restart_until = started + RESTART_WINDOW + PROOF_AGE + 1;
        Proofs {
            nonces: Nonces::new(secret, after_another.then_some(restart_until)),
            replays: Replays::new(REPLAY_LIFETIME),
            keys: quick_cache::sync::Cache::new(4096),
            hasher: Default::default(),
            started,
            shared,
        }
    }

    /// The nonce to hand out now: after an earlier instance, this one's
    /// own for a while.
    pub fn nonce(&self, now: i64) -> Arc<str> {
        self.nonces.current(now)
    }

    /// The proof in `proof` (the request's one `DPoP` field), checked
    /// against what the request is. (A frame of its own: benches/sender.sh
    /// counts what it costs.)
    #[inline(never)]
    pub fn check(&self, proof: &[u8], expected: &Expected) -> Result<Proven, Refused> {
        if proof.len() > MAX_PROOF {
            return Err(Refused::Invalid("too long"));
        }
        // A JWS: header, payload and signature, split at its first and
        // last dots (a dot between them spoils the payload).
        let not_jws = Refused::Invalid("not a JWS");
        let first = memchr::memchr(b'.', proof).ok_or(not_jws)?;
        let last = memchr::memrchr(b'.', proof)
            .filter(|l| *l > first)
            .ok_or(not_jws)?;
        let (message, header_b64) = (&proof[..last], &proof[..first]);
        let key = self.key(header_b64, expected.algorithms)?;
        if !key.verifies(message, &proof[last + 1..]) {
            return Err(Refused::Invalid("bad signature"));
        }
        let payload_b64 = &proof[first + 1..last];
        // Decoded on the stack: a proof is at most `MAX_PROOF` long.
        let mut decoded = [std::mem::MaybeUninit::uninit(); MAX_PROOF / 4 * 3];
        let claims = base64_simd::URL_SAFE_NO_PAD
            .decode(
                payload_b64,
                base64_simd::Out::from_uninit_slice(&mut decoded),
            )
            .ok()
            .and_then(|payload| payload::claims(payload))
            .ok_or(Refused::Invalid("payload"))?;
        let (iat, next_nonce) = self.check_claims(&claims, expected)?;
        let jti = &*claims.jti;
        match self.replays.offer(&key.thumbprint, jti, expected.now) {
            Seen::First => {}
            Seen::Again => return Err(Refused::Replayed),
            Seen::Full => return Err(Refused::Full),
        }
        let remember_for = (iat + PROOF_AGE + 2 + PROOF_SKEW - expected.now).max(1) as u64;
        Ok(Proven {
            remember_for: std::time::Duration::from_secs(remember_for),
            replay_key: self
                .shared
                .then(|| format!("dpop\0{}\0{jti}", key.thumbprint)),
            thumbprint: key.thumbprint.clone(),
            next_nonce,
        })
    }

    /// The payload against the request: everything but the replay. Its
    /// `iat`, and a newer nonce to hand out when the proof's is the last
    /// period's.
    fn check_claims(
        &self,
        claims: &Payload,
        expected: &Expected,
    ) -> Result<(i64, Option<Arc<str>>), Refused> {
        let jti = &*claims.jti;
        if jti.is_empty() || jti.len() > MAX_JTI {
            return Err(Refused::Invalid("jti"));
        }
        if claims.htm != expected.method {
            return Err(Refused::Invalid("htm is not the request's method"));
        }
        if !htu::matches(&claims.htu, &expected.target) {
            return Err(Refused::Invalid("htu is not the request's URI"));
        }
        // Compared as read, a double: a fraction of a second past the
        // window is past it (cut to whole seconds, 15.9 s ahead read as 15).
        let iat = claims.iat.ok_or(Refused::Invalid("iat"))?;
        let now = expected.now;
        if iat > (now + PROOF_SKEW) as f64 || iat < (now - PROOF_AGE) as f64 {
            return Err(Refused::Invalid("iat is not recent"));
        }
        if iat < self.started as f64 {
            return Err(Refused::Invalid("made before this instance started"));
        }
        let after_restart = iat < (self.started + RESTART_WINDOW) as f64;
        // Whole seconds, rounded up: remembered for as long as it is taken.
        // (Not `ceil`, a call to libm: `iat` is within a minute of now.)
        let whole = iat as i64;
        let iat = whole + i64::from((whole as f64) < iat);
        // One spelling of the hash only: base64url without padding.
        if expected.ath.is_some_and(|ath| claims.ath != ath) {
            return Err(Refused::Invalid("ath is not the token's hash"));
        }
        // An earlier instance on this store may have taken it, and this
        // one's replay cache began empty: only a proof with this
        // instance's own nonce was made since.
        if let Some(own) = self.nonces.restart(now).filter(|_| after_restart) {
            return match *claims.nonce == *own {
                true => Ok((iat, None)),
                false => Err(Refused::Nonce),
            };
        }
        if !expected.nonce {
            return Ok((iat, None));
        }
        let now_nonce = || Some(self.nonces.current(now));
        let nonce = Some(&*claims.nonce).filter(|n| !n.is_empty());
        match self.nonces.freshness(nonce, now) {
            Freshness::Current => Ok((iat, None)),
            Freshness::Stale => Ok((iat, now_nonce())),
            Freshness::Refused => Err(Refused::Nonce),
        }
    }

    /// The key of a proof with this header (its base64url text), checked
    /// once per text: a client's proofs share one header, and a header
    /// says the same each time it is read.
    fn key(&self, header: &[u8], algorithms: Algorithms) -> Result<Arc<ProofKey>, Refused> {
        let slot = self.slot(header);
        let key = match self.keys.get(&slot) {
            Some(hit) if &*hit.header == header => hit,
            _ => {
                let key = Arc::new(read_header(header, algorithms)?);
                self.keys.insert(slot, key.clone());
                key
            }
        };
        if !algorithms.includes(key.algorithm) {
            return Err(Refused::Invalid("alg not allowed"));
        }
        Ok(key)
    }

    /// Where a header's key is kept: by the header's length and 16 bytes
    /// from its middle and its end (within its key's coordinates, in
    /// whatever order its members come), a hit confirmed against the whole
    /// header. (Hashing all of a header's ~240 bytes cost about 120
    /// instructions a proof more.) Headers made alike there take each
    /// other's place: each is only read again.
    fn slot(&self, header: &[u8]) -> u64 {
        let sample = |from: usize| &header[from..header.len().min(from + 16)];
        let (middle, end) = (header.len() / 2, header.len().saturating_sub(16));
        self.hasher
            .hash_one((header.len(), sample(middle), sample(end)))
    }
}

/// A proof's header (base64url): `typ` `dpop+jwt`, no `crit`, an `alg`
/// of `algorithms`, and the public key it names.
fn read_header(text: &[u8], algorithms: Algorithms) -> Result<ProofKey, Refused> {
    let decoded = base64_simd::URL_SAFE_NO_PAD.decode_to_vec(text).ok();
    let header: Header = decoded
        .as_deref()
        .and_then(payload::object)
        .ok_or(Refused::Invalid("header"))?;
    let typ = header.typ.as_deref().unwrap_or_default();
    if !typ.eq_ignore_ascii_case("dpop+jwt") {
        return Err(Refused::Invalid("typ is not dpop+jwt"));
    }
    if header.crit.0 {
        return Err(Refused::Invalid("crit"));
    }
    if !algorithms.allows(&header.alg) {
        return Err(Refused::Invalid("alg not allowed"));
    }
    let jwk = header.jwk.ok_or(Refused::Invalid("no jwk"))?;
    key::read(text, jwk.get(), &header.alg).map_err(Refused::Invalid)
}

/// The hash of an access token as a proof's `ath` names it: its
/// SHA-256, base64url without padding.
pub fn ath(token: &[u8]) -> Box<str> {
    use sha2::Digest;
    base64_simd::URL_SAFE_NO_PAD
        .encode_to_string(sha2::Sha256::digest(token))
        .into()
}

#[cfg(test)]
mod tests;
