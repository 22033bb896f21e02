//! What a protected route demands of a token: where the token is found, which
//! issuers, audience and token use it accepts, which roles, scopes and claim
//! values it requires, and which claims become upstream headers.

use std::borrow::Cow;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::validate::Verified;
use super::AuthError;
use crate::claims::Claim;
use crate::config::{Policy, TokenSource};
use crate::header_name::{
    any_cookie, one_request_cookie, param_reads_as, query_names, same_field, spelled_apart,
};

/// A request's credential, and how it came.
#[derive(Debug, PartialEq, Eq)]
pub struct Presented<'r> {
    token: Token<'r>,
    /// `Authorization: DPoP <token>` (RFC 9449 §7.1): its sender says it
    /// holds the key the token is bound to, and sends a proof.
    pub dpop: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Token<'r> {
    /// A header's bytes, read as text only when they are not a token
    /// already verified (`Validator::cached`): the check of every byte
    /// is then the cache's compare.
    Field(&'r [u8]),
    /// A cookie's or a query parameter's value, text as read.
    Text(Cow<'r, str>),
}

impl Presented<'_> {
    /// The token as sent.
    pub fn bytes(&self) -> &[u8] {
        match &self.token {
            Token::Field(bytes) => bytes,
            Token::Text(text) => text.as_bytes(),
        }
    }

    /// The token as text. A header's must be visible ASCII (or a tab), as
    /// `HeaderValue::to_str` reads it: one that is not carries no token.
    pub fn text(&self) -> Result<&str, AuthError> {
        match &self.token {
            Token::Field(bytes) => std::str::from_utf8(bytes)
                .ok()
                .filter(|t| t.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)))
                .ok_or(AuthError::MissingToken),
            Token::Text(text) => Ok(text),
        }
    }

    /// Whether it is shaped as a JWT: three parts.
    pub fn jwt_shaped(&self) -> bool {
        memchr::memchr_iter(b'.', self.bytes()).count() == 2
    }
}

impl Policy {
    /// The request's token, from the one source of `token_from` that has
    /// it. The credential must come once: from two sources, or twice from
    /// one, portero would check one copy while the upstream might read the
    /// other (`RepeatedToken`).
    pub fn token<'r>(
        &self,
        headers: &'r HeaderMap,
        query: Option<&'r str>,
    ) -> Result<Presented<'r>, AuthError> {
        let (mut found, mut stray) = (None, false);
        for source in &self.token_from {
            match source.extract(headers, query) {
                Ok(_) if found.is_some() => return Err(AuthError::RepeatedToken),
                Ok(token) => found = Some(token),
                Err(AuthError::MissingToken) => stray = stray || source.stray_copy(headers, query),
                Err(e) => return Err(e),
            }
        }
        match found {
            // Beside the token, a copy only an upstream reads is a second one.
            Some(_) if stray => Err(AuthError::RepeatedToken),
            found => found.ok_or(AuthError::MissingToken),
        }
    }

    /// Whether the request carries a token [`Policy::token`] finds, read
    /// as text: `MissingToken` when it carries none, or only a header that
    /// is not text.
    pub fn has_token(&self, headers: &HeaderMap, query: Option<&str>) -> Result<(), AuthError> {
        self.token(headers, query)?.text().map(drop)
    }

    /// Whether the credential that admitted the request goes upstream:
    /// a token unless `forward_token = false`, an API key only when
    /// `forward_token = true` was set.
    pub fn forwards(&self, verified: &Verified) -> bool {
        let key_bit = 1u64.checked_shl(verified.issuer as u32).unwrap_or(0);
        match self.api_key_mask & key_bit != 0 {
            true => self.forward_api_key,
            false => self.forward_token,
        }
    }
}

