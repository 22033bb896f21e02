//! A public client whose redirect URI is on another origin than the
//! issuer is a browser app on that origin: its call to the token endpoint
//! is cross-origin, and unless the issuer's `cors` allows that origin every
//! browser blocks it (and portero refuses it, so no code is spent).

use super::super::file::FileOAuthClient;
use super::super::model::CorsPolicy;
use super::Checker;
use crate::redirect_uri::is_loopback;

impl Checker<'_> {
    /// Each public client's https redirect URIs on an origin other than
    /// `public_url`'s must be allowed by the issuer's `cors`. Loopback ones
    /// are left alone: native apps use them (RFC 8252 §7.3), and a code on
    /// any port names no one origin.
    pub(super) fn browser_clients_reach_the_token_endpoint(
        &mut self,
        key: &str,
        clients: &[FileOAuthClient],
        cors: Option<&CorsPolicy>,
        public_url: &str,
    ) {
        let Ok(ours) = url::Url::parse(public_url).map(|u| u.origin()) else {
            return;
        };
        for (n, client) in clients.iter().enumerate() {
            let Some(uris) = client
                .redirect_uris
                .as_ref()
                .filter(|_| client.secret_hash.is_none())
            else {
                continue;
            };
            let blocked = uris.get_ref().iter().find_map(|uri| {
                let url = url::Url::parse(uri).ok()?;
                let origin = url.origin();
                let theirs = origin.ascii_serialization();
                let allowed = |c: &CorsPolicy| {
                    http::HeaderValue::from_str(&theirs).is_ok_and(|o| c.allows_origin(&o))
                };
                let cross = url.scheme() == "https" && !is_loopback(&url) && origin != ours;
                (cross && !cors.is_some_and(allowed)).then_some(theirs)
            });
            if let Some(origin) = blocked {
                self.problem(
                    uris,
                    format!("{key}[{n}].redirect_uris"),
                    format!(
                        "a public client on {origin} calls the token endpoint from another origin \
                         than server.public_url: give the issuer cors = \"NAME\", a [cors.NAME] \
                         that allows {origin}, or every browser blocks the call"
                    ),
                );
            }
        }
    }
}
