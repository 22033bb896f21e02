//! Hashing and checking principals' secrets (the principals themselves are
//! config data, `config::Principal`). Passwords are argon2id; high-entropy
//! client secrets may use a fast keyed hash (HMAC-SHA256 with a per-secret
//! salt). Hashes the services portero replaces kept (bcrypt, PBKDF2,
//! scrypt, argon2i) are checked too, with RustCrypto's `password-hash`
//! family and the `bcrypt` crate. Verifying costs the same whether or not
//! the principal exists, whatever its hash's format: an unknown login is
//! checked against a dummy hash like most principals' hashes, and every
//! refusal lasts what the slowest of their formats takes (`StandIn`).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::config::{Pbkdf2Digest, SecretHash, FAST_PREFIX};

impl SecretHash {
    /// Constant-time check of `secret` against this hash.
    pub fn verify(&self, secret: &str) -> bool {
        match self {
            SecretHash::Phc(phc) => PasswordHash::new(phc)
                .map(|h| {
                    let verifiers: [&dyn PasswordVerifier; 3] =
                        [&Argon2::default(), &pbkdf2::Pbkdf2, &scrypt::Scrypt];
                    h.verify_password(&verifiers, secret).is_ok()
                })
                .unwrap_or(false),
            SecretHash::Bcrypt(hash) => {
                // bcrypt reads only the first 72 bytes, so a longer secret
                // would pass on its prefix: refused, after the same work.
                let matches = bcrypt::verify(secret, hash).unwrap_or(false);
                matches && secret.len() <= BCRYPT_MAX_SECRET
            }
            SecretHash::Pbkdf2 {
                digest,
                rounds,
                salt,
                hash,
            } => {
                let mut derived = vec![0u8; hash.len()];
                let (secret, rounds) = (secret.as_bytes(), *rounds);
                match digest {
                    Pbkdf2Digest::Sha1 => {
                        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(secret, salt, rounds, &mut derived)
                    }
                    Pbkdf2Digest::Sha256 => {
                        pbkdf2::pbkdf2_hmac::<Sha256>(secret, salt, rounds, &mut derived)
                    }
                    Pbkdf2Digest::Sha512 => {
                        pbkdf2::pbkdf2_hmac::<Sha512>(secret, salt, rounds, &mut derived)
                    }
                }
                bool::from(derived.ct_eq(hash))
            }
            SecretHash::Fast { salt, mac } => {
                let mut m =
                    Hmac::<Sha256>::new_from_slice(salt).expect("HMAC takes any key length");
                m.update(secret.as_bytes());
                m.verify_slice(mac).is_ok()
            }
        }
    }

    /// The format with its cost parameters (never salt or digest): hashes
    /// with the same one take the same time to check.
    pub fn cost_class(&self) -> String {
        match self {
            SecretHash::Phc(phc) => match PasswordHash::new(phc) {
                Ok(h) => format!("{}${}", h.algorithm, h.params),
                Err(_) => "unparsed".to_string(),
            },
            SecretHash::Bcrypt(hash) => match hash.parse::<bcrypt::HashParts>() {
                Ok(parts) => format!("bcrypt${}", parts.get_cost()),
                Err(_) => "unparsed".to_string(),
            },
            SecretHash::Pbkdf2 { rounds, .. } => format!("{}${rounds}", self.format()),
            SecretHash::Fast { .. } => self.format().to_string(),
        }
    }

