//! A proof's claims, its payload's JSON, read with serde_json. (A reader
//! of flat objects by hand was measured: 3,324 instructions a typical
//! payload against serde's 3,423, not worth its code; sonic-rs, 2,416
//! against serde's 2,606 reading text.)

use std::borrow::Cow;

use serde::Deserialize;

/// A proof's claims; a missing text reads as empty, which no check takes.
/// (Bare `Cow`s: serde borrows those from the payload where it can, and
/// would copy each one wrapped in an `Option` into a `String`.)
#[derive(Debug, Default, PartialEq, Deserialize)]
pub struct Payload<'a> {
    #[serde(borrow, default)]
    pub jti: Cow<'a, str>,
    #[serde(borrow, default)]
    pub htm: Cow<'a, str>,
    #[serde(borrow, default)]
    pub htu: Cow<'a, str>,
    pub iat: Option<f64>,
    #[serde(borrow, default)]
    pub ath: Cow<'a, str>,
    #[serde(borrow, default)]
    pub nonce: Cow<'a, str>,
}

/// `json` as serde_json reads it, if it is an object (RFC 7519 §7.2):
/// serde would read a struct from an array too. Read as text, checked
/// once: from bytes, serde checks each string's UTF-8 on its own (about
/// 500 more instructions a proof's claims).
pub fn object<'a, T: serde::Deserialize<'a>>(json: &'a [u8]) -> Option<T> {
    let first = json.iter().find(|b| !b" \t\n\r".contains(b));
    let text = std::str::from_utf8(json)
        .ok()
        .filter(|_| first == Some(&b'{'))?;
    serde_json::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_borrowed_from_an_object() {
        let typical = r#"{"jti":"1-a9","htm":"GET","htu":"https://api.example/v1","iat":1764000000,"ath":"fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"}"#;
        let claims = object::<Payload>(typical.as_bytes()).expect("claims");
        assert_eq!((&*claims.jti, &*claims.htm), ("1-a9", "GET"));
        assert_eq!(claims.iat, Some(1764000000.0));
        assert!(matches!(claims.htu, Cow::Borrowed(_)), "not copied");
        let escaped =
            object::<Payload>(br#" {"htu":"https:\/\/api.example\/v1","iat":1.5}"#).unwrap();
        assert_eq!(
            (&*escaped.htu, escaped.iat),
            ("https://api.example/v1", Some(1.5))
        );
        assert_eq!(object::<Payload>(b"{}"), Some(Payload::default()));
    }

    #[test]
    fn a_claim_twice_of_the_wrong_type_or_in_an_array_is_refused() {
        for json in [
            r#"{"jti":"a","jti":"b"}"#,
            r#"{"iat":1,"iat":2}"#,
            r#"{"jti":1}"#,
            r#"{"iat":"1"}"#,
            r#"{"nonce":null}"#,
            r#"{"jti":"a",}"#,
            r#"{"jti":"a"} x"#,
            "",
            "{",
        ] {
            assert_eq!(object::<Payload>(json.as_bytes()), None, "{json}");
        }
        // Not UTF-8, in a claim or outside one.
        for bytes in [
            &b"{\"jti\":\"a\xff\"}"[..],
            b"{\"jti\":\"a\"}\xff",
            b"\xef{}",
        ] {
            assert_eq!(object::<Payload>(bytes), None, "{bytes:?}");
        }
        // Claims are an object (RFC 7519 §7.2), though serde would read
        // the struct from an array.
        for array in [
            r#"["a","GET","https://api.example/notes",1800000000]"#,
            r#" ["a","GET","https://api.example/notes",1800000000,"h","n"]"#,
        ] {
            assert!(serde_json::from_str::<Payload>(array).is_ok(), "{array}");
            assert_eq!(object::<Payload>(array.as_bytes()), None, "{array}");
        }
    }
}
