//! The authorization server's metadata (RFC 8414 §2), which is also its
//! OpenID Connect discovery document (OpenID Connect Discovery 1.0 §3):
//! only what is implemented is advertised.

use serde_json::{json, Value};

use super::mint::OFFLINE_ACCESS;
use super::{token, Answer, Endpoints};
use crate::config::{AccountForm, ClientAuth};
use crate::identity::profile;

/// The document, readable from any origin (browser-based clients fetch it).
pub fn answer(ctx: &Endpoints<'_>) -> Answer {
    Answer {
        public: true,
        ..Answer::ok(document(ctx))
    }
}

fn document(ctx: &Endpoints<'_>) -> Value {
    let issuer = &ctx.settings.issuer_id;
    let mut methods = vec!["client_secret_basic", "client_secret_post"];
    // Only where a client has keys to sign with (or an outside identity).
    let asserting = ctx
        .clients()
        .iter()
        .any(|c| c.auth_method == Some(ClientAuth::PrivateKeyJwt));
    if asserting {
        methods.push("private_key_jwt");
    }
    // RFC 8705 §2: the mutual-TLS methods its clients use.
    for method in [
        ClientAuth::TlsClientAuth,
        ClientAuth::SelfSignedTlsClientAuth,
    ] {
        if ctx.clients().iter().any(|c| c.auth_method == Some(method)) {
            methods.push(method.name());
        }
    }
    let mut doc = json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/token"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "grant_types_supported": token::grants(ctx).iter().map(|g| g.name()).collect::<Vec<_>>(),
        "response_types_supported": [],
        "revocation_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_methods_supported": methods,
        "dpop_signing_alg_values_supported": crate::dpop::ALGORITHMS,
    });
    if ctx.settings.authorization_code {
        // RFC 9126 §5.
        doc["pushed_authorization_request_endpoint"] = json!(format!("{issuer}/par"));
        doc["require_pushed_authorization_requests"] = json!(ctx.settings.require_pushed_requests);
    }
    let mut scopes: Vec<&str> = ctx
        .clients()
        .iter()
        .flat_map(|p| p.permissions.iter().map(String::as_str))
        .collect();
    if ctx.settings.authorization_code {
        // Public clients prove themselves with PKCE alone.
        methods.push("none");
        scopes.extend(["openid", OFFLINE_ACCESS]);
        sign_in_metadata(ctx, &mut doc);
    }
    doc["token_endpoint_auth_methods_supported"] = json!(methods);
    if asserting {
        // A client's keys sign with their own algorithm (`crate::jwk`).
        let algs = [
            "ES256", "ES384", "EdDSA", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512",
        ];
        for endpoint in ["token", "revocation", "introspection"] {
            doc[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")] = json!(algs);
        }
    }
    mutual_tls_metadata(ctx, &mut doc);
    scopes.sort_unstable();
    scopes.dedup();
    if !scopes.is_empty() {
        doc["scopes_supported"] = json!(scopes);
    }
    // HS256 keys are secrets: only an issuer that signs with a public-key
    // algorithm has keys to publish.
    if let Some(alg) = signing_alg(ctx) {
        doc["jwks_uri"] = json!(format!("{}/.well-known/jwks.json", ctx.settings.public_url));
        if ctx.settings.authorization_code {
            doc["id_token_signing_alg_values_supported"] = json!([alg]);
        }
    }
    doc
}

/// RFC 8705: tokens bound to the certificate of a mutual-TLS request, and
/// the endpoints on the mutual-TLS listener where it is elsewhere (§5).
fn mutual_tls_metadata(ctx: &Endpoints<'_>, doc: &mut Value) {
    doc["tls_client_certificate_bound_access_tokens"] = json!(true);
    let Some(mtls) = &ctx.settings.mtls_issuer_id else {
        return;
    };
    let mut aliases = json!({
        "token_endpoint": format!("{mtls}/token"),
        "revocation_endpoint": format!("{mtls}/revoke"),
        "introspection_endpoint": format!("{mtls}/introspect"),
    });
    if ctx.settings.authorization_code {
        aliases["pushed_authorization_request_endpoint"] = json!(format!("{mtls}/par"));
        aliases["userinfo_endpoint"] = json!(format!("{mtls}/userinfo"));
    }
    doc["mtls_endpoint_aliases"] = aliases;
}

/// The authorization endpoint and OpenID Connect's members.
fn sign_in_metadata(ctx: &Endpoints<'_>, doc: &mut Value) {
    let issuer = &ctx.settings.issuer_id;
    doc["authorization_endpoint"] = json!(format!("{issuer}/authorize"));
    doc["response_types_supported"] = json!(["code"]);
    doc["response_modes_supported"] = json!(["query"]);
    doc["code_challenge_methods_supported"] = json!(["S256"]);
    doc["authorization_response_iss_parameter_supported"] = json!(true);
    doc["userinfo_endpoint"] = json!(format!("{issuer}/userinfo"));
    doc["end_session_endpoint"] = json!(format!("{issuer}/end_session"));
    doc["subject_types_supported"] = json!(["public"]);
    doc["prompt_values_supported"] = json!(["none", "login", "consent"]);
    doc["claims_supported"] = json!(claims_supported(ctx));
    doc["acr_values_supported"] = json!(crate::factors::ACR_LEVELS);
    if !ctx.settings.resources.is_empty() {
        doc["resource_indicators_supported"] = json!(true);
    }
    if ctx.settings.registration != crate::config::Registration::Off {
        doc["registration_endpoint"] = json!(format!("{issuer}/register"));
    }
    if ctx.settings.metadata_documents.is_some() {
        doc["client_id_metadata_document_supported"] = json!(true);
    }
}

/// Every claim an ID token (`oidc::id_token`) or userinfo (the user's
/// claims, as `mint::dialect_claims` writes them) may carry: a standard
/// issuer's configured users' own claims by name. A user store's or an
/// import's claims are known only when a user is read.
fn claims_supported(ctx: &Endpoints<'_>) -> Vec<String> {
    let id_token = [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "amr",
        "acr",
        "nonce",
        "sid",
    ];
    let mut names: Vec<String> = id_token.iter().map(|c| c.to_string()).collect();
    let form = ctx.issuer.accounts.form;
    names.extend(profile::claim_names(form).iter().map(|c| c.to_string()));
    if form == AccountForm::Standard {
        let users = ctx.issuer.accounts.principals.iter();
        names.extend(users.flat_map(|u| u.claims.keys().cloned()));
    }
    names.sort_unstable();
    names.dedup();
    names
}

/// The algorithm of the issuer's signing key, if it is a public-key one.
pub fn signing_alg(ctx: &Endpoints<'_>) -> Option<&'static str> {
    let key = ctx.issuer.keys.signing_key(ctx.issuer.index)?;
    (key.alg != jsonwebtoken::Algorithm::HS256).then_some(key.alg_name)
}