    /// The hash as text that reads back as this same hash: the PHC,
    /// bcrypt or fast-hash string it was read from, and PBKDF2 in
    /// passlib's form (Django's is read into the same fields). Two hashes
    /// have one text only when they are one hash.
    pub fn text(&self) -> String {
        match self {
            SecretHash::Phc(text) | SecretHash::Bcrypt(text) => text.clone(),
            SecretHash::Pbkdf2 {
                digest,
                rounds,
                salt,
                hash,
            } => {
                let id = match digest {
                    Pbkdf2Digest::Sha1 => "pbkdf2",
                    Pbkdf2Digest::Sha256 => "pbkdf2-sha256",
                    Pbkdf2Digest::Sha512 => "pbkdf2-sha512",
                };
                // passlib's "adapted base64": `.` where base64 has `+`.
                let ab64 = |b: &[u8]| STANDARD_NO_PAD.encode(b).replace('+', ".");
                format!("${id}${rounds}${}${}", ab64(salt), ab64(hash))
            }
            SecretHash::Fast { salt, mac } => format!(
                "{FAST_PREFIX}{}${}",
                URL_SAFE_NO_PAD.encode(salt),
                URL_SAFE_NO_PAD.encode(mac)
            ),
        }
    }

    pub fn is_fast(&self) -> bool {
        matches!(self, SecretHash::Fast { .. })
    }

    /// Whether this is what portero writes today: argon2id with at least
    /// the OWASP parameters (19 MiB, 2 passes), or its fast keyed hash.
    pub fn is_current(&self) -> bool {
        let SecretHash::Phc(phc) = self else {
            return self.is_fast();
        };
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let param = |name: &str| parsed.params.get_decimal(name).unwrap_or(0);
        parsed.algorithm.as_str() == "argon2id"
            && param("m") >= argon2::Params::DEFAULT_M_COST
            && param("t") >= argon2::Params::DEFAULT_T_COST
    }

    /// The format's name, for logs and metrics (never the hash itself).
    pub fn format(&self) -> &'static str {
        match self {
            SecretHash::Phc(phc) => match phc.split('$').nth(1) {
                Some("argon2id") => "argon2id",
                Some("argon2i") => "argon2i",
                Some("argon2d") => "argon2d",
                Some("pbkdf2-sha256") => "pbkdf2-sha256",
                Some("pbkdf2-sha512") => "pbkdf2-sha512",
                _ => "scrypt",
            },
            SecretHash::Bcrypt(_) => "bcrypt",
            SecretHash::Pbkdf2 { digest, .. } => match digest {
                Pbkdf2Digest::Sha1 => "pbkdf2-sha1",
                Pbkdf2Digest::Sha256 => "pbkdf2-sha256",
                Pbkdf2Digest::Sha512 => "pbkdf2-sha512",
            },
            SecretHash::Fast { .. } => "portero-hmac-sha256",
        }
    }
}

/// The most bytes of a secret bcrypt reads.
const BCRYPT_MAX_SECRET: usize = 72;

/// A hash of `like`'s format and cost that no secret matches (random salt
/// and digest): checking an unknown login against it takes what checking
/// a known one with `like`'s hash takes.
pub fn imitation(like: &SecretHash) -> SecretHash {
    let mut rng = rand::thread_rng();
    let mut random = |n: usize| {
        let mut b = vec![0u8; n];
        rng.fill_bytes(&mut b);
        b
    };
    match like {
        SecretHash::Fast { salt, mac } => SecretHash::Fast {
            salt: random(salt.len()),
            mac: random(mac.len()),
        },
        SecretHash::Pbkdf2 {
            digest,
            rounds,
            salt,
            hash,
        } => SecretHash::Pbkdf2 {
            digest: *digest,
            rounds: *rounds,
            salt: random(salt.len()),
            hash: random(hash.len()),
        },
        SecretHash::Bcrypt(hash) => {
            let cost = hash
                .parse::<bcrypt::HashParts>()
                .map_or(12, |p| p.get_cost());
            let (salt, digest) = (random(16), random(23));
            SecretHash::Bcrypt(format!(
                "$2b${cost:02}${}{}",
                bcrypt::BASE_64.encode(salt),
                bcrypt::BASE_64.encode(digest)
            ))
        }
        SecretHash::Phc(phc) => {
            let imitated = PasswordHash::new(phc).ok().and_then(|h| {
                let salt = SaltString::generate(&mut rand::thread_rng());
                let len = h.hash.map_or(32, |o| o.len());
                let output = argon2::password_hash::Output::new(&random(len)).ok()?;
                let fake = PasswordHash {
                    salt: Some(salt.as_salt()),
                    hash: Some(output),
                    ..h
                };
                Some(SecretHash::Phc(fake.to_string()))
            });
            imitated.unwrap_or_else(|| dummy(false).clone())
        }
    }
}

