//! A proof's claims, its payload's JSON: the compact, flat object of
//! plain strings and whole numbers clients send read by [`claims`]
//! directly, anything else by serde_json. (Read alone, the bench's
//! 140-byte claims cost 1,916 instructions a read, 2,546 through serde, the
//! UTF-8 check included in both: callgrind, 10,000 against 20,000 reads.
//! A reader by hand of every shape was measured at serde's cost, and
//! sonic-rs at 2,416 against serde's 2,606 without that check.)

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

/// A proof's claims: the shape clients send (a compact, flat object of
/// strings without escapes and whole numbers, each member once) read here,
/// anything else by serde ([`object`]), which reads or refuses it. What
/// this reads serde reads the same (a test compares them on every
/// spelling of a grammar around that shape).
pub fn claims(json: &[u8]) -> Option<Payload<'_>> {
    let text = std::str::from_utf8(json).ok()?;
    plain(text).or_else(|| object(json))
}

/// `json` as a plain object, or `None` where serde must decide.
fn plain(json: &str) -> Option<Payload<'_>> {
    let mut cursor = Cursor { text: json, at: 0 };
    let mut claims = Payload::default();
    let mut seen = 0u8;
    cursor.take(b'{')?;
    if cursor.take(b'}').is_none() {
        loop {
            cursor.member(&mut claims, &mut seen)?;
            if cursor.take(b',').is_none() {
                break;
            }
        }
        cursor.take(b'}')?;
    }
    (cursor.at == json.len()).then_some(claims)
}

/// A place in JSON text, read forward.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    /// One member into `claims`, the others' values skipped; `seen`, the
    /// claims read so far, by their bits.
    fn member(&mut self, claims: &mut Payload<'a>, seen: &mut u8) -> Option<()> {
        let name = self.string()?;
        self.take(b':')?;
        let (bit, text) = match name {
            "jti" => (0, Some(&mut claims.jti)),
            "htm" => (1, Some(&mut claims.htm)),
            "htu" => (2, Some(&mut claims.htu)),
            "ath" => (3, Some(&mut claims.ath)),
            "nonce" => (4, Some(&mut claims.nonce)),
            "iat" => (5, None),
            _ if self.peek()? == b'"' => return self.string().map(drop),
            _ => return self.whole_number().map(drop),
        };
        if *seen & 1 << bit != 0 {
            return None;
        }
        *seen |= 1 << bit;
        match text {
            Some(text) => *text = Cow::Borrowed(self.string()?),
            None => claims.iat = Some(self.whole_number()? as f64),
        }
        Some(())
    }

    /// The next byte.
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// `byte`, taken.
    fn take(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// A string without escapes (or the control characters JSON refuses).
    /// (Inlined: called as a call, nine times a proof, its entry and exit
    /// cost about 15 instructions each time.)
    #[inline(always)]
    fn string(&mut self) -> Option<&'a str> {
        self.take(b'"')?;
        let start = self.at;
        let length = unescaped_length(&self.text.as_bytes()[start..])?;
        self.at = start + length + 1;
        // The closing quote is ASCII: the text ends on a character.
        self.text.get(start..start + length)
    }

    /// A whole number of at most 15 digits (exact as an `f64`), without
    /// a sign or a leading zero. (A fraction or an exponent after it is
    /// no `,` or `}`: [`plain`] leaves the text to serde.)
    fn whole_number(&mut self) -> Option<u64> {
        let rest = &self.text.as_bytes()[self.at..];
        let (mut number, mut digits) = (0u64, 0);
        while let Some(digit) = rest.get(digits).filter(|b| b.is_ascii_digit()) {
            if digits == 15 {
                return None;
            }
            number = number * 10 + u64::from(digit - b'0');
            digits += 1;
        }
        let leading_zero = digits > 1 && rest[0] == b'0';
        if digits == 0 || leading_zero {
            return None;
        }
        self.at += digits;
        Some(number)
    }
}

