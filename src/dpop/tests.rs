use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::EncodingKey;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{json, Value};

use super::*;

const NOW: i64 = 1_800_000_000;

/// A client's key pair: its public JWK, and a signer of proofs with `alg`.
struct Client {
    jwk: Value,
    signing: EncodingKey,
    alg: jsonwebtoken::Algorithm,
}

fn client() -> Client {
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let point = secret.public_key().to_encoded_point(false);
    let jwk = json!({
        "kty": "EC", "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
        "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
    });
    let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
    Client {
        jwk,
        signing: EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        alg: jsonwebtoken::Algorithm::ES256,
    }
}

/// A client signing with `alg`, its key `signing` (its public JWK made
/// from it).
fn client_of(alg: &str, signing: EncodingKey) -> Client {
    let alg: jsonwebtoken::Algorithm = alg.parse().unwrap();
    let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&signing, alg).unwrap();
    Client {
        jwk: serde_json::to_value(jwk).unwrap(),
        signing,
        alg,
    }
}

/// The fixtures' Ed25519 key (jsonwebtoken makes no JWK of one): its
/// public key the last 32 bytes of its SubjectPublicKeyInfo.
fn ed25519() -> Client {
    let public = String::from_utf8(fixture("ed_public.pem")).unwrap();
    let body: String = public.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let x = URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]);
    Client {
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
        signing: EncodingKey::from_ed_pem(&fixture("ed_private.pem")).unwrap(),
        alg: jsonwebtoken::Algorithm::EdDSA,
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

impl Client {
    /// A proof with `header` as written (its `alg` added), signed.
    fn proof_with(&self, mut header: Value, claims: Value) -> String {
        header["alg"] = json!(format!("{:?}", self.alg));
        self.signed(&header.to_string(), &claims.to_string())
    }

    /// A proof of these texts, signed.
    fn signed(&self, header: &str, claims: &str) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.signing, self.alg).unwrap();
        format!("{message}.{signature}")
    }

    fn proof(&self, claims: Value) -> String {
        self.proof_with(json!({"typ": "dpop+jwt", "jwk": self.jwk}), claims)
    }
}

fn claims(jti: &str) -> Value {
    json!({"jti": jti, "htm": "GET", "htu": "https://api.example/notes", "iat": NOW,
        "ath": ath(b"the-token")})
}

fn expected(hash: &str) -> Expected<'_> {
    Expected {
        method: "GET",
        target: Target {
            https: true,
            authority: "api.example",
            path: "/notes",
        },
        ath: Some(hash),
        algorithms: Algorithms::ALL,
        nonce: false,
        now: NOW,
    }
}

fn proofs() -> Proofs {
    Proofs::new(b"nonce key", NOW - 3600, false, false)
}

#[test]
fn a_proof_of_the_request_is_taken_once() {
    let (c, p, hash) = (client(), proofs(), ath(b"the-token"));
    let proof = c.proof(claims("1"));
    let proven = p.check(proof.as_bytes(), &expected(&hash)).unwrap();
    // Remembered until its iat is too old, on an instance PROOF_SKEW behind.
    assert_eq!(
        proven.remember_for.as_secs() as i64,
        PROOF_AGE + 2 + PROOF_SKEW
    );
    let mut ahead = claims("ahead");
    ahead["iat"] = json!(NOW + PROOF_SKEW);
    let ahead = p
        .check(c.proof(ahead).as_bytes(), &expected(&hash))
        .unwrap();
    assert_eq!(
        ahead.remember_for.as_secs() as i64,
        2 * PROOF_SKEW + PROOF_AGE + 2
    );
    // A fraction within the window is taken, and remembered as the
    // second after it.
    let mut fraction = claims("fraction");
    fraction["iat"] = json!(NOW as f64 + PROOF_SKEW as f64 - 0.5);
    let fraction = p
        .check(c.proof(fraction).as_bytes(), &expected(&hash))
        .unwrap();
    assert_eq!(fraction.remember_for, ahead.remember_for);
    let Value::Object(jwk) = &c.jwk else {
        unreachable!()
    };
    assert_eq!(*proven.thumbprint, thumbprint(jwk).unwrap());
    assert_eq!(
        p.check(proof.as_bytes(), &expected(&hash)).err(),
        Some(Refused::Replayed)
    );
    assert!(p
        .check(c.proof(claims("2")).as_bytes(), &expected(&hash))
        .is_ok());
}

