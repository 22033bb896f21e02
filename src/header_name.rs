//! How an upstream may read a name it is sent: header names as CGI, WSGI
//! and Rack fold them, cookie and query parameter names as PHP, ASP.NET
//! and Python do. Pure: the config's checks, the rules and the request
//! path compare names alike through it.

use std::borrow::Cow;

/// Header names the way CGI, WSGI and Rack read them: `_` and `-` alike,
/// case ignored; and PHP, which reads `.` as `_` too (`x.user.sub` is
/// `HTTP_X_USER_SUB`).
pub fn same_field(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes().zip(b.bytes()).all(|(x, y)| {
            let fold = |c: u8| match c {
                b'_' | b'.' => b'-',
                c => c.to_ascii_lowercase(),
            };
            fold(x) == fold(y)
        })
}

/// Whether a name holds a byte `same_field` reads as `-`.
pub fn spelled_apart(name: &str) -> bool {
    name.bytes().any(|b| b == b'_' || b == b'.')
}

/// Whether an upstream could read the decoded query parameter name
/// `written` as `name`: ASP.NET ignores case (its `OrdinalIgnoreCase`
/// reads `ſ` as `S` and `ı` as `I`), PHP trims leading spaces and reads
/// `.`, ` ` and an unclosed `[` as `_`, Python's cookie parser trims
/// spaces around the name.
pub fn same_name(written: &str, name: &str) -> bool {
    let fold = |c: char| match c {
        '.' | ' ' | '[' => '_',
        c => ascii_case(c).unwrap_or(c),
    };
    written.trim().chars().map(fold).eq(name.chars().map(fold))
}

/// The lower-case ASCII letter or digit a character is compared as, case
/// ignored the way ASP.NET's `OrdinalIgnoreCase` ignores it (a non-ASCII
/// character whose capital is ASCII: `ſ` is `s`, `ı` is `i`).
fn ascii_case(c: char) -> Option<char> {
    if c.is_ascii() {
        return Some(c.to_ascii_lowercase());
    }
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) if u.is_ascii() => Some(u.to_ascii_lowercase()),
        _ => None,
    }
}

/// The parameter names of a query string as written (still escaped):
/// each pair's text before its first `=`, or the whole pair. Pairs end at
/// `&` and at `;` (Rack 2 and Python's `parse_qsl(separator=";")` split
/// on both).
pub fn query_names(query: &str) -> impl Iterator<Item = &str> {
    query
        .split(['&', ';'])
        .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
}

/// Whether some upstream's query parser reads the parameter name
/// `written` (as sent, escaped) as `name`, or as an array or object of
/// that name. Read as the most lenient one does: percent-decoded with `+`
/// as a space (all of them), cut at a NUL (PHP), and `same_name`; with
/// its brackets, `_method[]` and `_method[x]` are `_method` (PHP, Rack,
/// `qs`), and so are `]_method`, `_method]` and `[_method]` (Rack 2 and
/// `qs` drop brackets around a name).
pub fn param_reads_as(written: &str, name: &str) -> bool {
    // One pair's name alone: `+` a space, then the escapes (`%2B` is `+`).
    let decoded = match written.contains(['%', '+']) {
        true => form_urlencoded::parse(written.as_bytes())
            .next()
            .map_or(Cow::Borrowed(""), |(name, _)| name),
        false => Cow::Borrowed(written),
    };
    let decoded = decoded.split('\0').next().unwrap_or_default();
    same_name(decoded, name) || same_name(bracket_base(decoded), name)
}

/// A name with brackets as Rack, `qs` and PHP read it: the brackets
/// before it dropped, then up to the first bracket.
fn bracket_base(name: &str) -> &str {
    let name = name.trim_start_matches(['[', ']']);
    name.split(['[', ']']).next().unwrap_or(name)
}

/// A cookie name as the most lenient upstream could read it: its ASCII
/// letters (lower-cased) and digits, nothing else. PHP reads `.`, ` ` and
/// `[` as `_` and `name[]` as an array named `name`, Python trims Unicode
/// whitespace, ASP.NET ignores case: names that fold alike may be one
/// name to some upstream.
fn folded(name: &[u8]) -> impl Iterator<Item = u8> + '_ {
    name.iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(u8::to_ascii_lowercase)
}

/// A written cookie name's readings before `folded`: PHP 7 percent-decodes
/// cookie names, and ASP.NET reads `ſ` as `s`. Most names have neither
/// an escape nor a byte past ASCII, and are read as they are.
fn decoded_cookie(written: &[u8]) -> Cow<'_, [u8]> {
    if written.iter().all(|b| b.is_ascii() && *b != b'%') {
        return Cow::Borrowed(written);
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode(written).collect();
    let text = String::from_utf8_lossy(&decoded);
    // Only what folds to an ASCII letter or digit is kept, as `folded` would.
    let kept = text
        .chars()
        .filter_map(ascii_case)
        .map(|c| c as u8)
        .collect();
    Cow::Owned(kept)
}

