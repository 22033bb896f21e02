//! A verified token's claims: the decoded payload kept whole, and where each
//! claim sits in it. Strings, the usual claim, are read in place and numbers
//! kept as they are; only escaped strings and other values are built on the
//! heap. So a usual token costs two allocations, however many claims it carries.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// A token's claims, in token order. A token carries a handful and a request
/// looks up a few, so a flat list beats a hash map. A claim named twice makes
/// the token malformed: parsers disagree on which copy wins, and a token must
/// mean the same to portero as to the upstream that reads it.
#[derive(Debug)]
pub struct Claims {
    payload: String,
    entries: Vec<(Text, Stored)>,
}

/// One claim's value, borrowed from [`Claims`].
#[derive(Debug, Clone, Copy)]
pub enum Claim<'a> {
    Str(&'a str),
    Number(&'a Number),
    /// Any other JSON value: true, false, null, an array or an object.
    Json(&'a Value),
}

impl<'a> Claim<'a> {
    /// A value inside a claim, as a claim: strings and numbers as such.
    pub fn of(value: &'a Value) -> Claim<'a> {
        match value {
            Value::String(s) => Claim::Str(s),
            Value::Number(n) => Claim::Number(n),
            other => Claim::Json(other),
        }
    }

    pub fn as_str(self) -> Option<&'a str> {
        match self {
            Claim::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(self) -> Option<&'a [Value]> {
        match self {
            Claim::Json(Value::Array(list)) => Some(list),
            _ => None,
        }
    }
}

/// A string from the payload: where it sits when it had no escapes, else its
/// unescaped copy.
#[derive(Debug)]
enum Text {
    InPayload(Range<usize>),
    Owned(Box<str>),
}

/// Kept small: a claim list is filled for every token whose signature is checked.
#[derive(Debug)]
enum Stored {
    Text(Text),
    Number(Number),
    Json(Box<Value>),
}

impl Claims {
    /// Parses a token's decoded payload, which must be one JSON object.
    pub fn parse(payload: Vec<u8>) -> Result<Claims, serde_json::Error> {
        let payload = String::from_utf8(payload)
            .map_err(|_| serde_json::Error::custom("payload is not UTF-8"))?;
        let mut de = serde_json::Deserializer::from_str(&payload);
        let entries = EntriesSeed { payload: &payload }.deserialize(&mut de)?;
        de.end()?;
        Ok(Claims { payload, entries })
    }

    // Inlined so that a constant name compares without a call per claim.
    #[inline(always)]
    pub fn get(&self, name: &str) -> Option<Claim<'_>> {
        let (_, value) = self.entries.iter().find(|(n, _)| self.is(n, name))?;
        Some(self.claim(value))
    }

    /// Every claim with its name, in token order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Claim<'_>)> {
        self.entries
            .iter()
            .map(|(name, value)| (self.text(name), self.claim(value)))
    }

    #[inline(always)]
    fn claim<'a>(&'a self, value: &'a Stored) -> Claim<'a> {
        match value {
            Stored::Text(t) => Claim::Str(self.text(t)),
            Stored::Number(n) => Claim::Number(n),
            Stored::Json(v) => Claim::Json(v),
        }
    }

    /// The claim `name` when it is a string.
    #[inline]
    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name)?.as_str()
    }

    /// Whether `t` is `name`; bytes, so no UTF-8 boundary checks per claim.
    #[inline]
    fn is(&self, t: &Text, name: &str) -> bool {
        match t {
            Text::InPayload(span) => {
                span.len() == name.len()
                    && &self.payload.as_bytes()[span.clone()] == name.as_bytes()
            }
            Text::Owned(s) => **s == *name,
        }
    }

    #[inline]
    fn text<'a>(&'a self, t: &'a Text) -> &'a str {
        resolve(&self.payload, t)
    }
}

#[inline]
fn resolve<'a>(payload: &'a str, t: &'a Text) -> &'a str {
    match t {
        Text::InPayload(span) => &payload[span.clone()],
        Text::Owned(s) => s,
    }
}

/// Reads the top-level object; `payload` is the text being parsed, so
/// borrowed strings can be recorded as spans of it.
/// Claims a token may have before their names are kept in a set.
const SCANNED_NAMES: usize = 16;

struct EntriesSeed<'p> {
    payload: &'p str,
}

