//! A proof's claims, its payload's JSON. Clients write a flat object of
//! plain strings and integers, read here in one pass without serde; any
//! other JSON (an escape, a fraction, a nested value, a member twice, an
//! error) is left to serde_json, so every payload reads as serde reads it.

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

/// The claims of `json`, or `None` where it is no such object.
pub fn read(json: &[u8]) -> Option<Payload<'_>> {
    plain(json).or_else(|| object(json))
}

/// `json` as serde_json reads it, if it is an object (RFC 7519 §7.2):
/// serde would read a struct from an array too.
pub fn object<'a, T: serde::Deserialize<'a>>(json: &'a [u8]) -> Option<T> {
    let first = json.iter().find(|b| !b" \t\n\r".contains(b));
    (first == Some(&b'{'))
        .then(|| serde_json::from_slice(json).ok())
        .flatten()
}

/// A value of the plain form.
enum Value<'a> {
    Text(&'a str),
    Integer(i64),
}

/// `json` read if it is an object of plain members only: keys and texts
/// of printable ASCII without escapes, integers of at most 18 digits,
/// each claim once; `None` for anything else.
fn plain(json: &[u8]) -> Option<Payload<'_>> {
    let mut at = Reader { json, i: 0 };
    let mut payload = Payload::default();
    let mut seen = 0u8;
    at.expect(b'{')?;
    if at.peek()? == b'}' {
        at.i += 1;
    } else {
        loop {
            let key = at.text()?;
            at.expect(b':')?;
            let value = at.value()?;
            let slot = match key {
                "jti" => Some((1, &mut payload.jti)),
                "htm" => Some((2, &mut payload.htm)),
                "htu" => Some((4, &mut payload.htu)),
                "ath" => Some((8, &mut payload.ath)),
                "nonce" => Some((16, &mut payload.nonce)),
                "iat" => {
                    let (Value::Integer(n), 0) = (&value, seen & 32) else {
                        return None;
                    };
                    seen |= 32;
                    payload.iat = Some(*n as f64);
                    None
                }
                _ => None,
            };
            if let Some((bit, slot)) = slot {
                let (Value::Text(text), 0) = (value, seen & bit) else {
                    return None;
                };
                seen |= bit;
                *slot = Cow::Borrowed(text);
            }
            match at.next_token()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
    }
    at.skip_space();
    (at.i == json.len()).then_some(payload)
}