/// The cost classes of one set of principals' hashes: how many of each,
/// and how long checking each takes on this machine now. An unknown login
/// is checked against an imitation of the most common class; every
/// refusal, known login or not, then waits until checking the slowest
/// class would almost surely have ended, so a user of a rarer or faster
/// format is not told from an unknown name by timing.
#[derive(Debug, Default)]
pub struct StandIn {
    seen: HashMap<String, Class>,
    current: Option<(String, SecretHash)>,
}

#[derive(Debug)]
struct Class {
    /// Principals of this class (0 for one only checked, never read).
    count: u64,
    like: SecretHash,
    /// How long its checks take; `None` before any.
    took: Option<CheckTime>,
}

/// A check's time as RFC 6298 follows a round trip's: a moving average
/// and a moving mean deviation, so the bound follows the machine's load.
#[derive(Debug, Clone, Copy)]
struct CheckTime {
    average: Duration,
    deviation: Duration,
}

impl CheckTime {
    fn first(took: Duration) -> CheckTime {
        CheckTime {
            average: took,
            deviation: took / 2,
        }
    }

    fn then(self, took: Duration) -> CheckTime {
        CheckTime {
            average: (self.average * 7 + took) / 8,
            deviation: (self.deviation * 3 + self.average.abs_diff(took)) / 4,
        }
    }

    /// A time few checks exceed (about one in twenty of a normal spread).
    fn bound(self) -> Duration {
        self.average + self.deviation * 2
    }
}

/// Cost classes counted at most: enough for any real table's history.
const MAX_CLASSES: usize = 64;

impl StandIn {
    /// The stand-in for the hashes of `principals`.
    pub fn of<'a>(principals: impl Iterator<Item = &'a SecretHash>) -> StandIn {
        let mut stand_in = StandIn::default();
        for hash in principals {
            stand_in.saw(hash);
        }
        stand_in
    }

    pub fn saw(&mut self, hash: &SecretHash) {
        if let Some(class) = self.class(hash) {
            class.count += 1;
        }
    }

    /// `hash`'s class, counted from now on if there is room.
    fn class(&mut self, hash: &SecretHash) -> Option<&mut Class> {
        let name = hash.cost_class();
        if self.seen.len() >= MAX_CLASSES && !self.seen.contains_key(&name) {
            return None;
        }
        Some(self.seen.entry(name).or_insert_with(|| Class {
            count: 0,
            like: hash.clone(),
            took: None,
        }))
    }

    /// An imitation of the most common class seen, or `None` before any.
    pub fn hash(&mut self) -> Option<SecretHash> {
        let (class, Class { like, .. }) = self
            .seen
            .iter()
            .max_by_key(|(class, c)| (c.count, *class))?;
        if self.current.as_ref().is_none_or(|(c, _)| c != class) {
            self.current = Some((class.clone(), imitation(like)));
        }
        self.current.as_ref().map(|(_, h)| h.clone())
    }

    /// Imitations of the classes whose checks were never timed, to time
    /// them once: the slowest class costs a refusal from the first one.
    pub fn untimed(&self) -> Vec<SecretHash> {
        let untimed = self.seen.values().filter(|c| c.took.is_none());
        untimed.map(|c| imitation(&c.like)).collect()
    }

    /// Checking `hash` took `took`.
    pub fn timed(&mut self, hash: &SecretHash, took: Duration) {
        if let Some(class) = self.class(hash) {
            class.took = Some(match class.took {
                None => CheckTime::first(took),
                Some(was) => was.then(took),
            });
        }
    }

    /// A time that checking the slowest class seldom exceeds: the least a
    /// refusal costs.
    pub fn floor(&self) -> Duration {
        let bounds = self
            .seen
            .values()
            .filter_map(|c| c.took.map(CheckTime::bound));
        bounds.max().unwrap_or_default()
    }
}

