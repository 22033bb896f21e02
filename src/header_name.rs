//! How an upstream may read a name it is sent: header names as CGI, WSGI
//! and Rack fold them, cookie and query parameter names as PHP, ASP.NET
//! and Python do. Pure: the config's checks, the rules and the request
//! path compare names alike through it.

/// Header names the way CGI, WSGI and Rack read them: `_` and `-` alike,
/// case ignored.
pub fn same_field(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes().zip(b.bytes()).all(|(x, y)| {
            let fold = |c: u8| {
                if c == b'_' {
                    b'-'
                } else {
                    c.to_ascii_lowercase()
                }
            };
            fold(x) == fold(y)
        })
}

/// Whether an upstream could read the cookie or query parameter `written`
/// as `name`: ASP.NET ignores case, PHP trims leading spaces and reads
/// `.` and ` ` as `_`, Python's cookie parser trims spaces around the name.
pub fn same_name(written: &str, name: &str) -> bool {
    let written = written.trim();
    let fold = |c: u8| match c {
        b'.' | b' ' => b'_',
        c => c.to_ascii_lowercase(),
    };
    written.len() == name.len()
        && written
            .bytes()
            .zip(name.bytes())
            .all(|(a, b)| fold(a) == fold(b))
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

/// Whether some upstream could read the cookie name `written` as `name`.
pub fn loosely_same_cookie(written: &[u8], name: &str) -> bool {
    written == name.as_bytes() || folded(written).eq(folded(name.as_bytes()))
}

/// Whether the cookie name `written`, read leniently, begins with `prefix`
/// (lower-case letters and digits).
pub fn cookie_begins(written: &[u8], prefix: &[u8]) -> bool {
    let mut letters = folded(written);
    prefix.iter().all(|p| letters.next() == Some(*p))
}

/// The cookie names an upstream may read in one `;`-separated pair of a
/// `Cookie` header: the pair's own, and any `name=` inside its value after
/// a space, a tab or a comma (Python's `SimpleCookie` reads those; RFC
/// 2109 separated cookies with `,`). A pair without `=` names nothing.
pub fn cookie_names(pair: &[u8]) -> impl Iterator<Item = &[u8]> {
    let (own, value) = match pair.iter().position(|b| *b == b'=') {
        Some(at) => (Some(&pair[..at]), &pair[at + 1..]),
        None => (None, &[][..]),
    };
    // Most values (a session id, a token) hold no `=`: one quick look.
    let value = if value.contains(&b'=') {
        value
    } else {
        &[][..]
    };
    let inner = value
        .split(|b| matches!(b, b' ' | b'\t' | b','))
        .filter_map(|piece| piece.iter().position(|b| *b == b'=').map(|at| &piece[..at]));
    own.into_iter().chain(inner)
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
        for (i, written) in cookie_names(pair).enumerate() {
            if !loosely_same_cookie(written, name) {
                continue;
            }
            if found.is_some() {
                return Err(());
            }
            // Only the pair's own name, exactly as configured, is the cookie.
            let exact = i == 0 && written.trim_ascii() == name.as_bytes();
            found = Some(exact.then(|| pair[written.len() + 1..].trim_ascii()));
        }
    }
    Ok(found.flatten())
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
    fn a_header_that_is_not_utf8_hides_no_copy() {
        let values: [&[u8]; 2] = [b"sid=x", b"a=\xff; sid=y"];
        assert_eq!(one_cookie(values.into_iter(), "sid"), Err(()));
        let alone: [&[u8]; 1] = [b"a=\xff; sid=y"];
        assert_eq!(one_cookie(alone.into_iter(), "sid"), Ok(Some(&b"y"[..])));
    }
}