impl TokenSource {
    /// The token in a request, borrowed where it can be. Another spelling
    /// of the header (`x_api_token` for `x-api-token`) counts as a second
    /// copy.
    fn extract<'r>(
        &self,
        headers: &'r HeaderMap,
        query: Option<&'r str>,
    ) -> Result<Presented<'r>, AuthError> {
        let mut dpop = false;
        let field = match self {
            Self::Bearer => {
                let value = single(headers, &AUTHORIZATION)?;
                match scheme(value, b"bearer") {
                    Some(token) => token,
                    None => {
                        let token = scheme(value, b"dpop");
                        dpop = token.is_some();
                        token.unwrap_or_default()
                    }
                }
            }
            Self::RawAuthorization => {
                let v = single(headers, &AUTHORIZATION)?.trim_ascii();
                match (scheme(v, b"bearer"), scheme(v, b"dpop")) {
                    (Some(token), _) => token,
                    (None, Some(token)) => {
                        dpop = true;
                        token
                    }
                    (None, None) => v,
                }
            }
            Self::Header(name) => {
                let spelled_otherwise = headers.keys().any(|k| {
                    k != name && spelled_apart(k.as_str()) && same_field(k.as_str(), name.as_str())
                });
                if spelled_otherwise {
                    return Err(AuthError::RepeatedToken);
                }
                single(headers, name)?.trim_ascii()
            }
            Self::Cookie(name) => {
                let token = one_request_cookie(headers, name)
                    .map_err(|()| AuthError::RepeatedToken)?
                    .unwrap_or("");
                return match token.is_empty() {
                    true => Err(AuthError::MissingToken),
                    false => Ok(Presented {
                        token: Token::Text(Cow::Borrowed(token)),
                        dpop,
                    }),
                };
            }
            Self::Query(name) => {
                let token = query_param(query.unwrap_or(""), name)?;
                return Ok(Presented {
                    token: Token::Text(token),
                    dpop,
                });
            }
        };
        if field.is_empty() {
            return Err(AuthError::MissingToken);
        }
        Ok(Presented {
            token: Token::Field(field),
            dpop,
        })
    }
}

impl TokenSource {
    /// Whether the request holds what some upstream reads as this
    /// source's token, though portero reads no token there: another
    /// spelling of the cookie or parameter name alone (`tok[0]`,
    /// `a=b tok=x`, `access.token`), or a value that is not text.
    fn stray_copy(&self, headers: &HeaderMap, query: Option<&str>) -> bool {
        match self {
            Self::Cookie(name) => any_cookie(headers, name),
            Self::Query(name) => {
                query.is_some_and(|q| query_names(q).any(|n| param_reads_as(n, name)))
            }
            Self::Header(name) => headers.contains_key(name),
            // `Bearer\t<t>`, `Bearer <t>\xa0`, `DPoP\t<t>`: portero reads
            // no token, a framework that splits at any white space does.
            Self::Bearer => headers.get_all(AUTHORIZATION).iter().any(|v| {
                let v = v.as_bytes();
                let start = v
                    .iter()
                    .position(|b| !matches!(b, b'\t' | b' ' | 0x85 | 0xa0));
                start.is_some_and(|s| {
                    let named = |scheme: &[u8]| {
                        v[s..]
                            .get(..scheme.len())
                            .is_some_and(|w| w.eq_ignore_ascii_case(scheme))
                    };
                    named(b"bearer") || named(b"dpop")
                })
            }),
            Self::RawAuthorization => headers.contains_key(AUTHORIZATION),
        }
    }
}

/// The one value of query parameter `name` (names and values read as
/// `application/x-www-form-urlencoded`, as the upstream would read them).
/// Any other name some upstream reads as `name` beside it is a second
/// copy (`param_reads_as`: escaped, cut at a NUL, with brackets, after a
/// `;`); such a spelling alone is not the token (and never goes upstream:
/// `forwarding::remove_query_tokens`).
fn query_param<'q>(query: &'q str, name: &str) -> Result<Cow<'q, str>, AuthError> {
    let mut copies = query_names(query).filter(|written| param_reads_as(written, name));
    match (copies.next(), copies.next()) {
        (None, _) => return Err(AuthError::MissingToken),
        (Some(_), Some(_)) => return Err(AuthError::RepeatedToken),
        (Some(_), None) => {}
    }
    let value =
        form_urlencoded::parse(query.as_bytes()).find_map(|(k, v)| (k == name).then_some(v));
    match value {
        Some(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(AuthError::MissingToken),
    }
}