struct Reader<'a> {
    json: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.json.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte past white space, not taken.
    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.json.get(self.i).copied()
    }

    /// The next byte past white space, taken.
    fn next_token(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next_token()? == byte).then_some(())
    }

    /// A string of printable ASCII without escapes, as its text.
    fn text(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let rest = &self.json[self.i..];
        let end = memchr::memchr(b'"', rest)?;
        let text = &rest[..end];
        // One pass without early exit, which the compiler vectorises.
        let unplain = text.iter().fold(false, |bad, &b| {
            bad | !(0x20..=0x7e).contains(&b) | (b == b'\\')
        });
        if unplain {
            return None;
        }
        self.i += end + 1;
        std::str::from_utf8(text).ok()
    }

    fn value(&mut self) -> Option<Value<'a>> {
        match self.peek()? {
            b'"' => self.text().map(Value::Text),
            b'-' | b'0'..=b'9' => self.integer().map(Value::Integer),
            _ => None,
        }
    }

    /// An integer as JSON writes one: no leading zero, no `+`.
    fn integer(&mut self) -> Option<i64> {
        let negative = self.json[self.i] == b'-';
        let start = self.i + usize::from(negative);
        let digits = self.json[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let end = start + digits;
        let leading_zero = digits > 1 && self.json[start] == b'0';
        // `-0` is serde's -0.0: left to it.
        let minus_zero = negative && digits == 1 && self.json[start] == b'0';
        if digits == 0 || digits > 18 || leading_zero || minus_zero {
            return None;
        }
        // A fraction or an exponent is not plain.
        if let Some(b'.' | b'e' | b'E') = self.json.get(end) {
            return None;
        }
        let magnitude = self.json[start..end]
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
        self.i = end;
        Some(if negative { -magnitude } else { magnitude })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the plain reader reads a text, serde_json reads the same.
    fn agree(json: &str) -> Option<Payload<'_>> {
        let serde: Option<Payload> = serde_json::from_str(json).ok();
        if let Some(plain) = plain(json.as_bytes()) {
            assert_eq!(Some(&plain), serde.as_ref(), "{json}");
        }
        assert_eq!(read(json.as_bytes()), serde, "{json}");
        serde
    }

    #[test]
    fn plain_payloads_read_as_serde_reads_them() {
        let typical = r#"{"jti":"1-a9","htm":"GET","htu":"https://api.example/v1","iat":1764000000,"ath":"fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"}"#;
        let read = plain(typical.as_bytes()).expect("plain");
        assert_eq!((&*read.jti, &*read.htm), ("1-a9", "GET"));
        assert_eq!(read.iat, Some(1764000000.0));
        assert!(matches!(read.htu, Cow::Borrowed(_)));
        for json in [
            typical,
            r#" { "jti" : "a" , "iat" : -5 , "extra" : 7 , "x": "y" } "#,
            "{}",
            "{\"jti\":\"a\"}\n",
            r#"{"iat":0}"#,
            r#"{"nonce":"n","htm":"POST"}"#,
            r#"{"x":"a","x":"b"}"#,
        ] {
            assert!(plain(json.as_bytes()).is_some(), "{json}");
            assert!(agree(json).is_some(), "{json}");
        }
    }

    #[test]
    fn other_json_is_left_to_serde_and_read_alike() {
        let taken = [
            r#"{"htu":"https:\/\/api.example\/v1"}"#,
            r#"{"jti":"\u0061"}"#,
            r#"{"jti":"é"}"#,
            r#"{"iat":1764000000.5}"#,
            r#"{"iat":1.764e9}"#,
            r#"{"iat":12345678901234567890}"#,
            r#"{"iat":-0}"#,
            r#"{"cnf":{"jkt":"x"},"list":[1,2],"t":true,"n":null}"#,
        ];
        for json in taken {
            assert!(plain(json.as_bytes()).is_none(), "{json}");
            assert!(agree(json).is_some(), "{json}");
        }
        let refused = [
            r#"{"jti":"a","jti":"b"}"#,
            r#"{"iat":1,"iat":2}"#,
            r#"{"jti":1}"#,
            r#"{"iat":"1"}"#,
            r#"{"iat":01}"#,
            r#"{"iat":-}"#,
            r#"{"iat":+1}"#,
            r#"{"jti":"a",}"#,
            r#"{"jti":"a"} x"#,
            r#"{"jti":"a""#,
            r#"{"jti" "a"}"#,
            r#"{"jti":"a\"}"#,
            r#"{"nonce":null}"#,
            "[]",
            "",
            "{",
        ];
        for json in refused {
            assert!(plain(json.as_bytes()).is_none(), "{json}");
            assert!(agree(json).is_none(), "{json}");
        }
        // Claims are an object (RFC 7519 §7.2), though serde would read
        // the struct from an array.
        for array in [
            r#"["a","GET","https://api.example/notes",1800000000]"#,
            r#" ["a","GET","https://api.example/notes",1800000000,"h","n"]"#,
        ] {
            assert!(serde_json::from_str::<Payload>(array).is_ok(), "{array}");
            assert_eq!(read(array.as_bytes()), None, "{array}");
        }
    }

    /// xorshift64*: a fixed sequence of payloads, no dependency.
    struct Sequence(u64);

    impl Sequence {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
        }

        fn pick<'p>(&mut self, pieces: &[&'p str]) -> &'p str {
            pieces[self.below(pieces.len())]
        }
    }

    #[test]
    fn generated_payloads_read_as_serde_reads_them() {
        let space = ["", "", " ", "\t", "\n", "\r", "\u{a0}", "\u{feff}", "\u{b}"];
        let keys = [
            "\"jti\"",
            "\"htm\"",
            "\"htu\"",
            "\"iat\"",
            "\"ath\"",
            "\"nonce\"",
            "\"jt\"",
            "\"\"",
            "\"JTI\"",
            "\"iat \"",
            "\"j\\u0074i\"",
            "\"\u{e9}\"",
            "jti",
        ];
        let values = [
            "\"a\"",
            "\"\"",
            "\"GET\"",
            "\"a\\\"b\"",
            "\"\\/\"",
            "\"\u{7f}\"",
            "\"\t\"",
            "\"\u{e9}\"",
            "0",
            "-0",
            "-1",
            "01",
            "-",
            "1.0",
            "1e3",
            "1800000000",
            "999999999999999999",
            "-999999999999999999",
            "9223372036854775808",
            "+1",
            "null",
            "true",
            "{}",
            "[1]",
            "{\"jti\":\"x\"}",
            "NaN",
            "1 2",
        ];
        let mut sequence = Sequence(0x9E37_79B9_7F4A_7C15);
        let (mut plain_read, mut left) = (0, 0);
        for _ in 0..50_000 {
            let mut json = String::from(sequence.pick(&space));
            json.push('{');
            for member in 0..sequence.below(6) {
                if member > 0 {
                    json.push(',');
                }
                for piece in [&space[..], &keys, &space, &[":"], &space, &values] {
                    json.push_str(sequence.pick(piece));
                }
            }
            json.push_str(sequence.pick(&space));
            json.push('}');
            if sequence.below(4) == 0 {
                // A piece of JSON's syntax put anywhere.
                let at = sequence.below(json.len() + 1);
                if json.is_char_boundary(at) {
                    json.insert_str(at, sequence.pick(&["{", "}", "[", ":", ",", "\"", "\\"]));
                }
            }
            let serde: Option<Payload> = object(json.as_bytes());
            match plain(json.as_bytes()) {
                Some(read) => {
                    let bits = |p: &Payload| p.iat.map(f64::to_bits);
                    let serde = serde.as_ref().expect("serde refuses what plain reads");
                    assert_eq!((&read, bits(&read)), (serde, bits(serde)), "{json}");
                    plain_read += 1;
                }
                None => left += 1,
            }
            assert_eq!(read(json.as_bytes()), serde, "{json}");
        }
        // Both readers had their share.
        assert!(plain_read > 1_000 && left > 1_000, "{plain_read} {left}");
    }
}
