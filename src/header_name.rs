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
    same_name_bytes(written.as_bytes(), name)
}

/// `same_name` for a name as written in a request, whatever its bytes.
pub fn same_name_bytes(written: &[u8], name: &str) -> bool {
    let written = written.trim_ascii();
    let fold = |c: u8| match c {
        b'.' | b' ' => b'_',
        c => c.to_ascii_lowercase(),
    };
    written.len() == name.len()
        && written
            .iter()
            .zip(name.bytes())
            .all(|(a, b)| fold(*a) == fold(b))
}

/// The one cookie `name` among `Cookie` header values, as an upstream
/// would read it: `Ok(None)` when it is absent or only spelled otherwise
/// (another spelling alone is not it); `Err(())` when it comes twice, in
/// any spelling an upstream reads as `name`. Read as bytes: a header that
/// is not UTF-8 (another site's cookie) hides no copy.
#[inline]
pub fn one_cookie<'a>(
    values: impl Iterator<Item = &'a [u8]>,
    name: &str,
) -> Result<Option<&'a [u8]>, ()> {
    let mut found = values
        .flat_map(|v| v.split(|b| *b == b';'))
        .filter_map(|pair| {
            let at = pair.iter().position(|b| *b == b'=')?;
            let (k, v) = (&pair[..at], &pair[at + 1..]);
            same_name_bytes(k, name).then(|| (k.trim_ascii() == name.as_bytes(), v.trim_ascii()))
        });
    let first = found.next();
    if found.next().is_some() {
        return Err(());
    }
    Ok(first.and_then(|(exact, value)| exact.then_some(value)))
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
    fn a_header_that_is_not_utf8_hides_no_copy() {
        let values: [&[u8]; 2] = [b"sid=x", b"a=\xff; sid=y"];
        assert_eq!(one_cookie(values.into_iter(), "sid"), Err(()));
        let alone: [&[u8]; 1] = [b"a=\xff; sid=y"];
        assert_eq!(one_cookie(alone.into_iter(), "sid"), Ok(Some(&b"y"[..])));
    }
}