/// An argon2id hash (default parameters: 19 MiB, 2 passes) for a password.
pub fn hash_password(secret: &str) -> String {
    let salt = SaltString::generate(&mut rand::thread_rng());
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

/// The fast keyed hash, for high-entropy client secrets only.
pub fn hash_fast(secret: &str) -> String {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let mut m = Hmac::<Sha256>::new_from_slice(&salt).expect("HMAC takes any key length");
    m.update(secret.as_bytes());
    format!(
        "{FAST_PREFIX}{}${}",
        URL_SAFE_NO_PAD.encode(salt),
        URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
    )
}

/// A hash of the given kind that no secret matches, to spend the same time on
/// an unknown login as on a known one.
pub fn dummy(fast: bool) -> &'static SecretHash {
    static ARGON: OnceLock<SecretHash> = OnceLock::new();
    static FAST: OnceLock<SecretHash> = OnceLock::new();
    let random = || {
        let mut b = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut b);
        URL_SAFE_NO_PAD.encode(b)
    };
    if fast {
        FAST.get_or_init(|| crate::config::secret_hash(&hash_fast(&random())).expect("own format"))
    } else {
        ARGON.get_or_init(|| {
            crate::config::secret_hash(&hash_password(&random())).expect("own format")
        })
    }
}

/// The stand-in of `principals`, counted once.
pub fn stand_in_of(principals: &crate::config::Principals) -> &Mutex<StandIn> {
    let derived = principals.derived.get_or_init(|| {
        let stand_in = StandIn::of(principals.iter().map(|p| &p.secret));
        Box::new(Mutex::new(stand_in))
    });
    derived
        .downcast_ref()
        .expect("credentials alone fills a principals' derived slot")
}

