//! Browser sessions: `[sessions]` (the gateway's own paths and the
//! sessions' lifetimes), an issuer's `login_*` keys (portero as that
//! provider's OpenID Connect client), and a route's `login`.

use std::time::Duration;

/// `[sessions]`: where portero's own session endpoints are, and how long
/// a session lives. Read only when a route signs people in.
#[derive(Debug, Clone, PartialEq)]
pub struct Sessions {
    /// Where a provider sends the browser back with a code.
    pub callback_path: String,
    /// `POST` here ends the browser's session (and at its provider).
    pub logout_path: String,
    /// OpenID Connect Back-Channel Logout 1.0: providers post logout tokens here.
    pub backchannel_logout_path: String,
    /// A browser a forward-auth proxy turned away begins its sign-in here
    /// (`?rd=/the/page`).
    pub start_path: String,
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after its sign-in, used or not.
    pub absolute_timeout: Duration,
    /// The provider's access token is refreshed this long before it expires.
    pub refresh_before: Duration,
    /// Where the provider sends the browser after logging out: a URL
    /// registered with it. Default: `<public_url>/`.
    pub post_logout_redirect_uri: String,
    /// `<server.public_url>`, without a trailing `/`: the callback's origin.
    pub public_url: String,
    /// The cookies' names: `__Host-` prefixed (and `Secure`) when
    /// `public_url` is https, as browsers allow only then.
    pub cookie: String,
    pub login_cookie: String,
    pub secure: bool,
}

impl Sessions {
    /// `<public_url><callback_path>`: the `redirect_uri` registered with providers.
    pub fn redirect_uri(&self) -> String {
        format!("{}{}", self.public_url, self.callback_path)
    }

    /// The paths portero answers itself, before routing.
    pub fn owns(&self, path: &str) -> bool {
        path == self.callback_path
            || path == self.logout_path
            || path == self.backchannel_logout_path
            || path == self.start_path
    }
}

/// An issuer's `login_*` keys: portero signs people in at it as this
/// OpenID Connect client (authorization code with PKCE).
#[derive(Debug, Clone, PartialEq)]
pub struct LoginClient {
    pub client_id: String,
    /// The variable holding the client's secret; `None`: a public client.
    pub secret_env: Option<String>,
    /// Asked for at sign-in; `openid` always among them.
    pub scopes: Vec<String>,
    /// The userinfo endpoint's claims are added to the ID token's.
    pub userinfo: bool,
}

/// A route's `login`: browsers without a session are sent to sign in at
/// the provider (issuer index `provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLogin {
    pub provider: usize,
    /// `login_pass_token`: the provider's access token goes upstream as a
    /// bearer token.
    pub pass_token: bool,
}
