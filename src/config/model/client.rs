//! An OAuth 2.0 client's profile beyond its principal: what it may do,
//! and how it proves who it is (a secret, signed assertions, or its
//! certificate: RFC 8705).

/// What an OAuth 2.0 client may do beyond authenticating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientProfile {
    /// It has no secret: it proves itself with PKCE only.
    pub public: bool,
    /// Where the authorization endpoint may send its codes; compared
    /// exactly (a loopback one on any port, RFC 8252 §7.3).
    pub redirect_uris: Vec<String>,
    /// The grants it may use (`grant_type` names); empty: those its
    /// issuer's dialect always allowed (password, refresh, exchange).
    pub grant_types: Vec<String>,
    /// The client was registered at the registration endpoint.
    pub registered: bool,
    /// The name it registered with (`client_name`), unverified.
    pub name: Option<String>,
    /// Its `client_id` is the URL of its metadata document, fetched from
    /// there: anyone's, like a registered client.
    pub metadata_document: bool,
    /// The keys its assertions are signed with (`private_key_jwt`).
    pub keys: Option<ClientKeys>,
    /// Outside identities that are this client: a token of the issuer
    /// about the subject is its assertion.
    pub federated: Vec<Federation>,
    /// It always proves a DPoP key at the token endpoint, and its tokens
    /// are bound to it (RFC 9449 §5.2 `dpop_bound_access_tokens`).
    pub dpop_bound_access_tokens: bool,
    /// Its authorization requests must come pushed (RFC 9126 §6
    /// `require_pushed_authorization_requests`).
    pub require_pushed_requests: bool,
    /// How its certificate authenticates it (mutual TLS, RFC 8705 §2).
    pub tls: Option<TlsClient>,
    /// Its tokens are bound to the certificate of the request (RFC 8705
    /// §3 `tls_client_certificate_bound_access_tokens`).
    pub certificate_bound_access_tokens: bool,
}

/// Where a client's public keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientKeys {
    /// A JWKS document, as written in the config.
    Jwks(String),
    /// The URL of its JWKS.
    Uri(String),
}

/// An outside identity of a client: `subject` of the provider issuer
/// named `issuer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Federation {
    pub issuer: String,
    pub subject: String,
}

impl ClientProfile {
    /// A client that described itself (registered, or by its metadata
    /// document): the user is asked whether it may go on, every time.
    pub fn self_described(&self) -> bool {
        self.registered || self.metadata_document
    }

    /// Whether the client may use the grant named `grant`: a public client
    /// only the authorization code and its refresh tokens.
    pub fn may_use(&self, grant: &str) -> bool {
        if self.public && !matches!(grant, "authorization_code" | "refresh_token") {
            return false;
        }
        self.grant_types.is_empty() || self.grant_types.iter().any(|g| g == grant)
    }
}

/// How an OAuth 2.0 client proves who it is (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic`, id and secret form-url-encoded.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
    /// A JWT it signs, or an outside issuer signs for it (RFC 7523 §2.2).
    PrivateKeyJwt,
    /// A certificate of the listener's roots naming it (RFC 8705 §2.1).
    TlsClientAuth,
    /// One of its own registered certificates (RFC 8705 §2.2).
    SelfSignedTlsClientAuth,
}

impl ClientAuth {
    pub fn name(self) -> &'static str {
        match self {
            Self::Basic => "client_secret_basic",
            Self::Post => "client_secret_post",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }

    /// It authenticates with a client certificate (RFC 8705 §2).
    pub fn is_mutual_tls(self) -> bool {
        matches!(self, Self::TlsClientAuth | Self::SelfSignedTlsClientAuth)
    }
}

/// What a mutual-TLS client's certificate must be (RFC 8705 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsClient {
    /// `tls_client_auth`: verified against the listener's roots, with this
    /// subject or subject alternative name.
    Named(CertificateName),
    /// `self_signed_tls_client_auth`: one of these certificates, by the
    /// base64url SHA-256 of its DER (its `jwks`' `x5c`).
    Registered(Vec<String>),
}

/// The one name RFC 8705 §2.1.2 matches a `tls_client_auth` client by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateName {
    /// `tls_client_auth_subject_dn`, RFC 4514 (`CN=app,O=Example`).
    SubjectDn(String),
    Dns(String),
    Uri(String),
    Ip(std::net::IpAddr),
    Email(String),
}