/// The length of a string's text up to its closing quote, or `None`
/// where a backslash or a control character (< 0x20) comes first or no
/// quote does. Eight bytes at a time (a call to memchr for the quote and
/// a pass for the rest cost about 300 instructions more a proof's claims).
fn unescaped_length(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    // The high bit of each byte of `word` that is zero; the lowest one set
    // is exact (a borrow only runs on from a byte that was zero).
    let zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGH;
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let stops = zero(word ^ (ONES * u64::from(b'"')))
            | zero(word ^ (ONES * u64::from(b'\\')))
            | (word.wrapping_sub(ONES * 0x20) & !word & HIGH);
        if stops != 0 {
            let stop = at + (stops.trailing_zeros() / 8) as usize;
            return (bytes[stop] == b'"').then_some(stop);
        }
        at += 8;
    }
    let stop = at
        + bytes[at..]
            .iter()
            .position(|b| *b == b'"' || *b == b'\\' || *b < 0x20)?;
    (bytes[stop] == b'"').then_some(stop)
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

    #[test]
    fn the_shape_clients_send_is_read_without_serde() {
        let typical = r#"{"jti":"1-a9","htm":"GET","htu":"https://api.example/v1","iat":1764000000,"ath":"fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo","x":"y","n":7}"#;
        let claims = plain(typical).expect("read");
        assert_eq!(
            Some(&claims),
            object::<Payload>(typical.as_bytes()).as_ref()
        );
        assert_eq!((&*claims.jti, claims.iat), ("1-a9", Some(1764000000.0)));
        for serdes in [
            r#"{"htu":"https:\/\/api.example\/v1"}"#,
            r#"{"iat":1.5}"#,
            r#"{"iat":1234567890123456}"#,
            r#"{"x":null}"#,
            r#"{"jti":"a","jti":"a"}"#,
            r#"{ "jti":"a"}"#,
            "{\"jti\":\"a\"}\n",
        ] {
            assert_eq!(plain(serdes), None, "{serdes}");
        }
    }

    /// Pieces of a grammar around the shape [`plain`] reads: names and
    /// values it reads, escapes, numbers and values it leaves to serde,
    /// and spellings that are not JSON.
    fn spellings() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        use proptest::sample::select;
        // Mostly what the direct reading reads, so that a member twice
        // or a number it misreads among plain ones is met often.
        let space = || prop_oneof![6 => select(vec!["", " ", "\n", "\t\r "]), 1 => select(vec!["\x0b", "\u{a0}"])];
        let name = prop_oneof![
            6 => select(vec!["jti", "htm", "htu", "iat", "ath", "nonce", "x"]),
            1 => select(vec!["JTI", "", r"j\u0074i", "iat "]),
        ];
        let value = prop_oneof![
            6 => select(vec![
                r#""a""#, r#""""#, r#""GET""#, r#""https://api.example/v1""#, "\"\u{e9}\u{7f}\"",
                "0", "7", "1764000000", "123456789012345",
            ]),
            3 => select(vec![
                r#""a\"b""#, r#""a\/b""#, "\"\u{1}\"", "\"\t\"", r#""https://api.\"x""#,
                "\"abcdefgh\u{1f}\"", "\"abcdefg\u{7f}\u{e9}\\\\\"", r#""abcdefghijklmnop"#, "00", "01", "-1", "-0", "1.5",
                "1.", "1e3", "1E3", "1234567890123456", "99999999999999999999", "null", "true",
                "{}", "[]", r#"{"a":1}"#, r#"""#, "1x", "",
            ]),
        ];
        let member = (space(), name, space(), space(), value, space())
            .prop_map(|(a, n, b, c, v, d)| format!("{a}\"{n}\"{b}:{c}{v}{d}"));
        let open = prop_oneof![6 => Just("{"), 1 => select(vec![" {", "[", ""])];
        let comma = prop_oneof![6 => Just(","), 1 => select(vec!["", ",,"])];
        let end = prop_oneof![6 => select(vec!["}", "} ", "}\n"]), 1 => select(vec!["},", "}x", "", "}}"])];
        (open, prop::collection::vec((member, comma), 0..6), end).prop_map(
            |(open, members, end)| {
                let mut json = open.to_string();
                for (i, (member, comma)) in members.iter().enumerate() {
                    if i > 0 {
                        json.push_str(comma);
                    }
                    json.push_str(member);
                }
                json + end
            },
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 4096, ..Default::default() })]

        /// Whatever the text, the claims read are serde's: where the
        /// direct reading reads, it reads what serde does.
        #[test]
        fn claims_are_what_serde_reads(json in spellings()) {
            proptest::prop_assert_eq!(claims(json.as_bytes()), object::<Payload>(json.as_bytes()));
        }
    }
}
