//! Where a claim sits in a token: a top-level name, or a path into nested
//! objects, as identity providers put them (`realm_access.roles`,
//! `resource_access."my-app".roles`, `"https://example.com/roles"`).
//!
//! Written as segments joined by `.`; a segment holding any character but
//! letters, digits, `_`, `-` and `$` is quoted, with `\"` and `\\` inside.
//! So a path means one thing only: `a.b` is claim `b` inside `a`, `"a.b"`
//! the claim named `a.b`; and a namespaced claim named bare as a whole
//! (`https://example.com/roles`, read as one name before paths were) is
//! refused, for its `:` and `/`, rather than read as a path.

use crate::claims::{Claim, Claims};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath {
    /// The top-level claim.
    first: String,
    /// Keys into the objects below it, outermost first.
    rest: Vec<String>,
}

impl ClaimPath {
    /// One top-level claim, named as it is.
    pub fn top(name: &str) -> ClaimPath {
        ClaimPath {
            first: name.to_string(),
            rest: Vec::new(),
        }
    }

    /// A path of these names, outermost first; `None` for no name.
    pub fn from_segments(mut segments: Vec<String>) -> Option<ClaimPath> {
        if segments.is_empty() {
            return None;
        }
        let first = segments.remove(0);
        Some(ClaimPath {
            first,
            rest: segments,
        })
    }

    /// The path to the object that holds the last name (none: the claims
    /// themselves), and that name.
    pub fn split_last(mut self) -> (Option<ClaimPath>, String) {
        match self.rest.pop() {
            Some(last) => (Some(self), last),
            None => (None, self.first),
        }
    }

    pub fn parse(text: &str) -> Result<ClaimPath, String> {
        let mut segments = Vec::new();
        let mut chars = text.chars().peekable();
        loop {
            let mut segment = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                loop {
                    match chars.next() {
                        None => return Err(format!("{text:?}: a quoted name is not closed")),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => segment.push(c),
                            _ => {
                                return Err(format!(
                                    "{text:?}: only \\\" and \\\\ are escapes in a quoted name"
                                ))
                            }
                        },
                        Some(c) if c.is_control() => {
                            return Err(format!("{text:?}: a control character in a name"))
                        }
                        Some(c) => segment.push(c),
                    }
                }
                if segment.is_empty() {
                    return Err(format!("{text:?}: an empty quoted name"));
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == '.' {
                        break;
                    }
                    if !bare(c) {
                        return Err(format!(
                            "{text:?}: {c:?} in a name; quote a name that holds it, \
                             e.g. resource_access.\"my.app\".roles"
                        ));
                    }
                    segment.push(c);
                    chars.next();
                }
                if segment.is_empty() {
                    return Err(format!(
                        "{text:?}: an empty name; a path is names joined by '.', e.g. realm_access.roles"
                    ));
                }
            }
            segments.push(segment);
            match chars.next() {
                None => break,
                Some('.') => continue,
                Some(c) => {
                    return Err(format!(
                        "{text:?}: {c:?} after a quoted name; expected '.' or the end"
                    ))
                }
            }
        }
        Ok(ClaimPath::from_segments(segments).expect("one name at least"))
    }

    /// The value at this path, if every step of it is there: each step
    /// below the top must be a key of a JSON object.
    #[inline]
    pub fn find<'a>(&self, claims: &'a Claims) -> Option<Claim<'a>> {
        let top = claims.get(&self.first)?;
        if self.rest.is_empty() {
            return Some(top);
        }
        let Claim::Json(mut value) = top else {
            return None;
        };
        for key in &self.rest {
            value = value.as_object()?.get(key)?;
        }
        Some(Claim::of(value))
    }
}

/// A character a name may hold unquoted.
fn bare(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Claims {
        Claims::parse(json.as_bytes().to_vec()).unwrap()
    }

    fn at<'a>(path: &str, c: &'a Claims) -> Option<Claim<'a>> {
        ClaimPath::parse(path).unwrap().find(c)
    }

    #[test]
    fn paths_reach_nested_claims_and_quoted_names() {
        let c = claims(
            r#"{"sub":"u1","realm_access":{"roles":["ops"]},
                "resource_access":{"my-app":{"roles":["admin"]},"my.app":{"roles":["dot"]}},
                "https://example.com/roles":["editor"],"a.b":"flat","q\"uo\\te":"escaped"}"#,
        );
        assert_eq!(at("sub", &c).and_then(Claim::as_str), Some("u1"));
        let roles = |p| at(p, &c).and_then(Claim::as_array).map(|l| l[0].clone());
        assert_eq!(roles("realm_access.roles"), Some("ops".into()));
        assert_eq!(roles("resource_access.my-app.roles"), Some("admin".into()));
        assert_eq!(
            roles(r#"resource_access."my.app".roles"#),
            Some("dot".into())
        );
        assert_eq!(
            roles(r#""https://example.com/roles""#),
            Some("editor".into())
        );
        assert_eq!(at(r#""a.b""#, &c).and_then(Claim::as_str), Some("flat"));
        assert_eq!(
            at(r#""q\"uo\\te""#, &c).and_then(Claim::as_str),
            Some("escaped")
        );
        // `a.b` is `b` inside `a`, never the claim named "a.b".
        assert!(at("a.b", &c).is_none());
        assert!(at("realm_access.roles.x", &c).is_none());
        assert!(at("sub.x", &c).is_none());
    }

    #[test]
    fn malformed_paths_are_refused_with_the_reason() {
        for (bad, why) in [
            ("", "empty name"),
            ("a..b", "empty name"),
            ("a.", "empty name"),
            (r#""unclosed"#, "not closed"),
            (r#""""#, "empty quoted"),
            (r#""x"y"#, "after a quoted name"),
            (r#""a\nb""#, "escapes"),
            ("https://example.com/roles", "quote a name"),
            ("a b", "quote a name"),
            ("a\u{1b}[31m", "quote a name"),
        ] {
            let e = ClaimPath::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