impl<'de> DeserializeSeed<'de> for EntriesSeed<'de> {
    type Value = Vec<(Text, Stored)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'de> {
    type Value = Vec<(Text, Stored)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let payload = self.payload;
        let mut entries: Vec<(Text, Stored)> = Vec::with_capacity(8);
        // A usual token's few names are compared in a scan; past that, a
        // set keeps a token of thousands of claims linear to refuse.
        let mut names: Option<HashSet<Box<str>>> = None;
        while let Some(name) = map.next_key_seed(StoredSeed { payload })? {
            // JSON object keys are always strings.
            let Stored::Text(name) = name else {
                return Err(A::Error::custom("claim name is not a string"));
            };
            let name_str = resolve(payload, &name);
            let twice = match &mut names {
                Some(set) => !set.insert(name_str.into()),
                None => entries.iter().any(|(n, _)| resolve(payload, n) == name_str),
            };
            if twice {
                return Err(A::Error::custom(format_args!("claim {name_str:?} twice")));
            }
            if names.is_none() && entries.len() == SCANNED_NAMES {
                let held = entries.iter().map(|(n, _)| resolve(payload, n).into());
                names = Some(held.chain([name_str.into()]).collect());
            }
            let value = map.next_value_seed(StoredSeed { payload })?;
            entries.push((name, value));
        }
        Ok(entries)
    }
}

/// Where a borrowed string sits in the payload it was borrowed from.
fn span_in(payload: &str, s: &str) -> Range<usize> {
    let start = s.as_ptr() as usize - payload.as_ptr() as usize;
    start..start + s.len()
}

/// Reads one value (or a key: it comes as a string).
struct StoredSeed<'p> {
    payload: &'p str,
}

