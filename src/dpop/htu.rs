//! A proof's `htu` against the request it came with (RFC 9449 §4.3 check
//! 9): the same URI once both are normalised as RFC 3986 §6.2.2 and
//! §6.2.3 say (scheme and host in lower case, a default port dropped,
//! unreserved characters unescaped, escapes in upper case, dot segments
//! removed, an empty path read as `/`), the query and fragment ignored.

use std::borrow::Cow;

/// The URI a request was made to, as the client named it: its scheme
/// (`https` when it came over TLS, or a trusted proxy says so), its
/// `Host` (or HTTP/2 `:authority`) and its path.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub https: bool,
    pub authority: &'a str,
    pub path: &'a str,
}

impl Target<'_> {
    /// The target as an `htu` names it (for a client told where to send).
    pub fn uri(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority, self.path)
    }
}

/// Whether `htu` names `target`.
pub fn matches(htu: &str, target: &Target) -> bool {
    // As clients send it: spelt as the request was, a query or fragment
    // aside. That spelling normalises as the request does (the path's
    // `/` ends the authority, which holds no `/`, `?` or `#`, as
    // [`host_port`] refuses one that does, and a routed path none of
    // `?` and `#`); found without a pass over the `htu` for either.
    match spelt_as(htu.as_bytes(), target) {
        Some([] | [b'?' | b'#', ..]) => host_port(target.authority, target.https).is_some(),
        _ => normalised_alike(htu, target),
    }
}

/// Whether `htu` and `target` are the same URI once normalised.
fn normalised_alike(htu: &str, target: &Target) -> bool {
    let end = htu.bytes().position(|b| b == b'?' || b == b'#');
    let htu = &htu[..end.unwrap_or(htu.len())];
    // The scheme's bytes are ASCII: what follows starts on a character.
    let named = |scheme: &str| {
        let n = scheme.len();
        htu.len() >= n && htu.as_bytes()[..n].eq_ignore_ascii_case(scheme.as_bytes())
    };
    let (https, rest) = if named("https://") {
        (true, &htu[8..])
    } else if named("http://") {
        (false, &htu[7..])
    } else {
        return false;
    };
    if https != target.https {
        return false;
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (Some(named), Some(asked)) = (
        host_port(authority, https),
        host_port(target.authority, https),
    ) else {
        return false;
    };
    named.0.eq_ignore_ascii_case(asked.0)
        && named.1 == asked.1
        && normal_path(path) == normal_path(target.path)
}

/// What follows `htu`'s scheme (in either case), the target's authority
/// and its absolute path, where it starts with them.
fn spelt_as<'h>(htu: &'h [u8], target: &Target) -> Option<&'h [u8]> {
    let scheme: &[u8] = if target.https {
        b"https://"
    } else {
        b"http://"
    };
    let rest = htu
        .get(scheme.len()..)
        .filter(|_| htu[..scheme.len()].eq_ignore_ascii_case(scheme))?;
    let path = target.path.as_bytes();
    rest.strip_prefix(target.authority.as_bytes())?
        .strip_prefix(path)
        .filter(|_| path.first() == Some(&b'/'))
}