/// The one value of a header, as sent: read as text only when the token
/// in it is not one already verified ([`Presented::text`]). (`to_str`
/// on every request cost 264 instructions a 229-byte field.)
fn single<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<&'h [u8], AuthError> {
    let mut all = headers.get_all(name).iter();
    let first = all.next().ok_or(AuthError::MissingToken)?;
    if all.next().is_some() {
        return Err(AuthError::RepeatedToken);
    }
    Ok(first.as_bytes())
}

/// The credential after scheme `name` (lower case; the scheme is
/// case-insensitive, RFC 7235 §2.1) and a space: the scheme is told by
/// its place, not found by a search.
#[inline]
fn scheme<'v>(value: &'v [u8], name: &[u8]) -> Option<&'v [u8]> {
    let value = value.trim_ascii();
    let (scheme, rest) = (value.get(..name.len())?, value.get(name.len()..)?);
    (scheme.eq_ignore_ascii_case(name) && rest.first() == Some(&b' ')).then(|| rest.trim_ascii())
}

impl Policy {
    /// Whether `token` is checked as an API key: the route takes only
    /// keys, or takes keys and tokens and it is not shaped as a JWT
    /// (three parts).
    #[inline]
    pub fn takes_as_api_key(&self, token: &Presented) -> bool {
        self.api_key_mask != 0 && (self.api_key_mask == self.issuer_mask || !token.jwt_shaped())
    }

    pub fn accepts_issuer(&self, issuer: usize) -> bool {
        issuer < 64 && self.issuer_mask & (1 << issuer) != 0
    }

    /// Claims checks that make a token unacceptable (401).
    pub fn check_token(&self, t: &Verified) -> Result<(), AuthError> {
        if !self.accepts_issuer(t.issuer) {
            return Err(AuthError::WrongIssuer);
        }
        if let Some(aud) = &self.audience {
            let ok = t.claims.get("aud").is_some_and(|v| names(v, aud));
            if !ok {
                return Err(AuthError::WrongAudience);
            }
        }
        if let Some(token_use) = &self.token_use {
            if t.claims.str("token_use") != Some(token_use) {
                return Err(AuthError::WrongTokenUse);
            }
        }
        Ok(())
    }

    /// Whether `t` carries `role` where its issuer puts roles: a list at
    /// one of its `roles_claims` (a string there is no list, and never
    /// matches), or by default a `role` or `roles` claim, a name or a list.
    fn has_role(&self, t: &Verified, role: &str) -> bool {
        match self.roles_from.get(t.issuer).and_then(Option::as_ref) {
            Some(paths) => paths.iter().any(|path| {
                path.find(&t.claims)
                    .and_then(Claim::as_array)
                    .is_some_and(|list| list.iter().any(|v| v.as_str() == Some(role)))
            }),
            None => {
                let matches = |v: Claim| names(v, role);
                t.claims.get("role").is_some_and(matches)
                    || t.claims.get("roles").is_some_and(matches)
            }
        }
    }

    /// The route's requirements on a good token (403 when unmet).
    pub fn check_requirements(&self, t: &Verified) -> Result<(), AuthError> {
        if !self.roles.is_empty() && !self.roles.iter().any(|r| self.has_role(t, r)) {
            return Err(AuthError::MissingRole);
        }
        if !self.scopes.iter().all(|s| has_scope(t, s)) {
            return Err(AuthError::MissingScope);
        }
        for (path, want) in &self.claims {
            if !path.find(&t.claims).is_some_and(|v| claim_equals(v, want)) {
                return Err(AuthError::ClaimMismatch);
            }
        }
        Ok(())
    }

    /// The identity headers to inject for this token, in config order;
    /// an absent claim is left out. A claim no header can carry as it is
    /// refuses the token: leaving its header out would let the upstream
    /// take the request as someone without that claim.
    pub fn identity_headers<'a: 't, 't>(
        &'a self,
        t: &'t Verified,
    ) -> impl Iterator<Item = Result<(&'a HeaderName, HeaderValue), AuthError>> + 't {
        self.headers.iter().filter_map(|(header, claim)| {
            let claim = claim.find(&t.claims)?;
            if matches!(claim, Claim::Json(Value::Null)) {
                return None;
            }
            let value = header_value(claim).ok_or(AuthError::UnsafeClaim);
            Some(value.map(|v| (header, v)))
        })
    }
}