#[test]
fn each_algorithm_takes_its_keys_signature_and_no_altered_one() {
    let rng = ring::rand::SystemRandom::new();
    let p384 = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        &rng,
    )
    .unwrap();
    let rsa = || EncodingKey::from_rsa_pem(&fixture("rsa_private.pem")).unwrap();
    let clients = [
        client(),
        client_of("ES384", EncodingKey::from_ec_der(p384.as_ref())),
        ed25519(),
        client_of("RS256", rsa()),
        client_of("RS384", rsa()),
        client_of("RS512", rsa()),
        client_of("PS256", rsa()),
        client_of("PS384", rsa()),
        client_of("PS512", rsa()),
    ];
    let (p, hash) = (proofs(), ath(b"the-token"));
    for (i, c) in clients.iter().enumerate() {
        let proof = c.proof(claims(&format!("alg-{i}")));
        let taken = p.check(proof.as_bytes(), &expected(&hash));
        assert!(taken.is_ok(), "{:?}: {taken:?}", c.alg);
        // Another signature: one of its bytes (not the last character's
        // spare bits) changed.
        let mut altered = proof.into_bytes();
        let at = altered.len() - 8;
        altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            p.check(&altered, &expected(&hash)).err(),
            Some(Refused::Invalid("bad signature")),
            "{:?}",
            c.alg
        );
    }
    // An RSA key of under 2048 bits is no proof key.
    let short = client_of(
        "RS256",
        EncodingKey::from_rsa_pem(&fixture("rsa1024_private.pem")).unwrap(),
    );
    let proof = short.proof(claims("short"));
    assert_eq!(
        p.check(proof.as_bytes(), &expected(&hash)).err(),
        Some(Refused::Invalid("the jwk cannot verify"))
    );
}

#[test]
fn a_signature_too_long_or_made_for_a_key_of_small_order_is_refused() {
    let (c, p, hash) = (client(), proofs(), ath(b"the-token"));
    let proof = c.proof(claims("long"));
    let message = &proof[..proof.rfind('.').unwrap()];
    // Around the longest signature read (an RSA one of 8192 bits, 1,366
    // characters, whose 1,024 bytes once found no room): read and
    // refused, or refused unread.
    for length in [1364, 1365, 1366, 1367, 1368, 1400] {
        let long = format!("{message}.{}", "A".repeat(length));
        assert_eq!(
            p.check(long.as_bytes(), &expected(&hash)).err(),
            Some(Refused::Invalid("bad signature")),
            "{length}"
        );
    }
    // The identity as an Ed25519 key takes a signature made without any
    // private key (R the identity, S zero): no key of small order is read.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let header = json!({"typ": "dpop+jwt", "alg": "EdDSA",
        "jwk": {"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(identity)}});
    let mut signature = [0u8; 64];
    signature[0] = 1;
    let forged = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims("forged").to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    );
    assert_eq!(
        p.check(forged.as_bytes(), &expected(&hash)).err(),
        Some(Refused::Invalid("the jwk cannot verify"))
    );
}

/// Two keys whose headers share the places the key cache samples (a long
/// member after the key holds the middle and the end) take each other's
/// place there, and each proof is still checked with its own key.
#[test]
fn headers_alike_where_the_cache_looks_are_each_checked_with_their_own_key() {
    let (p, hash) = (proofs(), ath(b"the-token"));
    let padded = |c: &Client| json!({"typ": "dpop+jwt", "jwk": c.jwk, "zpad": "p".repeat(600)});
    let (a, b) = (client(), client());
    let header = |proof: &str| proof.split('.').next().unwrap().to_string();
    let first = a.proof_with(padded(&a), claims("a1"));
    let second = b.proof_with(padded(&b), claims("b1"));
    let (ha, hb) = (header(&first), header(&second));
    assert_ne!(ha, hb);
    assert_eq!(p.slot(ha.as_bytes()), p.slot(hb.as_bytes()), "one place");
    let own = |c: &Client| {
        let Value::Object(jwk) = &c.jwk else {
            unreachable!()
        };
        thumbprint(jwk).unwrap()
    };
    for (c, proof) in [
        (&a, first),
        (&b, second),
        (&a, a.proof_with(padded(&a), claims("a2"))),
    ] {
        let proven = p.check(proof.as_bytes(), &expected(&hash)).unwrap();
        assert_eq!(*proven.thumbprint, own(c));
    }
    // Another key's header before its claims and signature is no proof.
    let later = a.proof_with(padded(&a), claims("a3"));
    let forged = format!("{hb}.{}", later.split_once('.').unwrap().1);
    assert_eq!(
        p.check(forged.as_bytes(), &expected(&hash)).err(),
        Some(Refused::Invalid("bad signature"))
    );
}