/// Whether some upstream could read the cookie name `written` as `name`:
/// as a whole, or as the array `name[...]` (PHP) is named.
pub fn loosely_same_cookie(written: &[u8], name: &str) -> bool {
    if written == name.as_bytes() {
        return true;
    }
    let written = decoded_cookie(written);
    let array = written.split(|b| *b == b'[').next().unwrap_or_default();
    let same = |w: &[u8]| folded(w).eq(folded(name.as_bytes()));
    same(&written) || (array.len() < written.len() && same(array))
}

/// Whether the cookie name `written`, read leniently, begins with `prefix`
/// (lower-case letters and digits).
pub fn cookie_begins(written: &[u8], prefix: &[u8]) -> bool {
    let written = decoded_cookie(written);
    let mut letters = folded(&written);
    prefix.iter().all(|p| letters.next() == Some(*p))
}

/// The cookie names an upstream may read in one `;`-separated pair of a
/// `Cookie` header: the pair's own (the whole pair when it has no `=`:
/// PHP reads `name` alone as an empty cookie), and every name Python's
/// `SimpleCookie` reads there, as it splits at spaces, tabs and commas
/// too: each word before the `=` (`secure tok=x` is the flag `secure` and
/// the cookie `tok`; `a="x;y" tok=x` reads past the quoted `;`), and in
/// the value each word before an `=`, or before a word that begins with
/// one (`a=b tok=x`, `a=b tok =x`; RFC 2109 separated cookies with `,`).
pub fn cookie_names(pair: &[u8]) -> impl Iterator<Item = &[u8]> {
    let (own, value) = match pair.iter().position(|b| *b == b'=') {
        Some(at) => (&pair[..at], &pair[at + 1..]),
        None => (pair, &[][..]),
    };
    // Most values (a session id, a token) hold no `=`: one quick look.
    let equals = value.contains(&b'=').then_some(value).into_iter();
    let inner = equals.flat_map(|value| {
        let words = words(value);
        let next = words.clone().skip(1).map(Some).chain([None]);
        words
            .zip(next)
            .filter_map(|(word, next)| match word.iter().position(|b| *b == b'=') {
                Some(at) => Some(&word[..at]),
                None => next.is_some_and(|n| n.starts_with(b"=")).then_some(word),
            })
    });
    words(own).chain(inner).filter(|name| !name.is_empty())
}

/// The words of a cookie's text as `SimpleCookie` splits it: at what
/// Python's `\s` matches in a header read as Latin-1 (NBSP and NEL
/// among it), and at commas.
fn words(text: &[u8]) -> impl Iterator<Item = &[u8]> + Clone {
    let apart = |b: &u8| matches!(b, b'\t'..=b'\r' | 0x1c..=0x20 | 0x85 | 0xa0 | b',');
    text.split(apart).filter(|word| !word.is_empty())
}

/// The one cookie `name` among `Cookie` header values, as an upstream
/// would read it: `Ok(None)` when it is absent or only spelled otherwise
/// (another spelling alone is not it); `Err(())` when it comes twice, in
/// any spelling some upstream reads as `name` (`cookie_names`,
/// `loosely_same_cookie`). Read as bytes: a header that is not UTF-8
/// (another site's cookie) hides no copy.
pub fn one_cookie<'a>(
    values: impl Iterator<Item = &'a [u8]>,
    name: &str,
) -> Result<Option<&'a [u8]>, ()> {
    let mut found = None;
    for pair in values.flat_map(|v| v.split(|b| *b == b';')) {
        for written in cookie_names(pair) {
            if !loosely_same_cookie(written, name) {
                continue;
            }
            if found.is_some() {
                return Err(());
            }
            // Only the pair's whole name, exactly as configured and
            // followed by `=`, is the cookie.
            let value = match pair.iter().position(|b| *b == b'=') {
                Some(at) if pair[..at].trim_ascii() == written => Some(&pair[at + 1..]),
                _ => None,
            };
            let exact = written == name.as_bytes();
            found = Some(value.filter(|_| exact).map(<[u8]>::trim_ascii));
        }
    }
    Ok(found.flatten())
}

/// Whether any `Cookie` header of a request names a cookie some upstream
/// reads as `name`, in any spelling and whatever its value.
pub fn any_cookie(headers: &http::HeaderMap, name: &str) -> bool {
    let values = headers.get_all(http::header::COOKIE).iter();
    let mut pairs = values.flat_map(|v| v.as_bytes().split(|b| *b == b';'));
    pairs.any(|pair| cookie_names(pair).any(|written| loosely_same_cookie(written, name)))
}