/// A claim that is `want`, or a list holding it (as `aud` and `roles` may be).
fn names(v: Claim, want: &str) -> bool {
    match v {
        Claim::Str(s) => s == want,
        Claim::Json(Value::Array(list)) => list.iter().any(|v| v.as_str() == Some(want)),
        _ => false,
    }
}

fn has_scope(t: &Verified, scope: &str) -> bool {
    t.claims
        .str("scope")
        .is_some_and(|s| s.split(' ').any(|x| x == scope))
        || t.claims
            .get("scp")
            .and_then(Claim::as_array)
            .is_some_and(|l| l.iter().any(|v| v.as_str() == Some(scope)))
}

fn claim_equals(v: Claim, want: &str) -> bool {
    match v {
        Claim::Str(s) => s == want,
        Claim::Number(n) => n.to_string() == want,
        Claim::Json(Value::Bool(b)) => b.to_string() == want,
        _ => false,
    }
}

/// Strings go as they are; arrays as their elements joined by `,` in token
/// order (strings bare, anything else as compact JSON); objects as compact JSON.
/// Values with control characters are refused by `HeaderValue`, so a claim
/// can never split a header.
/// A claim as header text: a string as it is, a list as its items joined
/// with `,` (an item holding a comma could not be told apart, so such a
/// list has no header form), anything else as JSON; `None` for `null` and
/// for text a header cannot carry (CR, LF, NUL).
fn header_value(v: Claim) -> Option<HeaderValue> {
    let text = match v {
        Claim::Str(s) => return HeaderValue::from_str(s).ok(),
        Claim::Number(n) => n.to_string(),
        Claim::Json(Value::Null) => return None,
        Claim::Json(Value::Array(list)) => {
            let items: Option<Vec<String>> = list
                .iter()
                .map(|v| match v {
                    Value::String(s) if s.contains(',') => None,
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    Value::Bool(b) => Some(b.to_string()),
                    _ => None,
                })
                .collect();
            items?.join(",")
        }
        Claim::Json(other) => other.to_string(),
    };
    HeaderValue::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::Claims;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ex(source: &TokenSource, h: &HeaderMap) -> Result<String, AuthError> {
        source
            .extract(h, None)
            .and_then(|p| p.text().map(str::to_string))
    }

    #[test]
    fn a_header_token_is_visible_ascii() {
        let mut h = HeaderMap::new();
        for (value, want) in [
            (&b"Bearer abc.def\tghi"[..], Ok("abc.def\tghi")),
            (b"Bearer abc\xa0def", Err(AuthError::MissingToken)),
            ("Bearer t\u{f8}ken".as_bytes(), Err(AuthError::MissingToken)),
            (b"DPoP abc\xff", Err(AuthError::MissingToken)),
        ] {
            h.insert(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
            let want = want.map(str::to_string);
            assert_eq!(ex(&TokenSource::Bearer, &h), want, "{value:?}");
            assert_eq!(ex(&TokenSource::RawAuthorization, &h), want, "{value:?}");
        }
    }

    #[test]
    fn beside_a_token_a_copy_only_an_upstream_reads_is_a_second_one() {
        let policy = with_sources(&["bearer", "cookie:tok", "query:access_token"]);
        let bearer = ("authorization", "Bearer good");
        for cookie in ["a=b tok=x", "tok[0]=x", "secure tok=x", "TOK=x", "tok"] {
            let h = headers(&[bearer, ("cookie", cookie)]);
            let got = policy
                .token(&h, None)
                .and_then(|p| p.text().map(str::to_string));
            assert_eq!(got, Err(AuthError::RepeatedToken), "{cookie}");
        }
        let mut not_text = headers(&[bearer]);
        not_text.insert("cookie", HeaderValue::from_bytes(b"tok=x\xa0").unwrap());
        assert_eq!(policy.token(&not_text, None), Err(AuthError::RepeatedToken));
        let h = headers(&[bearer]);
        for query in ["access.token=x", "access_token[]=x", "access_token%00=x"] {
            let got = policy
                .token(&h, Some(query))
                .and_then(|p| p.text().map(str::to_string));
            assert_eq!(got, Err(AuthError::RepeatedToken), "{query}");
        }
        // A bearer header portero reads no token in, beside a cookie token.
        for value in [
            &b"Bearer\tx"[..],
            b"Bearer x\xa0",
            b"Bearer\xa0x",
            b"bearer",
        ] {
            let mut h = headers(&[("cookie", "tok=good")]);
            h.insert(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
            let got = policy
                .token(&h, None)
                .and_then(|p| p.text().map(str::to_string));
            assert_eq!(got, Err(AuthError::RepeatedToken), "{value:?}");
        }
        let h = headers(&[("cookie", "tok=good"), ("authorization", "Basic eDp5")]);
        assert_eq!(
            policy
                .token(&h, None)
                .and_then(|p| p.text().map(str::to_string)),
            Ok("good".into())
        );
        let header = with_sources(&["bearer", "header:x-api-token"]);
        let h = headers(&[bearer, ("x.api.token", "x")]);
        assert_eq!(header.token(&h, None), Err(AuthError::RepeatedToken));
        let h = headers(&[bearer, ("cookie", "stok=x; tok_id=y")]);
        assert_eq!(
            policy
                .token(&h, Some("a=1"))
                .and_then(|p| p.text().map(str::to_string)),
            Ok("good".into())
        );
        // Alone, such a copy is no token.
        let h = headers(&[("cookie", "a=b tok=x")]);
        assert_eq!(policy.token(&h, None), Err(AuthError::MissingToken));
    }

    fn with_sources(sources: &[&str]) -> Policy {
        let mut p = Policy::bearer(1);
        p.token_from = sources
            .iter()
            .map(|s| crate::config::token_source(s).unwrap())
            .collect();
        p
    }

    #[test]
    fn query_tokens_are_read_as_the_upstream_reads_them() {
        let p = with_sources(&["bearer", "query:access_token"]);
        let none = HeaderMap::new();
        let token = |q: &str| {
            p.token(&none, Some(q))
                .and_then(|p| p.text().map(str::to_string))
        };
        assert_eq!(token("a=1&access_token=t.o.k"), Ok("t.o.k".into()));
        assert_eq!(token("access%5Ftoken=t%2Eo.k"), Ok("t.o.k".into()));
        assert_eq!(token("access_token="), Err(AuthError::MissingToken));
        assert_eq!(token("token=x"), Err(AuthError::MissingToken));
        assert_eq!(
            token("access_token=a&access_token=b"),
            Err(AuthError::RepeatedToken)
        );
        // From two sources at once: which one would the upstream read?
        let both = headers(&[("authorization", "Bearer a")]);
        assert_eq!(
            p.token(&both, Some("access_token=b")),
            Err(AuthError::RepeatedToken)
        );
        assert_eq!(
            p.token(&both, None)
                .and_then(|p| p.text().map(str::to_string))
                .as_deref(),
            Ok("a")
        );
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        let s = TokenSource::Bearer;
        assert_eq!(
            ex(&s, &headers(&[("authorization", "bearer abc")])),
            Ok("abc".into())
        );
        assert_eq!(
            ex(&s, &headers(&[("authorization", "Bearer  abc ")])),
            Ok("abc".into())
        );
        assert_eq!(
            ex(&s, &headers(&[("authorization", "abc")])),
            Err(AuthError::MissingToken)
        );
        assert_eq!(
            ex(&s, &headers(&[("authorization", "Basic abc")])),
            Err(AuthError::MissingToken)
        );
        assert_eq!(
            ex(&s, &headers(&[("authorization", "Bearer ")])),
            Err(AuthError::MissingToken)
        );
        // RFC 9449 §7.1: the DPoP scheme, told apart from Bearer.
        let h = headers(&[("authorization", "DPoP abc")]);
        let dpop = s.extract(&h, None);
        assert_eq!(
            dpop,
            Ok(Presented {
                token: Token::Field(b"abc"),
                dpop: true
            })
        );
        let h = headers(&[("authorization", "Bearer abc")]);
        let bearer = s.extract(&h, None);
        assert!(!bearer.unwrap().dpop);
        for value in ["DPoPabc", "DPoP ", "DPoP\tabc"] {
            let h = headers(&[("authorization", value)]);
            assert_eq!(ex(&s, &h), Err(AuthError::MissingToken), "{value}");
        }
        let policy = with_sources(&["bearer", "cookie:tok"]);
        let h = headers(&[("cookie", "tok=good"), ("authorization", "DPoP\tx")]);
        assert_eq!(policy.token(&h, None), Err(AuthError::RepeatedToken));
    }

    #[test]
    fn raw_header_and_cookie_sources() {
        let h = headers(&[
            ("authorization", "tok1"),
            ("x-api-token", "tok2"),
            ("cookie", "a=1; session=tok3"),
        ]);
        assert_eq!(ex(&TokenSource::RawAuthorization, &h), Ok("tok1".into()));
        assert_eq!(
            ex(
                &crate::config::token_source("header:X-Api-Token").unwrap(),
                &h
            ),
            Ok("tok2".into())
        );
        assert_eq!(
            ex(&crate::config::token_source("cookie:session").unwrap(), &h),
            Ok("tok3".into())
        );
        assert_eq!(
            ex(&crate::config::token_source("cookie:other").unwrap(), &h),
            Err(AuthError::MissingToken)
        );
        assert!(crate::config::token_source("pigeon:token").is_err());
    }

    #[test]
    fn a_credential_sent_twice_is_refused() {
        let repeated = Err(AuthError::RepeatedToken);
        let two = headers(&[
            ("authorization", "Bearer good"),
            ("authorization", "Bearer forged"),
        ]);
        assert_eq!(ex(&TokenSource::Bearer, &two), repeated);
        assert_eq!(ex(&TokenSource::RawAuthorization, &two), repeated);
        let source = crate::config::token_source("header:x-api-token").unwrap();
        let spelled = headers(&[("x-api-token", "good"), ("x_api_token", "forged")]);
        assert_eq!(ex(&source, &spelled), repeated);
        let cookie = crate::config::token_source("cookie:session").unwrap();
        let cookies = headers(&[
            ("cookie", "session=good"),
            ("cookie", "a=1; session=forged"),
        ]);
        assert_eq!(ex(&cookie, &cookies), repeated);
        let one = headers(&[("cookie", "session=good; sessionx=1")]);
        assert_eq!(ex(&cookie, &one), Ok("good".into()));
        // Other spellings an upstream reads as the same name.
        for pair in [
            "session =forged",
            "SESSION=forged",
            " session=forged",
            "Session=forged",
        ] {
            let two = headers(&[("cookie", &format!("session=good; {pair}"))]);
            assert_eq!(ex(&cookie, &two), repeated, "{pair}");
        }
        let query = crate::config::token_source("query:access_token").unwrap();
        let q = |s: &str| {
            query
                .extract(&HeaderMap::new(), Some(s))
                .and_then(|p| p.text().map(str::to_string))
        };
        for other in [
            "ACCESS_TOKEN=forged",
            "access.token=forged",
            "Access_Token=forged",
        ] {
            assert_eq!(
                q(&format!("{other}&access_token=good")),
                repeated,
                "{other}"
            );
        }
        // Another spelling alone is no token.
        assert_eq!(q("ACCESS_TOKEN=forged"), Err(AuthError::MissingToken));
        assert_eq!(
            ex(&cookie, &headers(&[("cookie", "SESSION=forged")])),
            Err(AuthError::MissingToken)
        );
    }

    #[test]
    fn header_values_are_deterministic_and_safe() {
        let v = |j: &str| {
            let claims = Claims::parse(format!(r#"{{"v":{j}}}"#).into()).unwrap();
            header_value(claims.get("v").unwrap())
        };
        assert_eq!(v(r#""alice""#).unwrap(), "alice");
        assert_eq!(v(r#"["a","b",3]"#).unwrap(), "a,b,3");
        assert_eq!(v(r#"{"k":1}"#).unwrap(), r#"{"k":1}"#);
        assert_eq!(v("42").unwrap(), "42");
        assert!(v(r#""evil\r\nx-injected: 1""#).is_none());
        assert!(v(r#""nul\u0000""#).is_none());
        assert!(v("null").is_none());
        // A list whose items cannot be told apart once joined.
        assert!(v(r#"["admin,superuser","x"]"#).is_none());
        assert!(v(r#"[["a"],"b"]"#).is_none());
    }
}
