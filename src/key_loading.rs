//! Every issuer's keys, loaded: HS256 secrets from the environment or a
//! file, PEM key files, a key generated once and kept in the store for an
//! issuer that configures none, and an external issuer's keys as the
//! registry holds them. The I/O that `auth` leaves to its callers: it makes
//! keys of what is read here.

use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

use crate::auth::keys::{self, IssuerInfo, Key, KeyError, KeySet, Material};
use crate::config::{Config, Issuer, IssuerKind, KeyConfig, KeySource};
use crate::jwk::ExternalKeys;
use crate::store::{Secrets, StoredSecret};

/// Loads every issuer's keys. An issuer with no key configured gets an HS256
/// key generated on first start and kept in the store, so its tokens survive
/// restarts; an external issuer's keys are what `external` holds for it.
pub async fn load(
    config: &Config,
    store: &dyn Secrets,
    external: impl Fn(&str) -> Option<Arc<ExternalKeys>>,
) -> Result<KeySet, KeyError> {
    let infos = config
        .issuers
        .iter()
        .map(|i| IssuerInfo {
            name: i.name.clone(),
            iss: i.iss.clone(),
            oauth2_iss: i.oauth2.as_ref().map(|o| o.issuer_id.clone()),
            allow_no_exp: i.allow_no_exp,
            login_client: i
                .login
                .as_ref()
                .filter(|_| i.external.is_some())
                .map(|l| l.client_id.clone()),
        })
        .collect();
    let mut own = Vec::new();
    for (index, issuer) in config.issuers.iter().enumerate() {
        // Only an issuer whose tokens portero mints signs with a key of its own.
        let signs = issuer.kind == IssuerKind::Jwt
            && issuer.external.is_none()
            && issuer.introspection.is_none();
        if issuer.keys.is_empty() && signs {
            own.push(generated_key(issuer, index, store).await?);
        }
        if issuer.keys.is_empty() && issuer.kind == IssuerKind::OAuth2 {
            own.push(generated_es256(issuer, index, store).await?);
        }
        for k in &issuer.keys {
            own.push(keys::configured(
                &issuer.name,
                index,
                k,
                material(issuer, k)?,
            )?);
        }
    }
    let external = config
        .issuers
        .iter()
        .map(|i| i.external.as_ref().and_then(|_| external(&i.name)))
        .collect();
    let own = own.into_iter().map(Arc::new).collect();
    Ok(KeySet::build(infos, own, external))
}

/// The bytes of configured key `k`, from the environment or its files.
fn material(issuer: &Issuer, k: &KeyConfig) -> Result<Material, KeyError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| KeyError::Read {
            issuer: issuer.name.clone(),
            kid: k.kid.clone(),
            path: path.display().to_string(),
            source,
        })
    };
    Ok(match &k.source {
        KeySource::SecretEnv(var) => {
            let secret = std::env::var(var).map_err(|_| KeyError::MissingEnv {
                issuer: issuer.name.clone(),
                kid: k.kid.clone(),
                var: var.clone(),
            })?;
            Material::Secret(secret.trim().as_bytes().to_vec())
        }
        KeySource::SecretFile(path) => Material::Secret(read(path)?.trim_ascii().to_vec()),
        KeySource::Pem { private, public } => Material::Pem {
            private: private.as_deref().map(read).transpose()?,
            public: public.as_deref().map(read).transpose()?,
        },
    })
}

/// A standard issuer's generated key: ES256, whose public half its JWKS
/// publishes, so that clients can check its ID tokens (an HS256 secret
/// is nobody's to check with). Kept in the store as PKCS #8, under its
/// own name, like the HS256 keys.
async fn generated_es256(
    issuer: &Issuer,
    index: usize,
    store: &dyn Secrets,
) -> Result<Key, KeyError> {
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let failed = |message: String| KeyError::Generate {
        issuer: issuer.name.clone(),
        message,
    };
    let fresh_key = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let der = fresh_key
        .to_pkcs8_der()
        .map_err(|e| failed(e.to_string()))?;
    let mut id = [0u8; 6];
    rand::thread_rng().fill_bytes(&mut id);
    let fresh = StoredSecret {
        kid: format!("{}-{}", issuer.name, URL_SAFE_NO_PAD.encode(id)),
        secret: der.as_bytes().to_vec(),
    };
    let stored = store
        .secret_or_insert(&format!("\u{1}oauth2-key:{}", issuer.name), fresh)
        .await
        .map_err(|e| failed(e.to_string()))?;
    use p256::pkcs8::DecodePrivateKey;
    let key = p256::SecretKey::from_pkcs8_der(&stored.secret).map_err(|e| failed(e.to_string()))?;
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| failed(e.to_string()))?;
    let public = key
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| failed(e.to_string()))?;
    let config = KeyConfig {
        kid: stored.kid,
        alg: jsonwebtoken::Algorithm::ES256,
        source: KeySource::Pem {
            private: None,
            public: None,
        },
        verify_only: false,
    };
    let material = Material::Pem {
        private: Some(private.as_bytes().to_vec()),
        public: Some(public.into_bytes()),
    };
    keys::configured(&issuer.name, index, &config, material)
}

/// A generated HS256 key: created once, kept in the store, the same on every
/// start (and, with a shared store, on every instance).
async fn generated_key(
    issuer: &Issuer,
    index: usize,
    store: &dyn Secrets,
) -> Result<Key, KeyError> {
    let mut secret = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let mut id = [0u8; 6];
    rand::thread_rng().fill_bytes(&mut id);
    let fresh = StoredSecret {
        kid: format!("{}-{}", issuer.name, URL_SAFE_NO_PAD.encode(id)),
        secret,
    };
    let stored = store
        .secret_or_insert(&issuer.name, fresh)
        .await
        .map_err(|e| KeyError::Generate {
            issuer: issuer.name.clone(),
            message: e.to_string(),
        })?;
    Ok(Key::hs256(stored.kid, index, &stored.secret))
}
