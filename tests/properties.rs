//! Properties of the parsers that take outside input: none panics on any
//! input; a normalised path is normal; a token with any one byte of its
//! header, payload or signature changed never validates; request heads and
//! chunked bodies as portero writes them read back as they were.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use portero::auth::keys::{IssuerInfo, Key, KeySet};
use portero::auth::validate::Validator;
use portero::claims::Claims;
use portero::config::{PathRules, Policy};
use portero::path::{normalize, routing_key, strip_segments};
use portero::upstream::codec::{self as wire, RequestFraming};
use proptest::prelude::*;
use serde_json::json;

const SECRET: &[u8] = b"properties-hs256-secret-of-32-bytes!";
const NOW: i64 = 1_800_000_000;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn validator() -> Validator {
    // No verified-token cache: every attempt is checked from scratch.
    validator_keeping(0)
}

/// A validator that keeps up to `verified` tokens it verified.
fn validator_keeping(verified: usize) -> Validator {
    let issuers = vec![IssuerInfo {
        oauth2_iss: None,
        name: "p".into(),
        iss: "p-issuer".into(),
        allow_no_exp: false,
        login_client: None,
    }];
    let es = DecodingKey::from_ec_pem(&fixture("ec_public.pem")).unwrap();
    let keys = vec![
        Key::hs256("hs", 0, SECRET),
        Key::verifying("es", 0, Algorithm::ES256, es),
    ];
    Validator::new(
        KeySet::from_keys(issuers, keys),
        Arc::default(),
        verified,
        30,
    )
}

fn policy() -> Policy {
    Policy::bearer(1)
}

fn token(alg: Algorithm) -> String {
    let (key, kid) = match alg {
        Algorithm::HS256 => (EncodingKey::from_secret(SECRET), "hs"),
        _ => (
            EncodingKey::from_ec_pem(&fixture("ec_private.pem")).unwrap(),
            "es",
        ),
    };
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    let claims = json!({
        "iss": "p-issuer", "sub": "alice", "iat": NOW - 10, "exp": NOW + 3600, "jti": "j-1",
    });
    jsonwebtoken::encode(&h, &claims, &key).unwrap()
}

/// Bytes a client can put in a path: printable ASCII, with the characters
/// that matter here (`/ . % ; \`, hex digits) much more likely.
fn path_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => Just("/".to_string()),
        4 => Just(".".to_string()),
        3 => Just("%".to_string()),
        1 => Just(";".to_string()),
        1 => Just("\\".to_string()),
        3 => "[0-9a-fA-F]".prop_map(String::from),
        2 => "[a-z]{1,3}",
        1 => "[ -~]",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|p| format!("/{}", p.concat()))
}

/// Paths made of escapes of escapes: `%25` and the codes of the digits and
/// letters that spell `%2e`, `%2f`, `%5c` and `%00` once decoded.
fn layered_path() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "/", ".", "%", "%25", "%32", "%35", "%30", "%65", "%45", "%66", "%46", "%63", "%43", "2",
        "5", "0", "e", "E", "f", "c", "a",
    ]);
    prop::collection::vec(piece, 0..16).prop_map(|p| format!("/{}", p.concat()))
}