impl<'de> DeserializeSeed<'de> for StoredSeed<'de> {
    type Value = Stored;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Stored, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StoredSeed<'de> {
    type Value = Stored;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, s: &'de str) -> Result<Stored, E> {
        Ok(Stored::Text(Text::InPayload(span_in(self.payload, s))))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Stored, E> {
        Ok(Stored::Text(Text::Owned(s.into())))
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Stored, E> {
        Ok(Stored::Json(Box::new(Value::Bool(b))))
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Stored, E> {
        Ok(Stored::Number(n.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Stored, E> {
        Ok(Stored::Number(n.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Stored, E> {
        // JSON has no NaN or infinity, so every f64 the parser yields is a Number.
        Number::from_f64(n)
            .map(Stored::Number)
            .ok_or_else(|| E::custom("not a JSON number"))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Stored, E> {
        Ok(Stored::Json(Box::new(Value::Null)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Stored, A::Error> {
        Nested.visit_seq(seq).map(|v| Stored::Json(Box::new(v)))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Stored, A::Error> {
        Nested.visit_map(map).map(|v| Stored::Json(Box::new(v)))
    }
}

/// A value inside a claim, as `serde_json::Value` reads it but for one
/// thing: a key twice in an object makes the token malformed, as a claim
/// named twice does. Roles and rules read nested objects, and a parser
/// that keeps the first copy (where serde_json keeps the last) must not
/// see another token than portero did.
struct Nested;

impl<'de> DeserializeSeed<'de> for Nested {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Nested {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Value, E> {
        Ok(n.into())
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Value, E> {
        Ok(n.into())
    }

    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Value, E> {
        Number::from_f64(n)
            .map(Value::Number)
            .ok_or_else(|| E::custom("not a JSON number"))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.into()))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Nested)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(A::Error::custom(format_args!(
                    "key {key:?} twice in a claim"
                )));
            }
            let value = map.next_value_seed(Nested)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Claims {
        Claims::parse(json.into()).unwrap()
    }

    #[test]
    fn reads_each_kind_of_value() {
        let c = parse(
            r#"{"sub":"alice","n":42,"neg":-1,"f":1.5,"b":true,"z":null,
                "list":["a",1],"obj":{"k":"v"}}"#,
        );
        assert_eq!(c.str("sub"), Some("alice"));
        assert!(matches!(c.get("n"), Some(Claim::Number(n)) if n.as_i64() == Some(42)));
        assert!(matches!(c.get("neg"), Some(Claim::Number(n)) if n.as_i64() == Some(-1)));
        assert!(matches!(c.get("f"), Some(Claim::Number(n)) if n.as_f64() == Some(1.5)));
        assert!(matches!(c.get("b"), Some(Claim::Json(Value::Bool(true)))));
        assert!(matches!(c.get("z"), Some(Claim::Json(Value::Null))));
        assert_eq!(
            c.get("list").and_then(Claim::as_array),
            Some(&[Value::from("a"), Value::from(1)][..])
        );
        assert!(matches!(c.get("obj"), Some(Claim::Json(Value::Object(m))) if m["k"] == "v"));
        assert!(c.get("missing").is_none());
        assert_eq!(c.str("n"), None, "a number is not a string");
    }

    #[test]
    fn escaped_names_and_values_mean_what_they_say() {
        let c = parse(r#"{"s\u0075b":"al\u0069ce","quote":"a\"b"}"#);
        assert_eq!(c.str("sub"), Some("alice"));
        assert_eq!(c.str("quote"), Some("a\"b"));
    }

    #[test]
    fn agrees_with_serde_json_on_unicode_and_nesting() {
        let json = r#"{"név":"Zoë 🚪","é\u00e9":"\ud83d\udeaa","deep":{"a":[1,{"b":null}]},"big":18446744073709551615,"exp":1.8e9}"#;
        let c = parse(json);
        let want: serde_json::Map<String, Value> = serde_json::from_str(json).unwrap();
        for (name, value) in &want {
            let got = match c.get(name).unwrap() {
                Claim::Str(s) => Value::from(s),
                Claim::Number(n) => Value::Number(n.clone()),
                Claim::Json(v) => v.clone(),
            };
            assert_eq!(&got, value, "claim {name:?}");
        }
    }

    #[test]
    fn a_double_is_read_as_written() {
        // One unit in the last place off without exact parsing.
        let c = parse(r#"{"x":0.9509489954070259,"n":{"y":[0.9509489954070259]}}"#);
        let exact = |claim: Option<Claim<'_>>| match claim {
            Some(Claim::Number(n)) => n.as_f64(),
            Some(Claim::Json(v)) => v["y"][0].as_f64(),
            _ => None,
        };
        assert_eq!(exact(c.get("x")), Some(0.9509489954070259));
        assert_eq!(exact(c.get("n")), Some(0.9509489954070259));
        let c = parse(r#"{"x":9.066630378804177e239}"#);
        assert_eq!(exact(c.get("x")), Some(9.066630378804177e239));
    }

    proptest::proptest! {
        /// Every double, written as its shortest round-trip spelling (the
        /// one JSON writers use), is read back as exactly that double.
        #[test]
        fn every_double_round_trips(bits in proptest::prelude::any::<u64>()) {
            let written = f64::from_bits(bits);
            proptest::prop_assume!(written.is_finite());
            let c = parse(&format!(r#"{{"x":{written:?}}}"#));
            let Some(Claim::Number(n)) = c.get("x") else { panic!("{written:?}") };
            proptest::prop_assert_eq!(n.as_f64().map(f64::to_bits), Some(bits), "{:?}", written);
        }
    }

    #[test]
    fn a_claim_named_twice_is_refused_even_when_spelt_differently() {
        assert!(Claims::parse(br#"{"sub":"a","sub":"b"}"#.into()).is_err());
        assert!(Claims::parse(br#"{"sub":"a","s\u0075b":"b"}"#.into()).is_err());
    }

    #[test]
    fn thousands_of_claims_are_refused_in_linear_time() {
        // Each name is compared with the earlier ones: a scan of each
        // would be 200 million comparisons here (seconds); a set, 20,000.
        let n = 20_000;
        let mut json = String::from("{");
        for i in 0..n {
            json.push_str(&format!("\"c{i}\":{i},"));
        }
        json.push_str("\"c7\":0}");
        let started = std::time::Instant::now();
        assert!(Claims::parse(json.into_bytes()).is_err());
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_millis(500), "{took:?}");
        // Below and at the threshold, and just past it, duplicates still count.
        for n in [2, SCANNED_NAMES, SCANNED_NAMES + 1, SCANNED_NAMES + 2] {
            let names: Vec<String> = (0..n).map(|i| format!("\"c{i}\":0")).collect();
            let unique = format!("{{{}}}", names.join(","));
            assert!(Claims::parse(unique.into_bytes()).is_ok(), "{n}");
            let twice = format!("{{{},\"c{}\":1}}", names.join(","), n - 1);
            assert!(Claims::parse(twice.into_bytes()).is_err(), "{n}");
        }
    }

    #[test]
    fn a_key_twice_inside_a_claim_is_refused_at_any_depth() {
        for bad in [
            &br#"{"realm_access":{"roles":["user"],"roles":["admin"]}}"#[..],
            br#"{"org":{"tenant":{"id":"x","\u0069d":"acme"}}}"#,
            br#"{"list":[{"a":1,"a":2}]}"#,
        ] {
            let e = Claims::parse(bad.into()).unwrap_err();
            assert!(e.to_string().contains("twice in a claim"), "{e}");
        }
        let c = parse(r#"{"org":{"tenant":{"id":"acme","ids":[1,2.5,null,true,{"k":"v"}]}}}"#);
        let org = c.get("org").unwrap();
        assert!(matches!(org, Claim::Json(v) if v["tenant"]["ids"][4]["k"] == "v"));
    }

    #[test]
    fn anything_but_one_object_is_refused() {
        for bad in [
            &b"[]"[..],
            b"\"sub\"",
            b"{\"sub\":\"a\"} {}",
            b"{\"sub\":\"a\"",
            b"{\"sub\":\"\xff\"}",
        ] {
            assert!(
                Claims::parse(bad.into()).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
