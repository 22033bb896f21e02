//! An identity provider's key endpoints on loopback (hyper): OIDC discovery
//! metadata and a JWKS that a test can change, take down or break, with a
//! count of JWKS fetches. Plain HTTP, or HTTPS with a test CA's leaf.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::task::AbortHandle;

use super::tls::Leaf;

/// How the provider answers.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Serving = 0,
    /// `503` for everything.
    Down = 1,
    /// `200` with a JWKS that is not one.
    BrokenJwks = 2,
    /// `200` with metadata that is not metadata.
    BrokenDiscovery = 3,
}

pub struct Idp {
    pub addr: SocketAddr,
    pub base: String,
    pub iss: String,
    state: Arc<State>,
    task: AbortHandle,
}

struct State {
    iss: String,
    base: String,
    jwks: Mutex<Value>,
    mode: AtomicU8,
    jwks_fetches: AtomicUsize,
    /// `Cache-Control: max-age` of the JWKS, seconds.
    max_age: AtomicUsize,
    /// How long the JWKS takes to answer, milliseconds.
    jwks_delay_ms: AtomicUsize,
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Idp {
    pub async fn start(iss: &str) -> Idp {
        Self::serve(iss, None).await
    }

    pub async fn start_tls(iss: &str, leaf: &Leaf) -> Idp {
        Self::serve(iss, Some(leaf)).await
    }

    async fn serve(iss: &str, leaf: Option<&Leaf>) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = match leaf {
            Some(_) => format!("https://localhost:{}", addr.port()),
            None => format!("http://{addr}"),
        };
        let state = Arc::new(State {
            iss: iss.to_string(),
            base: base.clone(),
            jwks: Mutex::new(json!({"keys": []})),
            mode: AtomicU8::new(Mode::Serving as u8),
            jwks_fetches: AtomicUsize::new(0),
            max_age: AtomicUsize::new(300),
            jwks_delay_ms: AtomicUsize::new(0),
        });
        let acceptor = leaf.map(acceptor);
        let serving = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (state, acceptor) = (serving.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let delay = match req.uri().path() {
                            "/jwks" => state.jwks_delay_ms.load(Ordering::SeqCst) as u64,
                            _ => 0,
                        };
                        let reply = state.answer(req.uri().path());
                        async move {
                            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                            Ok::<_, Infallible>(reply)
                        }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                            }
                        }
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        })
        .abort_handle();
        Idp {
            addr,
            base,
            iss: iss.to_string(),
            state,
            task,
        }
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.base)
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.base)
    }

    pub fn publish(&self, keys: Vec<Value>) {
        *self.state.jwks.lock().unwrap() = json!({ "keys": keys });
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.mode.store(mode as u8, Ordering::SeqCst);
    }

    pub fn set_max_age(&self, secs: usize) {
        self.state.max_age.store(secs, Ordering::SeqCst);
    }

    pub fn set_jwks_delay(&self, millis: usize) {
        self.state.jwks_delay_ms.store(millis, Ordering::SeqCst);
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }
}

impl State {
    fn answer(&self, path: &str) -> Response<Full<Bytes>> {
        let mode = self.mode.load(Ordering::SeqCst);
        let (status, body, max_age) = match path {
            _ if mode == Mode::Down as u8 => (503, "unavailable".to_string(), None),
            "/.well-known/openid-configuration" if mode == Mode::BrokenDiscovery as u8 => {
                (200, json!({"issuer": 7}).to_string(), None)
            }
            "/.well-known/openid-configuration" => (
                200,
                json!({"issuer": self.iss, "jwks_uri": format!("{}/jwks", self.base)}).to_string(),
                None,
            ),
            "/jwks" => {
                self.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                let body = if mode == Mode::BrokenJwks as u8 {
                    "<html>maintenance</html>".to_string()
                } else {
                    self.jwks.lock().unwrap().to_string()
                };
                (200, body, Some(self.max_age.load(Ordering::SeqCst)))
            }
            _ => (404, "not found".to_string(), None),
        };
        let mut reply = Response::builder()
            .status(status)
            .header("content-type", "application/json");
        if let Some(age) = max_age {
            reply = reply.header("cache-control", format!("public, max-age={age}"));
        }
        reply.body(Full::new(Bytes::from(body))).unwrap()
    }
}

pub(super) fn acceptor(leaf: &Leaf) -> tokio_rustls::TlsAcceptor {
    let (certs, key) = leaf.chain_and_key();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A signing key of the provider's: its private half signs test tokens, its
/// public half is published as a JWK.
pub struct IdpKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
}

impl IdpKey {
    /// The fixture RSA key, for RS256 or PS256.
    pub fn rsa(kid: &str, alg: Algorithm) -> IdpKey {
        let pem = std::fs::read(super::fixture("rsa_private.pem")).unwrap();
        IdpKey {
            kid: kid.into(),
            alg,
            encoding: EncodingKey::from_rsa_pem(&pem).unwrap(),
        }
    }

    /// A fresh P-256 key, for ES256.
    pub fn ec(kid: &str) -> IdpKey {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        IdpKey {
            kid: kid.into(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
        }
    }

    /// The public JWK, with `alg`, `kid` and `use = sig`.
    pub fn jwk(&self) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        serde_json::to_value(jwk).unwrap()
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// Signed with this key, but naming `kid` in the header.
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.to_string());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// Claims of a good access token from `iss` for `aud`.
pub fn idp_claims(iss: &str, sub: &str, aud: &str) -> Value {
    json!({
        "iss": iss,
        "sub": sub,
        "aud": aud,
        "scope": "orders:read",
        "iat": super::now(),
        "exp": super::now() + 300,
    })
}