/// `one_cookie` among a request's `Cookie` headers; a value that is not
/// UTF-8 is no credential (`Ok(None)`).
pub fn one_request_cookie<'a>(
    headers: &'a http::HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, ()> {
    let values = headers.get_all(http::header::COOKIE).iter();
    let value = one_cookie(values.map(|v| v.as_bytes()), name)?;
    Ok(value.and_then(|v| std::str::from_utf8(v).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_fold_underscores_and_case() {
        assert!(same_field("X_User_Sub", "x-user-sub"));
        assert!(same_field("x.user.sub", "x-user-sub"));
        assert!(!same_field("x-user-subx", "x-user-sub"));
    }

    #[test]
    fn names_fold_as_php_and_asp_net_read_them() {
        assert!(same_name(" Access.Token", "access_token"));
        assert!(!same_name("access-token", "access_token"));
    }

    #[test]
    fn one_cookie_is_read_as_upstreams_read_it() {
        let read = |values: &[&'static str]| {
            one_cookie(values.iter().map(|v| v.as_bytes()), "sid")
                .map(|v| v.map(|v| std::str::from_utf8(v).unwrap()))
        };
        assert_eq!(read(&["a=1; sid=x"]), Ok(Some("x")));
        assert_eq!(read(&["a=1"]), Ok(None));
        assert_eq!(
            read(&["SID=x"]),
            Ok(None),
            "another spelling alone is not it"
        );
        assert_eq!(read(&["sid=x", "sid=y"]), Err(()));
        assert_eq!(read(&["sid=x; SID=y"]), Err(()), "nor beside it");
    }

    #[test]
    fn a_copy_some_upstream_reads_as_the_name_is_a_copy() {
        fn read<'a>(values: &[&'a [u8]]) -> Result<Option<&'a [u8]>, ()> {
            one_cookie(values.iter().copied(), "access_token")
        }
        let copies: [&[u8]; 6] = [
            b"access_token=T; \xc2\xa0access_token=e",
            b"access_token=T; access_token\xc2\xa0=e",
            b"access[token=e; access_token=T",
            b"access_token[]=e; access_token=T",
            b"access_token=T; a=b access_token=e",
            b"access_token=T; a=b,ACCESS.TOKEN=e",
        ];
        for copy in copies {
            assert_eq!(read(&[copy]), Err(()), "{}", String::from_utf8_lossy(copy));
        }
        assert_eq!(read(&[b" \taccess_token \t= \tT \t"]), Ok(Some(&b"T"[..])));
        assert_eq!(read(&[b"a=x y; access_token=T"]), Ok(Some(&b"T"[..])));
        assert_eq!(
            read(&[b"access[token=e"]),
            Ok(None),
            "another spelling alone"
        );
    }

    #[test]
    fn a_query_name_is_read_as_the_most_lenient_parser_reads_it() {
        for written in [
            "_method",
            "_%6Dethod",
            "%5F%6D%65%74%68%6F%64",
            "_method%00",
            "_method%00x",
            "]_method",
            "_method]",
            "[_method]",
            "_method[]",
            "_method[x]",
            "+_method",
            "_METHOD",
            ".method",
            "%5Bmethod",
        ] {
            assert!(param_reads_as(written, "_method"), "{written}");
        }
        for written in [
            "method",
            "_methods",
            "x_method",
            "_meth",
            "%5Fmethodx",
            "a[_method]",
        ] {
            assert!(!param_reads_as(written, "_method"), "{written}");
        }
        // ASP.NET's OrdinalIgnoreCase reads `ſ` as `S`.
        assert!(param_reads_as("acce%C5%BF%C5%BF_token", "access_token"));
        assert!(param_reads_as("access%5Btoken", "access_token"));
    }

    #[test]
    fn query_names_end_at_ampersands_and_semicolons() {
        let names: Vec<_> = query_names("a=1;b=2&c&d=x=y&=e").collect();
        assert_eq!(names, ["a", "b", "c", "d", ""]);
    }

    #[test]
    fn a_cookie_copy_php_or_simple_cookie_reads_is_a_copy() {
        let read = |header: &'static str| one_cookie([header.as_bytes()].into_iter(), "tok");
        for copy in [
            "tok=T; tok[0]=e",
            "tok=T; tok[]=e",
            "tok=T; a=b tok =e",
            "tok=T; a=b tok\t= e",
            "tok=T; t%6Fk=e",
            "tok=T; tok",
            "tok; tok=T",
            "tok=T; TOK=e",
            "tok=T; secure tok=e",
            "tok=T; HttpOnly\ttok=e",
            "tok=T; a=\"x;y\" tok=e",
            "tok=T; a=b,tok=e",
        ] {
            assert_eq!(read(copy), Err(()), "{copy}");
        }
        assert_eq!(read("tok=T; a=b=c"), Ok(Some(&b"T"[..])));
        assert_eq!(read("tok=T; a=b=tok=c"), Ok(Some(&b"T"[..])), "a value");
        assert_eq!(read("tok=T; a=dG9r=="), Ok(Some(&b"T"[..])));
        assert_eq!(read("tok"), Ok(None), "a name alone has no value");
        assert_eq!(
            read("=x tok=e"),
            Ok(None),
            "another's value is not the cookie"
        );
    }

    #[test]
    fn a_header_that_is_not_utf8_hides_no_copy() {
        let values: [&[u8]; 2] = [b"sid=x", b"a=\xff; sid=y"];
        assert_eq!(one_cookie(values.into_iter(), "sid"), Err(()));
        let alone: [&[u8]; 1] = [b"a=\xff; sid=y"];
        assert_eq!(one_cookie(alone.into_iter(), "sid"), Ok(Some(&b"y"[..])));
    }
}