/// The host and port of an authority, the port the scheme's default when
/// none is written; `None` for one with user information, escapes or a
/// byte that ends an authority in a URI (`/`, `?`, `#`), which name no
/// host a request is sent to.
fn host_port(authority: &str, https: bool) -> Option<(&str, u16)> {
    let bytes = authority.as_bytes();
    // The port's colon: the last one, but in an IPv6 literal, which holds
    // colons of its own, the first after its (last) `]`. One pass, a
    // byte at a time: an authority is short.
    let (mut port_at, mut literal) = (None, false);
    for (at, byte) in bytes.iter().enumerate() {
        match byte {
            b'@' | b'%' | b' ' | b'/' | b'?' | b'#' => return None,
            b']' => (port_at, literal) = (None, true),
            b':' if !literal || port_at.is_none() => port_at = Some(at),
            _ => {}
        }
    }
    let (host, port) = match port_at {
        Some(at) => (&authority[..at], &bytes[at + 1..]),
        None => (authority, &b""[..]),
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let port = match port {
        [] if https => 443,
        [] => 80,
        digits if digits.len() <= 5 => {
            let mut port = 0u32;
            for digit in digits {
                if !digit.is_ascii_digit() {
                    return None;
                }
                port = port * 10 + u32::from(digit - b'0');
            }
            u16::try_from(port).ok()?
        }
        _ => return None,
    };
    (!host.is_empty()).then_some((host, port))
}

/// A path as RFC 3986 §6.2.2 normalises it; borrowed when it already is.
fn normal_path(path: &str) -> Cow<'_, str> {
    if path.is_empty() {
        return Cow::Borrowed("/");
    }
    let plain = !path.contains('%') && !path.split('/').any(|s| s == "." || s == "..");
    if plain {
        return Cow::Borrowed(path);
    }
    Cow::Owned(remove_dot_segments(&unescape_unreserved(path)))
}