#[test]
fn a_proof_of_another_request_or_token_is_refused() {
    let (c, p, hash) = (client(), proofs(), ath(b"the-token"));
    let refused = |changes: Value| {
        let mut body = claims("x");
        for (k, v) in changes.as_object().unwrap() {
            match v {
                Value::Null => body.as_object_mut().unwrap().remove(k),
                v => body.as_object_mut().unwrap().insert(k.clone(), v.clone()),
            };
        }
        p.check(c.proof(body).as_bytes(), &expected(&hash)).err()
    };
    for changes in [
        json!({"htm": "POST"}),
        json!({"htm": "get"}),
        json!({"htu": "https://api.example/other"}),
        json!({"htu": "http://api.example/notes"}),
        json!({"iat": NOW - PROOF_AGE - 1}),
        json!({"iat": NOW + PROOF_SKEW + 1}),
        json!({"iat": NOW as f64 + PROOF_SKEW as f64 + 0.5}),
        json!({"iat": NOW as f64 - PROOF_AGE as f64 - 0.5}),
        json!({"iat": "now"}),
        json!({"ath": ath(b"another token")}),
        json!({"ath": null}),
        json!({"jti": null}),
        json!({"jti": ""}),
        json!({"jti": "j".repeat(257)}),
    ] {
        assert!(
            matches!(refused(changes.clone()), Some(Refused::Invalid(_))),
            "{changes}"
        );
    }
    let made_before_start = Proofs::new(b"nonce key", NOW, false, false);
    let mut early = claims("early");
    early["iat"] = json!(NOW - 1);
    assert!(made_before_start
        .check(c.proof(early).as_bytes(), &expected(&hash))
        .is_err());
}

/// After an earlier instance on its store, an instance's memory began
/// empty: a proof dated in the window after its start, where one the
/// earlier instance took may be dated, is taken only with this
/// instance's own nonce, even where the route asks for none.
#[test]
fn after_a_restart_a_proof_dated_near_the_start_needs_the_instances_own_nonce() {
    let (c, hash) = (client(), ath(b"the-token"));
    let restarted = Proofs::new(b"nonce key", NOW, false, true);
    let dated = |jti: &str, iat: i64, nonce: Option<&str>| {
        let mut body = claims(jti);
        body["iat"] = json!(iat);
        if let Some(nonce) = nonce {
            body["nonce"] = json!(nonce);
        }
        c.proof(body)
    };
    let later = Expected {
        now: NOW + 10,
        ..expected(&hash)
    };
    // Made ahead, as a fast clock makes it: an earlier instance may have taken it.
    let ahead = dated("ahead", NOW + 14, None);
    assert_eq!(
        restarted.check(ahead.as_bytes(), &later).err(),
        Some(Refused::Nonce)
    );
    let shared = Proofs::new(b"nonce key", 0, false, false).nonce(NOW);
    let own = restarted.nonce(NOW + 10);
    assert_ne!(own, shared);
    let with_shared = dated("shared", NOW + 5, Some(&shared));
    assert_eq!(
        restarted.check(with_shared.as_bytes(), &later).err(),
        Some(Refused::Nonce)
    );
    let with_own = dated("own", NOW + 5, Some(&own));
    assert!(restarted.check(with_own.as_bytes(), &later).is_ok());
    // Dated past the window, or with no earlier instance: no nonce asked.
    let past = dated("past", NOW + RESTART_WINDOW, None);
    assert!(restarted.check(past.as_bytes(), &later).is_ok());
    let first = Proofs::new(b"nonce key", NOW, false, false);
    assert!(first.check(ahead.as_bytes(), &later).is_ok());
}

