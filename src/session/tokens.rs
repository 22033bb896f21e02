//! The provider's signed statements about a browser: the ID token that
//! ends a sign-in (OpenID Connect Core §3.1.3.7) and the logout token of a
//! back-channel logout (Back-Channel Logout 1.0 §2.6). The signature is
//! checked with the provider's own keys, each key's own algorithm (the
//! token never picks it); then every claim the specifications ask for.

use serde_json::{Map, Value};

use crate::auth::validate::Validator;

/// The event a logout token must carry.
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// A logout token older than this is refused (its `iat`).
const LOGOUT_TOKEN_AGE: i64 = 300;

/// What an ID token says once checked.
#[derive(Debug, Clone)]
pub struct Identity {
    pub claims: Map<String, Value>,
    pub sub: String,
    pub sid: Option<String>,
}

/// What a logout token asks to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logout {
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub jti: String,
    pub iat: i64,
}

/// The expectations of one check: whose token, for which client, when.
pub struct Expect<'a> {
    pub validator: &'a Validator,
    pub provider: usize,
    pub own: bool,
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub now: i64,
    pub leeway: i64,
}

impl Expect<'_> {
    /// The signature by the provider's keys, then the claims as a map.
    fn signed(&self, token: &str) -> Result<Map<String, Value>, &'static str> {
        let verified = match self.own {
            true => self.validator.verify_id_token(token),
            false => self.validator.verify_for_client(token),
        }
        .map_err(|_| "its signature is not the provider's")?;
        if verified.issuer != self.provider {
            return Err("it is another issuer's");
        }
        let payload = token.split('.').nth(1).ok_or("malformed")?;
        let json = base64_simd::URL_SAFE_NO_PAD
            .decode_to_vec(payload)
            .map_err(|_| "malformed")?;
        let claims: Map<String, Value> = serde_json::from_slice(&json).map_err(|_| "malformed")?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer) {
            return Err("iss is not the provider's");
        }
        if !audience_is(&claims, self.client_id) {
            return Err("aud is not this client");
        }
        Ok(claims)
    }

    /// An ID token: signed by the provider, for this client (`aud`, and
    /// `azp` where present or where `aud` names others), in time, with the
    /// sign-in's `nonce`.
    pub fn id_token(&self, token: &str, nonce: &str) -> Result<Identity, &'static str> {
        // Explicit typing (RFC 8725 §3.11): a token typed as another kind
        // (a logout token, an access token) is never taken as an ID token.
        match typ(token)? {
            None => {}
            Some(typ) if is_media_type(&typ, "JWT") => {}
            Some(_) => return Err("its typ is not an ID token's (JWT)"),
        }
        let claims = self.signed(token)?;
        let number = |name: &str| claims.get(name).and_then(Value::as_i64);
        let exp = number("exp").ok_or("it has no exp")?;
        if self.now >= exp.saturating_add(self.leeway) {
            return Err("it has expired");
        }
        if let Some(nbf) = claims.get("nbf") {
            let nbf = nbf.as_i64().ok_or("its nbf is not a number")?;
            if nbf > self.now.saturating_add(self.leeway) {
                return Err("it is not valid yet (nbf)");
            }
        }
        let iat = number("iat").ok_or("it has no iat")?;
        if iat > self.now.saturating_add(self.leeway) {
            return Err("it is issued in the future");
        }
        let sent = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
        if !super::seal::same(sent.as_bytes(), nonce.as_bytes()) {
            return Err("its nonce is not the sign-in's");
        }
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let sub = sub.ok_or("it has no sub")?.to_string();
        let sid = claims
            .get("sid")
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(Identity { claims, sub, sid })
    }

    /// A logout token: signed by the provider, for this client, recent,
    /// naming the back-channel logout event, a `sid` or a `sub`, a `jti`,
    /// and no `nonce` (an ID token is no logout token).
    pub fn logout_token(&self, token: &str) -> Result<Logout, &'static str> {
        match typ(token)? {
            None => {}
            Some(typ) if is_media_type(&typ, "logout+jwt") || is_media_type(&typ, "JWT") => {}
            Some(_) => return Err("its typ is not logout+jwt"),
        }
        let claims = self.signed(token)?;
        if claims.contains_key("nonce") {
            return Err("it carries a nonce");
        }
        let iat = claims
            .get("iat")
            .and_then(Value::as_i64)
            .ok_or("it has no iat")?;
        if iat > self.now.saturating_add(self.leeway)
            || iat < self.now - LOGOUT_TOKEN_AGE - self.leeway
        {
            return Err("its iat is not recent");
        }
        if let Some(exp) = claims.get("exp") {
            if exp
                .as_i64()
                .is_none_or(|exp| self.now >= exp.saturating_add(self.leeway))
            {
                return Err("it has expired");
            }
        }
        let event = claims
            .get("events")
            .and_then(Value::as_object)
            .and_then(|e| e.get(BACKCHANNEL_EVENT));
        if !event.is_some_and(Value::is_object) {
            return Err("it names no back-channel logout event");
        }
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let jti = text("jti").ok_or("it has no jti")?;
        let (sub, sid) = (text("sub"), text("sid"));
        if sub.is_none() && sid.is_none() {
            return Err("it names neither sid nor sub");
        }
        Ok(Logout { sub, sid, jti, iat })
    }
}