/// One round of percent-decoding, as an upstream that decodes again would
/// do it (bytes that are no escape stay as they are).
fn decode_once(text: &[u8]) -> Vec<u8> {
    let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match (text[i], hex(text.get(i + 1)), hex(text.get(i + 2))) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// However many times an upstream decodes the path portero forwards,
    /// it finds no dot segment, slash, backslash or NUL portero did not see.
    #[test]
    fn decoding_a_normalised_path_again_reveals_no_separator(path in layered_path()) {
        if let Ok(normal) = normalize(&path, PathRules::default()) {
            let slashes = normal.matches('/').count();
            let mut text = normal.as_bytes().to_vec();
            for round in 1..=4 {
                text = decode_once(&text);
                let shown = String::from_utf8_lossy(&text);
                prop_assert_eq!(shown.matches('/').count(), slashes, "{:?} -> {:?} decoded {}x: {:?}", path, normal, round, shown);
                prop_assert!(!text.contains(&b'\\') && !text.contains(&0), "{path:?} -> {normal:?}: {shown:?}");
                prop_assert!(shown.split('/').all(|s| s != "." && s != ".."), "{path:?} -> {normal:?} decoded {round}x: {shown:?}");
            }
        }
    }

    #[test]
    fn a_normalised_path_is_normal(path in path_text(), merge: bool, slashes: bool) {
        let rules = PathRules { merge_slashes: merge, allow_encoded_slashes: slashes };
        if let Ok(normal) = normalize(&path, rules) {
            prop_assert!(normal.starts_with('/'));
            // Normalising again changes nothing.
            let again = normalize(&normal, rules).unwrap();
            prop_assert!(matches!(again, Cow::Borrowed(_)), "{path:?} -> {normal:?} -> {again:?}");
            let lower = normal.to_ascii_lowercase();
            for segment in lower.split('/') {
                prop_assert!(segment != "." && segment != "..", "{path:?} -> {normal:?}");
                let name = segment.split(';').next().unwrap();
                prop_assert!(name != "." && name != "..", "{path:?} -> {normal:?}");
            }
            prop_assert!(!lower.contains("%2e") && !lower.contains('\\') && !lower.contains("%5c"));
            prop_assert!(slashes || !lower.contains("%2f"));
            prop_assert!(!merge || !normal.contains("//"));
            let key = routing_key(&normal);
            prop_assert!(key.starts_with('/') && !key.contains("//") && !key.contains(';'));
            for n in 0..4 {
                prop_assert!(strip_segments(&normal, n).starts_with('/'));
            }
        }
    }

    #[test]
    fn no_path_panics(path in "\\PC*") {
        let _ = normalize(&path, PathRules::default());
        let _ = routing_key(&path);
        let _ = strip_segments(&path, 2);
    }

    #[test]
    fn no_claims_payload_panics(payload in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Claims::parse(payload);
    }

    #[test]
    fn no_token_text_panics_or_validates(text in "[A-Za-z0-9_.=-]{0,200}") {
        prop_assert!(validator().validate(&text, &policy(), NOW).is_err());
    }

    #[test]
    fn no_response_head_panics(head in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut buf = BytesMut::from(&head[..]);
        let _ = wire::parse_response_head(&mut buf, &Method::GET, &mut http::HeaderMap::new());
    }

    #[test]
    fn no_login_body_panics(body in prop::collection::vec(any::<u8>(), 0..300), json: bool) {
        let req = portero::dialect::TokenRequest {
            endpoint: portero::config::Endpoint::Token,
            body: &body,
            json,
            query: None,
            path: "/",
            client: None,
            now: chrono::Utc::now(),
        };
        if let Ok(fields) = portero::dialect::json_object(&req) {
            for name in ["username", "password", "clientId", "client_id", "refreshToken"] {
                let _ = portero::dialect::string_field(&fields, name);
            }
        }
    }

    #[test]
    fn no_config_text_panics(text in "\\PC{0,400}") {
        let _ = portero::config::parse(&text, Path::new("/nonexistent/gateway.toml"));
    }

    #[test]
    fn a_response_head_reads_back_as_written(
        status in 200u16..600,
        fields in prop::collection::vec(("x-[a-z]{1,8}", "[!-~]([ -~]{0,30}[!-~])?"), 0..8),
        length in 0u64..100_000,
    ) {
        let mut text = format!("HTTP/1.1 {status} Whatever\r\n");
        for (name, value) in &fields {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str(&format!("content-length: {length}\r\n\r\n"));
        let mut buf = BytesMut::from(text.as_bytes());
        let head = wire::parse_response_head(&mut buf, &Method::GET, &mut http::HeaderMap::new()).unwrap().unwrap();
        prop_assert_eq!(head.status.as_u16(), status);
        prop_assert!(buf.is_empty());
        for (name, value) in &fields {
            let got: Vec<&str> = head.headers.get_all(name.as_str()).iter().map(|v| v.to_str().unwrap()).collect();
            prop_assert!(got.contains(&value.as_str()), "{name}: {got:?}");
        }
    }

    #[test]
    fn a_request_head_and_chunked_body_read_back_as_written(
        path in "/[a-z0-9/?=&]{0,40}",
        fields in prop::collection::vec(("x-[a-z]{1,8}", "[!-~]{1,20}"), 0..8),
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..6),
    ) {
        let mut headers = HeaderMap::new();
        for (name, value) in &fields {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let mut out = Vec::new();
        wire::write_head(
            &mut out,
            (&Method::POST, &path),
            &headers,
            "h:1",
            RequestFraming::Chunked,
            |_| {},
        );
        let head_len = out.len();
        for chunk in &chunks {
            wire::chunk(&mut out, chunk);
        }
        out.extend_from_slice(wire::LAST_CHUNK);

        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut slots);
        let parsed = req.parse(&out).unwrap();
        prop_assert_eq!(parsed, httparse::Status::Complete(head_len));
        prop_assert_eq!(req.path, Some(path.as_str()));
        prop_assert_eq!(req.method, Some("POST"));
        let te: Vec<&[u8]> = req.headers.iter().filter(|h| h.name == "transfer-encoding").map(|h| h.value).collect();
        prop_assert_eq!(te, vec![&b"chunked"[..]]);
        for (name, value) in &fields {
            prop_assert!(req.headers.iter().any(|h| h.name == name && h.value == value.as_bytes()));
        }
        // The body de-frames to the chunks, in order.
        let mut rest = &out[head_len..];
        let mut body = Vec::new();
        loop {
            let (used, size) = match httparse::parse_chunk_size(rest).unwrap() {
                httparse::Status::Complete(c) => c,
                httparse::Status::Partial => panic!("partial chunk size"),
            };
            rest = &rest[used..];
            if size == 0 {
                prop_assert_eq!(rest, b"\r\n");
                break;
            }
            body.extend_from_slice(&rest[..size as usize]);
            prop_assert_eq!(&rest[size as usize..size as usize + 2], b"\r\n");
            rest = &rest[size as usize + 2..];
        }
        prop_assert_eq!(body, chunks.concat());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any one byte of a good token changed, to any other byte: refused.
    #[test]
    fn a_token_with_any_byte_changed_never_validates(
        es in any::<bool>(),
        at in any::<prop::sample::Index>(),
        to in any::<u8>(),
    ) {
        let good = token(if es { Algorithm::ES256 } else { Algorithm::HS256 });
        // Checked from scratch, and beside the good token kept verified.
        let (v, kept) = (validator(), validator_keeping(16));
        prop_assert!(v.validate(&good, &policy(), NOW).is_ok());
        prop_assert!(kept.validate(&good, &policy(), NOW).is_ok());
        let mut bytes = good.clone().into_bytes();
        let i = at.index(bytes.len());
        prop_assume!(bytes[i] != to);
        bytes[i] = to;
        prop_assert!(kept.cached(&bytes).is_none(), "byte {i} changed is found kept");
        let Ok(tampered) = String::from_utf8(bytes) else { return Ok(()) };
        for v in [&v, &kept] {
            prop_assert!(
                v.validate(&tampered, &policy(), NOW).is_err(),
                "byte {i} of {good} changed to {to:#x} still validates"
            );
        }
    }
}

/// Exhaustively: every position of an HS256 token, and the last characters
/// of each part of an ES256 one (its checks are slow in a debug build),
/// changed to every other character of the base64url alphabet and the
/// separator. A decoder that ignored the unused low bits of the last
/// character of a part would let some of these through.
#[test]
fn every_one_character_change_of_a_token_is_refused() {
    let v = validator();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    for alg in [Algorithm::HS256, Algorithm::ES256] {
        let good = token(alg);
        assert!(v.validate(&good, &policy(), NOW).is_ok());
        let part_ends: Vec<usize> = good
            .match_indices('.')
            .map(|(i, _)| i)
            .chain([good.len()])
            .collect();
        let positions: Vec<usize> = (0..good.len())
            .filter(|&i| {
                alg == Algorithm::HS256 || part_ends.iter().any(|&end| i < end && i + 3 >= end)
            })
            .collect();
        for i in positions {
            for &c in alphabet {
                let mut bytes = good.clone().into_bytes();
                if bytes[i] == c {
                    continue;
                }
                bytes[i] = c;
                let tampered = String::from_utf8(bytes).unwrap();
                assert!(
                    v.validate(&tampered, &policy(), NOW).is_err(),
                    "{alg:?}: position {i} changed to {:?} still validates",
                    c as char
                );
            }
        }
    }
}
