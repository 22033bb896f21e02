//! Client authentication (RFC 6749 §2.3.1): HTTP Basic or the form's
//! `client_id` and `client_secret`, never both; checked against the
//! issuer's principals with the legacy endpoint's lockout, counted together.
//! Or a signed assertion instead of a secret (`assertion`).

mod assertion;
mod tls;

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::StatusCode;

use super::form::Form;
use super::{Endpoints, Error, Request};
use crate::config::{ClientAuth, Principal};
use crate::credentials::stand_in_of;
use crate::identity::{profile, MAX_FIELD_LEN};
use crate::identity::{Kind, Outcome, Reason};

/// The credentials a request presents.
struct Presented {
    id: String,
    secret: String,
    /// The secret as sent, where a client did not form-encode its Basic
    /// credentials (requests-oauthlib, for one): tried when `secret`,
    /// decoded, does not match.
    undecoded: Option<String>,
    method: ClientAuth,
}

fn invalid_client(method: Option<ClientAuth>, description: &str) -> Error {
    Error {
        status: StatusCode::UNAUTHORIZED,
        code: "invalid_client",
        description: description.to_string(),
        // Only where Basic is how it authenticates, or could be.
        basic_challenge: !method.is_some_and(|m| m == ClientAuth::Post || m.is_mutual_tls()),
    }
}

const FAILED: &str = "client authentication failed";