#[test]
fn a_header_that_is_not_a_public_key_proof_is_refused() {
    let (c, p, hash) = (client(), proofs(), ath(b"the-token"));
    let body = claims("h");
    let with = |header: Value| c.proof_with(header, body.clone());
    let not_dpop = with(json!({"typ": "JWT", "jwk": c.jwk}));
    let crit_null = with(json!({"typ": "dpop+jwt", "jwk": c.jwk, "crit": null}));
    // An Ed25519 key of one byte: refused, never handed to the verifier.
    let short_ed25519 = {
        let header = json!({"typ": "dpop+jwt", "alg": "EdDSA",
            "jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AA"}});
        let body = URL_SAFE_NO_PAD.encode(claims("ed").to_string());
        let signature = URL_SAFE_NO_PAD.encode([0u8; 64]);
        format!(
            "{}.{body}.{signature}",
            URL_SAFE_NO_PAD.encode(header.to_string())
        )
    };
    let no_typ = with(json!({"jwk": c.jwk}));
    let mut private = c.jwk.clone();
    private["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
    let with_private = with(json!({"typ": "dpop+jwt", "jwk": private}));
    let other = client();
    let another_key = with(json!({"typ": "dpop+jwt", "jwk": other.jwk}));
    for proof in [
        not_dpop,
        crit_null,
        short_ed25519,
        no_typ,
        with_private,
        another_key,
    ] {
        assert!(
            matches!(
                p.check(proof.as_bytes(), &expected(&hash)),
                Err(Refused::Invalid(_))
            ),
            "{proof}"
        );
    }
    // An algorithm the place does not allow, and none at all.
    let mut only_rsa = expected(&hash);
    only_rsa.algorithms = Algorithms::of(["RS256", "PS256"]).unwrap();
    assert!(p.check(c.proof(claims("a")).as_bytes(), &only_rsa).is_err());
    // A header read once (and kept) at a place that allows its algorithm
    // is still refused at one that does not.
    assert!(p
        .check(c.proof(claims("b")).as_bytes(), &expected(&hash))
        .is_ok());
    let refused = p.check(c.proof(claims("c")).as_bytes(), &only_rsa);
    assert_eq!(refused.err(), Some(Refused::Invalid("alg not allowed")));
    // A header or claims written as an array (serde reads a struct from
    // one): no JWS of RFC 7515, no claims of RFC 7519.
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": c.jwk}).to_string();
    let array_header = json!(["dpop+jwt", "ES256", c.jwk]).to_string();
    let array_claims = json!([
        "z",
        "GET",
        "https://api.example/notes",
        NOW,
        ath(b"the-token"),
        ""
    ]);
    for proof in [
        c.signed(&array_header, &claims("y").to_string()),
        c.signed(&header, &array_claims.to_string()),
    ] {
        let refused = p.check(proof.as_bytes(), &expected(&hash)).err();
        assert!(matches!(refused, Some(Refused::Invalid(_))), "{proof}");
    }
    // Two dots in a row, or one: no JWS.
    for cut in ["a.b", "a..", ".", "a"] {
        let refused = p.check(cut.as_bytes(), &expected(&hash)).err();
        assert!(matches!(refused, Some(Refused::Invalid(_))), "{cut}");
    }
    let made = c.proof(claims("n"));
    let [h, b, _] = <[&str; 3]>::try_from(made.split('.').collect::<Vec<_>>()).unwrap();
    let mut none_header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    none_header["alg"] = json!("none");
    let none = format!("{}.{b}.", URL_SAFE_NO_PAD.encode(none_header.to_string()));
    assert!(p.check(none.as_bytes(), &expected(&hash)).is_err());
    let mut hs = none_header.clone();
    hs["alg"] = json!("HS256");
    let hs = format!("{}.{b}.c2ln", URL_SAFE_NO_PAD.encode(hs.to_string()));
    assert!(p.check(hs.as_bytes(), &expected(&hash)).is_err());
    assert!(Algorithms::of(["HS256"]).is_err());
    assert!(Algorithms::of(["none"]).is_err());
}

#[test]
fn a_nonce_route_asks_for_a_current_nonce() {
    let (c, p, hash) = (client(), proofs(), ath(b"the-token"));
    let mut asked = expected(&hash);
    asked.nonce = true;
    assert_eq!(
        p.check(c.proof(claims("a")).as_bytes(), &asked).err(),
        Some(Refused::Nonce)
    );
    let mut with_nonce = claims("b");
    with_nonce["nonce"] = json!(&*p.nonce(NOW));
    let proven = p.check(c.proof(with_nonce).as_bytes(), &asked).unwrap();
    assert!(proven.next_nonce.is_none());
    let mut stale = claims("c");
    stale["nonce"] = json!(&*p.nonce(NOW - nonce::PERIOD));
    let proven = p.check(c.proof(stale).as_bytes(), &asked).unwrap();
    assert_eq!(proven.next_nonce.as_deref(), Some(&*p.nonce(NOW)));
    let mut forged = claims("d");
    forged["nonce"] = json!(&*Proofs::new(b"other", 0, false, false).nonce(NOW));
    assert_eq!(
        p.check(c.proof(forged).as_bytes(), &asked).err(),
        Some(Refused::Nonce)
    );
}

#[test]
fn algorithm_sets_name_their_members() {
    let set = Algorithms::of(["PS256", "ES256"]).unwrap();
    assert_eq!(set.names(), "ES256 PS256");
    assert!(set.allows("ES256") && !set.allows("RS256") && !set.allows("HS256"));
    assert_eq!(Algorithms::ALL.list().len(), ALGORITHMS.len());
}