/// Reads a secret from stdin (trailing newline removed) and prints its hash.
pub fn hash_secret_from_stdin(fast: bool) -> std::io::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let secret = line.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty secret",
        ));
    }
    Ok(if fast {
        hash_fast(secret)
    } else {
        hash_password(secret)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_hashes_verify_only_their_secret() {
        for h in [
            hash_password("demo2024"),
            hash_fast("demo_secret_456_ABCDEFGH"),
        ] {
            let parsed = crate::config::secret_hash(&h).unwrap();
            let right = if parsed.is_fast() {
                "demo_secret_456_ABCDEFGH"
            } else {
                "demo2024"
            };
            assert!(parsed.verify(right));
            assert!(!parsed.verify("wrong"));
            assert!(!parsed.verify(""));
        }
        assert!(!dummy(true).verify(""));
        assert!(!dummy(false).verify(""));
    }

    #[test]
    fn bcrypt_refuses_a_secret_past_its_72_bytes() {
        let long = "x".repeat(72);
        let hash = crate::config::secret_hash(&bcrypt::hash(&long, 4).unwrap()).unwrap();
        assert!(hash.verify(&long));
        // bcrypt reads 72 bytes: these match on the prefix, and are refused.
        assert!(!hash.verify(&format!("{long}y")));
        assert!(!hash.verify(&format!("{long}{}", "z".repeat(100))));
    }

    #[test]
    fn an_imitation_has_the_format_and_cost_and_matches_nothing() {
        let real = [
            hash_password("pw"),
            hash_fast("pw"),
            bcrypt::hash("pw", 5).unwrap(),
            "pbkdf2_sha256$1000$c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=".to_string(),
            "$scrypt$ln=4,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA".to_string(),
        ];
        for written in real {
            let h = crate::config::secret_hash(&written).unwrap();
            let imitation = imitation(&h);
            assert_eq!(imitation.cost_class(), h.cost_class(), "{written}");
            assert!(!imitation.verify("pw"));
            assert!(!imitation.verify(""));
        }
        // The most common class among the hashes seen stands in.
        let bcrypt = crate::config::secret_hash(&bcrypt::hash("pw", 5).unwrap()).unwrap();
        let argon = crate::config::secret_hash(&hash_password("pw")).unwrap();
        let mut stand_in = StandIn::of([&bcrypt, &argon, &bcrypt].into_iter());
        assert_eq!(stand_in.hash().unwrap().cost_class(), "bcrypt$5");
    }

    #[test]
    fn a_refusal_costs_the_slowest_class_and_the_most_common_stands_in() {
        let hash = |w: &str| crate::config::secret_hash(w).unwrap();
        let bcrypt = hash(&bcrypt::hash("pw", 4).unwrap());
        let argon = hash(&hash_password("pw"));
        let mut stand_in = StandIn::of([&bcrypt, &bcrypt, &argon].into_iter());
        // Each class is timed once before its first check counts.
        assert_eq!(stand_in.untimed().len(), 2);
        assert_eq!(stand_in.floor(), Duration::ZERO);
        let ms = Duration::from_millis;
        stand_in.timed(&bcrypt, ms(10));
        stand_in.timed(&imitation(&argon), ms(40));
        assert!(stand_in.untimed().is_empty());
        // One check says little: twice its time, until more come.
        assert_eq!(stand_in.floor(), ms(80));
        // Checks that take the same time narrow the bound to it; a slower
        // machine widens it.
        for _ in 0..40 {
            stand_in.timed(&argon, ms(40));
        }
        assert!(stand_in.floor() < ms(41), "{:?}", stand_in.floor());
        stand_in.timed(&argon, ms(120));
        assert!(stand_in.floor() > ms(80), "{:?}", stand_in.floor());
        // A class only checked (an imported principal's) counts for the
        // floor, never for the stand-in.
        let scrypt =
            hash("$scrypt$ln=4,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA");
        stand_in.timed(&scrypt, ms(500));
        assert_eq!(stand_in.floor(), ms(1000));
        assert_eq!(stand_in.hash().unwrap().cost_class(), "bcrypt$4");
    }

    #[test]
    fn a_hash_reads_back_from_its_text() {
        let written = [
            hash_password("pw"),
            hash_fast("pw"),
            bcrypt::hash("pw", 4).unwrap(),
            "$pbkdf2-sha256$1000$c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g".to_string(),
            "$scrypt$ln=4,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA".to_string(),
        ];
        for w in &written {
            assert_eq!(&crate::config::secret_hash(w).unwrap().text(), w);
        }
        // Django's PBKDF2 (of "pw") reads back from passlib's form, as the
        // same hash.
        let django = crate::config::secret_hash(
            "pbkdf2_sha256$1000$salt+/.$hXr1hBSwXE6wXVDSPgCKtYMelfUk+l6OuXDQfbqtJpU=",
        )
        .unwrap();
        assert!(django.verify("pw"));
        let again = crate::config::secret_hash(&django.text()).unwrap();
        assert_eq!(again.text(), django.text());
        assert!(again.verify("pw") && !again.verify("px"));
    }

    #[test]
    fn plain_text_and_unknown_formats_are_refused_by_name() {
        let refused = |s: &str| crate::config::secret_hash(s).unwrap_err();
        assert!(refused("demo2024").contains("plain text"));
        assert!(refused("$portero-hmac-sha256$only-one-part").contains("fast hash"));
        // An unknown format is not named: a plain secret that starts with
        // `$` would be.
        assert!(refused("$md5-crypt$abc$def").contains("a hash of a format not known"));
        assert!(!refused("$uperS3cret!").contains("uperS3cret"));
        assert!(refused("$2b$12$tooshort").contains("bcrypt"));
        assert!(refused("pbkdf2_sha256$0$salt$aGFzaA==").contains("Django"));
        assert!(refused("$pbkdf2-sha256$29000$salt$n*t-ab64").contains("passlib"));
        // The message names the format, never the hash.
        assert!(!refused("$2b$12$tooshort").contains("tooshort"));
    }
}
