//! Request paths as routing and upstreams must agree on them. A path is
//! normalised once, before routing (RFC 3986 §6.2.2: percent-encoded
//! unreserved characters decoded, §5.2.4: dot segments removed), and that one
//! path is what the route table, the upstream, the access log and the metrics
//! see. Whatever an upstream could still read two ways is refused: encoded
//! slashes and backslashes, raw backslashes, NUL, double-encoded dots and
//! slashes, parameters on dot segments (`..;`), and dot segments above the root.

use std::borrow::Cow;

/// The operator's choices on paths; both off by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathRules {
    /// `//` becomes `/` in the forwarded path. Routing ignores empty
    /// segments either way.
    pub merge_slashes: bool,
    /// `%2F` passes through (still encoded) instead of a `400`. Risky: an
    /// upstream that decodes it before routing sees another path.
    pub allow_encoded_slashes: bool,
}

/// Why a path is refused (`400`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not an absolute path (`*`, an authority, or empty).
    NotAbsolute,
    /// `%` not followed by two hex digits.
    BadEscape,
    EncodedSlash,
    Backslash,
    Nul,
    /// `%25` before the code of a dot, slash, backslash or NUL.
    DoubleEncoded,
    /// `..;x` or `.;x`: some servers drop the parameter, others do not.
    DotSegmentParameter,
    /// More `..` than segments.
    AboveRoot,
}

impl PathError {
    pub fn message(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "the request target must be an absolute path",
            PathError::BadEscape => "malformed percent-encoding in the path",
            PathError::EncodedSlash => "encoded slash in the path",
            PathError::Backslash => "backslash in the path",
            PathError::Nul => "NUL in the path",
            PathError::DoubleEncoded => "double-encoded dot, slash or backslash in the path",
            PathError::DotSegmentParameter => "parameter on a dot segment in the path",
            PathError::AboveRoot => "the path climbs above the root",
        }
    }
}