/// The JOSE header's `typ`, read before the signature is checked (it
/// picks nothing: only whether the token is of the kind asked for).
fn typ(token: &str) -> Result<Option<String>, &'static str> {
    let header = token.split('.').next().ok_or("malformed")?;
    let header = base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(header)
        .map_err(|_| "malformed")?;
    let header: Map<String, Value> = serde_json::from_slice(&header).map_err(|_| "malformed")?;
    match header.get("typ") {
        None => Ok(None),
        Some(Value::String(typ)) => Ok(Some(typ.clone())),
        Some(_) => Err("its typ is not text"),
    }
}

/// Whether `typ` names the media type `name`, with or without its
/// `application/` prefix (RFC 7515 §4.1.9), in any case.
fn is_media_type(typ: &str, name: &str) -> bool {
    let typ = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    typ.eq_ignore_ascii_case(name)
}

/// `aud` is the client, or a list holding it; with others beside it,
/// `azp` must name the client (Core §3.1.3.7 items 3–5). An `azp` that
/// names another client is refused wherever it is.
fn audience_is(claims: &Map<String, Value>, client_id: &str) -> bool {
    let azp = claims.get("azp").map(|v| v.as_str() == Some(client_id));
    match claims.get("aud") {
        Some(Value::String(aud)) => aud == client_id && azp != Some(false),
        Some(Value::Array(list)) => {
            let holds = list.iter().any(|v| v.as_str() == Some(client_id));
            holds
                && match list.len() {
                    1 => azp != Some(false),
                    _ => azp == Some(true),
                }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_media_type_is_read_with_or_without_its_prefix_in_any_case() {
        assert!(is_media_type("JWT", "JWT"));
        assert!(is_media_type("jwt", "JWT"));
        assert!(is_media_type("application/jwt", "JWT"));
        assert!(is_media_type("Application/Logout+JWT", "logout+jwt"));
        assert!(!is_media_type("at+jwt", "JWT"));
        assert!(!is_media_type("application/at+jwt", "JWT"));
        assert!(!is_media_type("logout+jwt", "JWT"));
        assert!(!is_media_type("é", "JWT"));
    }

    #[test]
    fn the_audience_is_this_client_and_azp_agrees() {
        assert!(audience_is(&map(json!({"aud": "web"})), "web"));
        assert!(audience_is(&map(json!({"aud": ["web"]})), "web"));
        assert!(audience_is(
            &map(json!({"aud": ["web", "api"], "azp": "web"})),
            "web"
        ));
        assert!(!audience_is(&map(json!({"aud": ["web", "api"]})), "web"));
        assert!(!audience_is(
            &map(json!({"aud": ["web", "api"], "azp": "api"})),
            "web"
        ));
        assert!(!audience_is(
            &map(json!({"aud": "web", "azp": "api"})),
            "web"
        ));
        assert!(!audience_is(&map(json!({"aud": "api"})), "web"));
        assert!(!audience_is(&map(json!({})), "web"));
    }
}