/// Escapes of unreserved characters decoded, every other escape in upper case.
fn unescape_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| path.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) if b.is_ascii_alphanumeric() || b"-._~".contains(&b) => {
                out.push(b as char);
                i += 3;
            }
            Some(_) => {
                out.push('%');
                out.push_str(&path[i + 1..i + 3].to_ascii_uppercase());
                i += 3;
            }
            None => {
                let ch = path[i..].chars().next().expect("within the path");
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

/// RFC 3986 §5.2.4, over an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing = false;
    for (i, segment) in segments.iter().enumerate() {
        trailing = i == last && (*segment == "." || *segment == "..");
        match *segment {
            "." => {}
            ".." => {
                kept.pop();
            }
            s => kept.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &kept {
        out.push('/');
        out.push_str(s);
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at<'a>(https: bool, authority: &'a str, path: &'a str) -> Target<'a> {
        Target {
            https,
            authority,
            path,
        }
    }

    #[test]
    fn the_same_uri_in_other_spellings_matches() {
        let t = at(true, "api.example", "/v1/notes");
        for htu in [
            "https://api.example/v1/notes",
            "HTTPS://API.Example/v1/notes",
            "https://api.example:443/v1/notes",
            "https://api.example./v1/notes",
            "https://api.example/v1/notes?page=2",
            "https://api.example/v1/notes#top",
            "https://api.example/v1/%6Eotes",
            "https://api.example/v1/./x/../notes",
        ] {
            assert!(matches(htu, &t), "{htu}");
        }
        assert!(matches(
            "http://127.0.0.1:8080",
            &at(false, "127.0.0.1:8080", "/")
        ));
        assert!(matches("https://[::1]/a", &at(true, "[::1]:443", "/a")));
        let escaped = at(true, "api.example", "/a%2fb");
        assert!(matches("https://api.example/a%2Fb", &escaped));
    }

    #[test]
    fn another_uri_does_not() {
        let t = at(true, "api.example", "/v1/notes");
        for htu in [
            "http://api.example/v1/notes",
            "https://api.example:8443/v1/notes",
            "https://api.example.evil/v1/notes",
            "https://evil@api.example/v1/notes",
            "https://api.example/v1/notes/",
            "https://api.example/v1/Notes",
            "https://api.example/v1/notes%2F",
            "https://api.example/v1",
            "https://api.example%2F/v1/notes",
            "//api.example/v1/notes",
            "/v1/notes",
            "wss://api.example/v1/notes",
            "",
        ] {
            assert!(!matches(htu, &t), "{htu}");
        }
        assert!(!matches("https://[::1]:444/a", &at(true, "[::1]", "/a")));
        // A target that is no absolute path (`OPTIONS *`) ends no authority.
        assert!(!matches(
            "http://api.example*",
            &at(false, "api.example", "*")
        ));
        // Spelt as the request was, but no host a request is sent to.
        for authority in ["evil@api.example", "api%2Eexample", ""] {
            let t = at(true, authority, "/v1");
            assert!(
                !matches(&format!("https://{authority}/v1"), &t),
                "{authority}"
            );
        }
    }

    #[test]
    fn an_authority_names_its_host_and_port() {
        for (authority, want) in [
            ("api.example", Some(("api.example", 443))),
            ("api.example.:8443", Some(("api.example", 8443))),
            ("host:", Some(("host", 443))),
            ("[::1]", Some(("[::1]", 443))),
            ("[::1]:80", Some(("[::1]", 80))),
            ("[fe80::1:2]:8:9", None),
            ("[::1]]:8", Some(("[::1]]", 8))),
            ("a:b:80", Some(("a:b", 80))),
            ("a:8x", None),
            ("a:123456", None),
            ("a:65536", None),
            (":80", None),
            ("", None),
            ("u@a", None),
            ("a b", None),
            ("a%2e", None),
            ("a/b", None),
            ("a?b", None),
            ("a#b:80", None),
        ] {
            assert_eq!(host_port(authority, true), want, "{authority}");
        }
    }

    #[test]
    fn dot_segments_resolve_as_rfc_3986_says() {
        assert_eq!(remove_dot_segments("/a/b/c/./../../g"), "/a/g");
        assert_eq!(remove_dot_segments("/../a"), "/a");
        assert_eq!(remove_dot_segments("/a/.."), "/");
        assert_eq!(remove_dot_segments("/a/b/.."), "/a/");
        assert_eq!(normal_path(""), "/");
        assert_eq!(unescape_unreserved("/%7e%2f%41"), "/~%2FA");
    }

    /// Authorities, paths and `htu`s around the spelling clients send.
    fn spellings() -> impl proptest::strategy::Strategy<Value = (String, String, String, bool)> {
        use proptest::prelude::*;
        use proptest::sample::select;
        let authority = select(vec![
            "api.example",
            "API.example",
            "api.example:443",
            "api.example.",
            "api.example:80",
            "[::1]",
            "[::1]:8443",
            "a:b:1",
            "u@api.example",
            "api%2Eexample",
            "a/b",
            "a?b",
            "a#b",
            "api.example:",
            "",
            "a b",
        ]);
        let path = select(vec![
            "/",
            "/v1/notes",
            "/v1/%6Eotes",
            "/v1/./notes",
            "/a%2fb",
            "/a?q",
            "/a#f",
            "/a/../b",
            "//x",
            "/x?",
            "",
        ]);
        let scheme = select(vec![
            "https://", "http://", "HTTPS://", "Http://", "wss://", "",
        ]);
        let tail = select(vec![
            "", "?", "?a=1", "#", "#top", "/", "x", "%2F", "/..", ":443",
        ]);
        let htu_authority = prop_oneof![authority.clone().prop_map(Some), Just(None)];
        let htu_path = prop_oneof![path.clone().prop_map(Some), Just(None)];
        (
            scheme,
            htu_authority,
            htu_path,
            tail,
            authority,
            path,
            any::<bool>(),
        )
            .prop_map(
                |(scheme, htu_authority, htu_path, tail, authority, path, https)| {
                    // The request's side as the gateway sees it: its path as
                    // `http` parses it from the request line.
                    let routed = format!("http://x{path}")
                        .parse::<http::Uri>()
                        .map_or_else(|_| "/".to_string(), |u| u.path().to_string());
                    let htu = format!(
                        "{scheme}{}{}{tail}",
                        htu_authority.unwrap_or(authority),
                        htu_path.map_or(routed.as_str(), |p| p)
                    );
                    (htu, authority.to_string(), routed, https)
                },
            )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 4096, ..Default::default() })]

        /// The short way for the spelling clients send decides as the
        /// normalised comparison does, on every spelling.
        #[test]
        fn the_spelling_clients_send_is_decided_as_normalised(
            (htu, authority, path, https) in spellings()
        ) {
            let target = at(https, &authority, &path);
            proptest::prop_assert_eq!(matches(&htu, &target), normalised_alike(&htu, &target));
        }
    }
}