/// The normalised form of `path` (borrowed when it is already normal).
pub fn normalize(path: &str, rules: PathRules) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    // Nearly every request: nothing to decode, no dot segment, no `//` to merge.
    let plain = !bytes.iter().any(|&b| b == b'%' || b == b'\\')
        && !bytes
            .windows(2)
            .any(|w| w == b"/." || (rules.merge_slashes && w == b"//"));
    if plain {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(bytes, rules)?;
    let normal = remove_dot_segments(&decoded, rules)?;
    Ok(if normal == path {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(normal)
    })
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn escape_at(bytes: &[u8], i: usize) -> Result<u8, PathError> {
    match (
        bytes.get(i + 1).and_then(|&b| hex(b)),
        bytes.get(i + 2).and_then(|&b| hex(b)),
    ) {
        (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
        _ => Err(PathError::BadEscape),
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes `%XX` of unreserved characters and upper-cases the others' hex
/// (RFC 3986 §6.2.2.1–2), refusing what must not be decoded at all.
fn decode_unreserved(bytes: &[u8], rules: PathRules) -> Result<String, PathError> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => return Err(PathError::Backslash),
            b'\0' => return Err(PathError::Nul),
            b'%' => {
                let code = escape_at(bytes, i)?;
                match code {
                    c if is_unreserved(c) => out.push(c),
                    b'/' if rules.allow_encoded_slashes => out.extend_from_slice(b"%2F"),
                    b'/' => return Err(PathError::EncodedSlash),
                    b'\\' => return Err(PathError::Backslash),
                    0 => return Err(PathError::Nul),
                    c => {
                        const HEX: &[u8; 16] = b"0123456789ABCDEF";
                        out.extend_from_slice(&[
                            b'%',
                            HEX[usize::from(c >> 4)],
                            HEX[usize::from(c & 15)],
                        ]);
                    }
                }
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    if encodes_a_separator_again(&out) {
        return Err(PathError::DoubleEncoded);
    }
    // Only ASCII sequences were replaced, by ASCII: still UTF-8.
    Ok(String::from_utf8(out).expect("UTF-8 in, UTF-8 out"))
}

/// Whether an upstream that decodes the path again, once or more, would
/// find a dot, slash, backslash or NUL: `%25` (any number of `25`s after
/// it) before the code of one. Read on the decoded path, so escapes that
/// decoding put together (`%25%32%65` is `%252e`) count too.
fn encodes_a_separator_again(path: &[u8]) -> bool {
    path.windows(3)
        .enumerate()
        .filter(|(_, w)| *w == b"%25")
        .any(|(i, _)| {
            let mut j = i + 3;
            while path[j..].starts_with(b"25") {
                j += 2;
            }
            let code = (
                path.get(j).and_then(|&b| hex(b)),
                path.get(j + 1).and_then(|&b| hex(b)),
            );
            matches!(code, (Some(hi), Some(lo)) if matches!(hi << 4 | lo, b'.' | b'/' | b'\\' | 0))
        })
}

/// RFC 3986 §5.2.4 on an absolute path, segment by segment.
fn remove_dot_segments(path: &str, rules: PathRules) -> Result<String, PathError> {
    let mut kept: Vec<&str> = Vec::new();
    let mut segments = path[1..].split('/').peekable();
    let mut trailing_slash = false;
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        let (name, has_params) = match segment.split_once(';') {
            Some((name, _)) => (name, true),
            None => (segment, false),
        };
        match name {
            "." | ".." if has_params => return Err(PathError::DotSegmentParameter),
            "." => trailing_slash = last,
            ".." => {
                if kept.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing_slash = last;
            }
            "" if rules.merge_slashes || last => trailing_slash = last && !kept.is_empty(),
            _ => kept.push(segment),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || kept.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// The path as the route table matches it: empty segments and `;`
/// parameters ignored, as upstreams that merge slashes or drop parameters
/// would read it, so `//admin` and `/admin;x` find the `/admin` route.
pub fn routing_key(path: &str) -> Cow<'_, str> {
    let bytes = path.as_bytes();
    if !bytes.contains(&b';') && !bytes.windows(2).any(|w| w == b"//") {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    let mut segments = path.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        let name = segment.split(';').next().unwrap_or_default();
        if !name.is_empty() {
            out.push('/');
            out.push_str(name);
        } else if segments.peek().is_none() {
            out.push('/');
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

/// Whether `path`, as sent, is the path routing reads: normalising changes
/// nothing (no dot segment, raw or encoded, no percent-encoded unreserved
/// character, no lower-case hex) and neither does [`routing_key`] (no empty
/// segment but a trailing `/`, no `;` parameter). A path that is not cannot
/// be decided about for an application that reads it as sent: the two may
/// route it differently. Refused paths are `Err`, as [`normalize`] says.
pub fn is_routing_form(path: &str, rules: PathRules) -> Result<bool, PathError> {
    let normal = matches!(normalize(path, rules)?, Cow::Borrowed(_));
    Ok(normal && matches!(routing_key(path), Cow::Borrowed(_)))
}

/// `path` without its first `n` segments as [`routing_key`] counts them
/// (empty ones skipped, parameters part of their segment); always absolute.
pub fn strip_segments(path: &str, n: usize) -> &str {
    let mut rest = path;
    let mut stripped = 0;
    while stripped < n {
        let Some(after) = rest.strip_prefix('/') else {
            break;
        };
        let end = after.find('/').unwrap_or(after.len());
        let segment = &after[..end];
        rest = &after[end..];
        if !segment.split(';').next().unwrap_or_default().is_empty() {
            stripped += 1;
        }
    }
    if rest.is_empty() {
        "/"
    } else {
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalize(p, PathRules::default()).map(Cow::into_owned)
    }

    #[test]
    fn dot_segments_and_unreserved_escapes_resolve() {
        for (input, want) in [
            ("/a/b", "/a/b"),
            ("/public/../secret.txt", "/secret.txt"),
            ("/public/%2e%2e/secret.txt", "/secret.txt"),
            ("/public/%2E%2E/secret.txt", "/secret.txt"),
            ("/public/.%2e/secret.txt", "/secret.txt"),
            ("/a/./b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/a/..", "/"),
            ("//..", "/"),
            ("/a//b", "/a//b"),
            ("/%7Euser/%41", "/~user/A"),
            ("/a%3bb/%c3%a9", "/a%3Bb/%C3%A9"),
            ("/.well-known/jwks.json", "/.well-known/jwks.json"),
            ("/a/..b/.c", "/a/..b/.c"),
            ("/", "/"),
        ] {
            assert_eq!(norm(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        use PathError::*;
        for (input, want) in [
            ("/public/..%2fsecret.txt", EncodedSlash),
            ("/public/..%2Fsecret.txt", EncodedSlash),
            ("/public/..%5csecret.txt", Backslash),
            ("/public\\..\\secret.txt", Backslash),
            ("/public/..;/secret.txt", DotSegmentParameter),
            ("/public/.;x/secret.txt", DotSegmentParameter),
            ("/public/%252e%252e/secret.txt", DoubleEncoded),
            ("/public/%252f", DoubleEncoded),
            // Encodings of encodings: what decoding the unreserved escapes makes.
            ("/public/%25%32%65%25%32%65/orders", DoubleEncoded),
            ("/public/%25%32%66", DoubleEncoded),
            ("/public/%25%35%63", DoubleEncoded),
            ("/public/%252%65", DoubleEncoded),
            ("/public/%25%32%35%32%65", DoubleEncoded),
            ("/public/%2525252e", DoubleEncoded),
            ("/public/%25%30%30", DoubleEncoded),
            ("/a/%00", Nul),
            ("/..", AboveRoot),
            ("/a/../../b", AboveRoot),
            ("/%zz", BadEscape),
            ("/%2", BadEscape),
            ("*", NotAbsolute),
            ("", NotAbsolute),
        ] {
            assert_eq!(norm(input), Err(want), "{input}");
        }
    }

    #[test]
    fn options_merge_slashes_and_pass_encoded_slashes() {
        let rules = PathRules {
            merge_slashes: true,
            allow_encoded_slashes: true,
        };
        let n = |p| normalize(p, rules).unwrap().into_owned();
        assert_eq!(n("//admin//x/"), "/admin/x/");
        assert_eq!(n("/a%2fb/../c"), "/c");
        assert_eq!(n("/a%2fb"), "/a%2Fb");
    }

    #[test]
    fn normal_paths_are_borrowed() {
        assert!(matches!(
            normalize("/api/orders/42", PathRules::default()),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn routing_ignores_empty_segments_and_parameters() {
        assert_eq!(routing_key("/admin"), "/admin");
        assert_eq!(routing_key("//admin"), "/admin");
        assert_eq!(routing_key("/admin;x/y"), "/admin/y");
        assert_eq!(routing_key("/a//"), "/a/");
        assert_eq!(routing_key("//"), "/");
    }

    #[test]
    fn only_paths_routing_reads_as_sent_are_in_routing_form() {
        let rules = PathRules::default();
        let form = |p| is_routing_form(p, rules);
        for path in [
            "/",
            "/auth",
            "/auth/",
            "/orders/7",
            "/a%3Bb/%C3%A9",
            "/a/..b/.c",
        ] {
            assert_eq!(form(path), Ok(true), "{path}");
        }
        for path in [
            "/x/../auth",
            "/admin/users/%2e%2e/%2e%2e/auth",
            "/./auth",
            "/.//auth",
            "/auth/.",
            "/%61uth",
            "/a%c3%a9",
            "/auth;x",
            "/;x/auth",
            "//auth",
            "/a//b",
        ] {
            assert_eq!(form(path), Ok(false), "{path}");
        }
        assert_eq!(form("/a/..%2fauth"), Err(PathError::EncodedSlash));
        let merging = PathRules {
            merge_slashes: true,
            ..rules
        };
        assert_eq!(is_routing_form("//auth", merging), Ok(false));
    }

    #[test]
    fn segments_strip_as_routing_counts_them() {
        assert_eq!(strip_segments("/api/users", 1), "/users");
        assert_eq!(strip_segments("//api//users", 1), "//users");
        assert_eq!(strip_segments("/api;v=1/users", 1), "/users");
        assert_eq!(strip_segments("/api", 1), "/");
        assert_eq!(strip_segments("/api/", 1), "/");
    }
}