/// `application/x-www-form-urlencoded` decoding of one Basic credential.
fn form_decoded(text: &str) -> String {
    let plus_as_space = text.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

fn presented(req: &Request<'_>, form: &Form) -> Result<Presented, Error> {
    let in_form = (form.get("client_id"), form.get("client_secret"));
    let Some(header) = req.authorization else {
        return match in_form {
            (Some(id), Some(secret)) => Ok(Presented {
                id: id.to_string(),
                secret: secret.to_string(),
                undecoded: None,
                method: ClientAuth::Post,
            }),
            (_, None) => Err(invalid_client(None, "client authentication is missing")),
            (None, Some(_)) => Err(Error::invalid_request("client_id is missing")),
        };
    };
    // RFC 6749 §2.3: one method a request. A form secret sent empty beside
    // Basic is a second method all the same.
    if form.sent("client_secret") {
        return Err(Error::invalid_request(
            "more than one client authentication method",
        ));
    }
    let basic = |text: &str| {
        let (scheme, encoded) = text.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = STANDARD.decode(encoded.trim()).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        Some((id.to_string(), secret.to_string()))
    };
    let (raw_id, raw_secret) = std::str::from_utf8(header)
        .ok()
        .and_then(basic)
        .ok_or_else(|| invalid_client(Some(ClientAuth::Basic), "malformed Basic credentials"))?;
    let id = form_decoded(&raw_id);
    // A client may name itself in the form too, if it names itself the same.
    if in_form
        .0
        .is_some_and(|named| named != id && named != raw_id)
    {
        return Err(Error::invalid_request(
            "client_id differs from the authenticated client",
        ));
    }
    let secret = form_decoded(&raw_secret);
    Ok(Presented {
        id,
        undecoded: (secret != raw_secret).then_some(raw_secret),
        secret,
        method: ClientAuth::Basic,
    })
}

/// The authenticated client, or why not: a wrong secret, an unknown,
/// inactive or blocked client, a method the client may not use, and (for
/// client-flat) a client whose company is gone all look the same to the
/// client; the WARN line and the metric tell them apart
/// (`Logins::refuse_client`).
pub async fn authenticate(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    form: &Form,
) -> Result<Arc<Principal>, Error> {
    if assertion::presented(form) {
        return assertion::authenticate(ctx, req, form).await;
    }
    // A public client names itself and sends no secret (RFC 6749 §2.1):
    // PKCE, or its refresh token's binding, proves the rest; a mutual-TLS
    // client names itself, and its certificate proves it (RFC 8705 §2).
    if req.authorization.is_none() && !form.sent("client_secret") {
        if let Some(id) = form.get("client_id") {
            if let Some(client) = mutual_tls_client(ctx, id) {
                return by_certificate(ctx, req, client);
            }
            return public_client(ctx, id, req.client).await;
        }
    }
    let p = presented(req, form)?;
    if p.id.len() > MAX_FIELD_LEN || p.secret.len() > MAX_FIELD_LEN {
        return Err(invalid_client(Some(p.method), FAILED));
    }
    let refused = |why: Reason| {
        ctx.issuer.logins.refuse_client(&p.id, why);
        match why {
            Reason::Locked => Error::new(
                StatusCode::TOO_MANY_REQUESTS,
                "invalid_client",
                "too many failed attempts; try again later",
            ),
            Reason::Unavailable => Error::unavailable(),
            _ => invalid_client(Some(p.method), FAILED),
        }
    };
    let principal = verified_client(ctx, req, &p).await.map_err(refused)?;
    let why = if let Some(why) = standing(ctx, &principal) {
        why
    } else if principal.auth_method.is_some_and(|m| m != p.method) {
        Reason::AuthMethod
    } else {
        return Ok(principal);
    };
    Err(refused(why))
}

/// The configured client `id`, if it authenticates with its certificate.
fn mutual_tls_client(ctx: &Endpoints<'_>, id: &str) -> Option<Arc<Principal>> {
    let client = ctx.clients().get(id)?;
    client
        .auth_method
        .is_some_and(ClientAuth::is_mutual_tls)
        .then(|| client.clone())
}

/// A mutual-TLS client, if the request's certificate is the one it is
/// registered by and it may have tokens now.
fn by_certificate(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    client: Arc<Principal>,
) -> Result<Arc<Principal>, Error> {
    let proved = match (req.client_cert, &client.client.tls) {
        (Some(cert), Some(rule)) => tls::matches(cert, rule),
        _ => false,
    };
    let why = match standing(ctx, &client) {
        _ if !proved => Reason::WrongSecret,
        Some(why) => why,
        None => return Ok(client),
    };
    ctx.issuer.logins.refuse_client(&client.login, why);
    Err(invalid_client(client.auth_method, FAILED))
}

/// Why a confidential client may have no tokens now, whatever it
/// presented: inactive, blocked, or (client-flat) its company gone.
fn standing(ctx: &Endpoints<'_>, client: &Principal) -> Option<Reason> {
    let company_gone = !profile::company_known(ctx.issuer.endpoint, client);
    if !client.active {
        Some(Reason::Inactive)
    } else if client.blocked {
        Some(Reason::Blocked)
    } else if company_gone {
        Some(Reason::NoCompany)
    } else {
        None
    }
}

/// The client portero itself signs people in with at this issuer (its
/// `login_client_id`), for a grant asked in process: named, not
/// authenticated. The caller is portero, which holds the client's
/// configuration, its secret among it: checking that secret would prove
/// only that the process can read its own environment, and would put
/// portero's sign-ins behind a lockout that anyone guessing the secret at
/// the token endpoint could fill. What refuses a client beyond its secret
/// refuses it here too: one the config does not list (`portero check`
/// makes the login client one it does), and a confidential one that is
/// inactive, blocked or (client-flat) without its company. A public client
/// is taken by its id, as the token endpoint takes it.
pub fn named(ctx: &Endpoints<'_>, id: &str) -> Result<Arc<Principal>, Error> {
    let refused = |why: Reason| {
        ctx.issuer.logins.refuse_client(id, why);
        invalid_client(None, FAILED)
    };
    let client = ctx
        .clients()
        .get(id)
        .cloned()
        .ok_or_else(|| refused(Reason::UnknownClient))?;
    if client.client.public {
        return Ok(client);
    }
    match standing(ctx, &client) {
        Some(why) => Err(refused(why)),
        None => Ok(client),
    }
}

/// A public client by its id: one of the issuer's listed clients without
/// a secret, or a registered one. A confidential client must authenticate:
/// one that sent no secret is refused as an unknown one is, and its log
/// line (and the metric) says what it did (`auth_method`).
async fn public_client(
    ctx: &Endpoints<'_>,
    id: &str,
    from: Option<std::net::IpAddr>,
) -> Result<Arc<Principal>, Error> {
    let why = match public_or_listed(ctx, id, from).await? {
        Some(client) if client.client.public => return Ok(client),
        Some(_) => Reason::AuthMethod,
        None => Reason::UnknownClient,
    };
    ctx.issuer.logins.refuse_client(id, why);
    Err(invalid_client(None, FAILED))
}

/// The listed or registered client `id` names (or its metadata
/// document), public or not, without authenticating it: the
/// authorization endpoint's client. `from`: the requesting address.
pub async fn public_or_listed(
    ctx: &Endpoints<'_>,
    id: &str,
    from: Option<std::net::IpAddr>,
) -> Result<Option<Arc<Principal>>, Error> {
    if id.len() > MAX_FIELD_LEN {
        return Ok(None);
    }
    if let Some(listed) = ctx.settings.clients.get(id) {
        return Ok(Some(listed.clone()));
    }
    if super::documents::names_a_document(id) {
        return super::documents::client(ctx, id, from).await;
    }
    super::registration::lookup(ctx, id).await
}

/// The client `p` names, if its secret matches: checked inside the
/// lockout, an unknown client at the cost of a known one.
async fn verified_client(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    p: &Presented,
) -> Result<Arc<Principal>, Reason> {
    let issuer = &ctx.issuer;
    // A client dialect's clients are its principals, counted as at its
    // legacy endpoint; a user dialect's clients are applications, counted
    // apart from its users (or a client could lock out the user of its name).
    let own_principals = issuer.accounts.form.has_clients();
    let kind = match own_principals {
        true => issuer.logins.principal_kind(),
        false => Kind::Client,
    };
    let mut attempt = issuer
        .logins
        .begin_attempt(kind, &p.id, req.client, req.now)
        .await?;
    let principal = match ctx.client(&mut attempt, &p.id, req.now).await {
        Ok(found) => found,
        Err(d) => {
            let _ = issuer
                .logins
                .end_attempt(attempt, Outcome::Unchecked, req.now)
                .await;
            return Err(d.into());
        }
    };
    // An unknown client costs what a known one does: the issuer's stand-in,
    // or for a user dialect's clients, one like theirs.
    let stand_in = (!own_principals).then(|| stand_in_of(ctx.clients()));
    let check = |secret| {
        issuer
            .logins
            .verify_secret_among(principal.as_deref(), secret, stand_in)
    };
    let mut verified = check(&p.secret).await;
    if let (Ok(false), Some(raw)) = (&verified, &p.undecoded) {
        verified = check(raw).await;
    }
    let outcome = match verified {
        Ok(true) => Outcome::Succeeded,
        Ok(false) => Outcome::Failed,
        Err(_) => Outcome::Unchecked,
    };
    issuer.logins.end_attempt(attempt, outcome, req.now).await?;
    match (outcome, principal) {
        (Outcome::Unchecked, _) => Err(Reason::Unavailable),
        (_, None) => Err(Reason::UnknownClient),
        (Outcome::Failed, Some(_)) => Err(Reason::WrongSecret),
        (Outcome::Succeeded | Outcome::Passed, Some(principal)) => Ok(principal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        assert_eq!(form_decoded("a%2Bb+c%3A%25"), "a+b c:%");
        assert_eq!(form_decoded("plain"), "plain");
    }
}
