//! A sign-in's second step, after a right password: a person with a
//! second factor gives it (a one-time code, or a recovery code in its
//! place); one who must have a factor and has none enrols a one-time code
//! now and is shown their recovery codes. Until the step is done nobody
//! is signed in: the password's success is carried to the next post in a
//! sealed ticket (`ticket`) bound to the browser's form cookie, lasting
//! five minutes, and the sign-on session begins only with the second
//! factor. A wrong code spends the person's lockout budget as a wrong
//! password does; a code is taken once, on every instance, because the
//! record it is checked against is written only over the version read.

use std::sync::Arc;

use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::auth_request::{self, Asked, AuthRequest};
use super::factor_pages::{self, Step};
use super::form::Form;
use super::{consent, csrf, page, sso, ticket, Answer, Endpoints, Request};
use crate::config::{Principal, SecondFactor};
use crate::factors::{recovery, totp};
use crate::identity::Denied;
use crate::store::{TotpSecret, UserFactors};

/// How long a right password waits for its second factor.
const PENDING_TTL: i64 = 300;
const PENDING: &str = "pending-sign-in";
const FINISHED: &str = "finished-sign-in";

/// A right password, waiting for the second factor.
#[derive(Serialize, Deserialize)]
struct Pending {
    /// Claimed once when the step succeeds: a ticket signs in once.
    id: String,
    login: String,
    /// The form cookie of the browser it was made for.
    binding: String,
    /// What the session will remember of the password checked.
    credential: String,
    expires_at: i64,
    /// A one-time code being enrolled: its secret.
    #[serde(default)]
    enrol: Option<Vec<u8>>,
    /// The person has passkeys: the page offers them too.
    #[serde(default)]
    passkeys: bool,
    /// The person has codes to type (an authenticator app, recovery codes).
    #[serde(default = "yes")]
    codes: bool,
}

fn yes() -> bool {
    true
}

/// A sign-in done, whose page (recovery codes) has a Continue button: the
/// session it began goes on even where the request asked for a fresh
/// sign-in (`prompt=login`, `max_age`), as it is that sign-in.
#[derive(Serialize, Deserialize)]
struct Finished {
    sid: String,
    binding: String,
    expires_at: i64,
    /// The authorization request it finished (a digest of its
    /// parameters): no other request goes on with it.
    request: String,
}

/// A digest of an authorization request's parameters.
fn request_digest(r: &AuthRequest) -> String {
    let text = serde_json::to_string(&r.params).expect("strings serialize");
    crate::tokens::sha256_base64url(&text)
}

/// The methods a password and a one-time (or recovery) code amount to.
fn with_code() -> Vec<String> {
    ["pwd", "otp", "mfa"].map(String::from).to_vec()
}

fn binding<'a>(ctx: &Endpoints<'_>, req: &Request<'a>) -> &'a str {
    sso::cookie(req, &sso::cookie_name(ctx, "portero-form")).unwrap_or_default()
}

/// What follows a right password: the second step where the person has a
/// factor and it is asked for (by the issuer's `second_factor`, or by the
/// request's `acr_values`), enrolment where one is required and they have
/// none; otherwise they are signed in.
pub async fn after_password(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    r: &AuthRequest,
    asked: &Asked,
    user: Arc<Principal>,
) -> Answer {
    let issuer = &ctx.issuer.config.name;
    let held = match ctx.issuer.store.factors(issuer, &user.login).await {
        Ok(held) => held,
        Err(_) => return auth_request::back_with_error(ctx, r, super::Error::unavailable()),
    };
    let passkeys_on = ctx.settings.sign_in.passkeys.is_some();
    let has = held
        .as_ref()
        .is_some_and(|h| h.has_usable_factor(passkeys_on));
    let policy = ctx.issuer.accounts.second_factor;
    let asks_more = !crate::factors::meets(crate::factors::ACR_PASSWORD, &asked.acr_values);
    let passkeys = passkeys_on && held.as_ref().is_some_and(|h| !h.passkeys.is_empty());
    let codes = held
        .as_ref()
        .is_some_and(|h| h.totp.is_some() || !h.recovery.is_empty());
    let pending = |enrol| Pending {
        id: crate::tokens::random_id(16),
        login: user.login.clone(),
        binding: binding(ctx, req).to_string(),
        credential: sso::credential(&user.secret),
        expires_at: req.now + PENDING_TTL,
        enrol,
        passkeys,
        codes,
    };
    match (has, policy) {
        (true, SecondFactor::Optional | SecondFactor::Required) => {
            ask(ctx, req, r, &pending(None), None).await
        }
        (true, SecondFactor::Off) if asks_more => ask(ctx, req, r, &pending(None), None).await,
        (false, SecondFactor::Required) => {
            enrol(ctx, req, r, &pending(Some(totp::new_secret())), None).await
        }
        _ => {
            // A password alone clears no failures of a person with a
            // factor: their wrong codes stay counted.
            if !has {
                if let Err(d) = ctx.issuer.logins.signed_in(&user.login).await {
                    return refused(ctx, req, r, asked, d).await;
                }
            }
            finish(ctx, req, r, asked, &user, vec!["pwd".into()]).await
        }
    }
}

/// The second step posted (its form carries `pending`).
pub async fn handle(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    form: &Form,
    r: &AuthRequest,
    asked: &Asked,
) -> Answer {
    let text = form.get("pending").unwrap_or_default();
    let opened: Option<Pending> = match ticket::open(ctx, PENDING, text).await {
        Ok(p) => p,
        Err(e) => return auth_request::back_with_error(ctx, r, e),
    };
    let pending = opened.filter(|p| live_here(ctx, req, p.expires_at, &p.binding));
    let Some(pending) = pending else {
        return start_again(ctx, req, r, asked, "That took too long. Sign in again.").await;
    };
    // Still there, active, and the password is the one checked.
    let user = match super::mint::live_user(ctx, &pending.login).await {
        Ok(u) => u.filter(|u| sso::credential(&u.secret) == pending.credential),
        Err(e) => return auth_request::back_with_error(ctx, r, e),
    };
    let Some(user) = user else {
        return start_again(ctx, req, r, asked, "Your sign-in has ended. Sign in again.").await;
    };
    let code = form.get("code").unwrap_or_default();
    let logins = &ctx.issuer.logins;
    if let Some(secret) = &pending.enrol {
        let taken = logins.second_factor(
            &user.login,
            req.client,
            req.now,
            enrolled(ctx, &user.login, secret, code, req.now),
        );
        let taken = taken.await;
        if taken.is_ok() && !once(ctx, "pending", &pending.id).await {
            return start_again(ctx, req, r, asked, "Your sign-in has ended. Sign in again.").await;
        }
        return match taken {
            Ok(codes) => {
                signed_in_with_page(ctx, req, r, &user, |step| {
                    factor_pages::recovery_codes(step, &codes)
                })
                .await
            }
            Err(d) => wrong(ctx, req, r, asked, &pending, d).await,
        };
    }
    let taken = logins.second_factor(
        &user.login,
        req.client,
        req.now,
        taken(ctx, &user.login, code, req.now),
    );
    let taken = taken.await;
    // A ticket signs in once (its code is spent too, either way).
    if taken.is_ok() && !once(ctx, "pending", &pending.id).await {
        return start_again(ctx, req, r, asked, "Your sign-in has ended. Sign in again.").await;
    }
    match taken {
        Ok(Taken::OneTimeCode) => finish(ctx, req, r, asked, &user, with_code()).await,
        Ok(Taken::Recovery { left }) => {
            signed_in_with_page(ctx, req, r, &user, |step| {
                factor_pages::recovery_used(step, left)
            })
            .await
        }
        Err(d) => wrong(ctx, req, r, asked, &pending, d).await,
    }
}

/// The person a form's live `pending` ticket (this browser's) names.
pub async fn pending_login(ctx: &Endpoints<'_>, req: &Request<'_>, form: &Form) -> Option<String> {
    let pending: Pending = ticket::open(ctx, PENDING, form.get("pending")?)
        .await
        .ok()??;
    live_here(ctx, req, pending.expires_at, &pending.binding).then_some(pending.login)
}

/// Whether a ticket lasting until `expires_at`, made for the browser
/// whose form cookie was `bound`, is live and this browser's.
fn live_here(ctx: &Endpoints<'_>, req: &Request<'_>, expires_at: i64, bound: &str) -> bool {
    let binding = binding(ctx, req);
    expires_at > req.now && !binding.is_empty() && csrf::same(Some(binding), bound)
}

/// The session a finished sign-in's Continue names, if it is this
/// browser's and this request's, the first time it is posted.
pub async fn finished_session(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    form: &Form,
    r: &AuthRequest,
) -> Option<String> {
    let finished: Finished = ticket::open(ctx, FINISHED, form.get("finished")?)
        .await
        .ok()??;
    if !live_here(ctx, req, finished.expires_at, &finished.binding)
        || finished.request != request_digest(r)
    {
        return None;
    }
    once(ctx, "finished", &finished.sid)
        .await
        .then_some(finished.sid)
}

/// Claims `what` `id` once in the store, on every instance, for as long
/// as a ticket lives.
async fn once(ctx: &Endpoints<'_>, what: &str, id: &str) -> bool {
    let key = format!("{what}\0{id}");
    let ttl = std::time::Duration::from_secs(PENDING_TTL as u64 + 60);
    ctx.issuer.store.claim(&key, ttl).await.unwrap_or(false)
}

/// What a code was.
enum Taken {
    OneTimeCode,
    Recovery { left: usize },
}

/// Takes `code` from the person's factors: a one-time code at a step after
/// the last one taken, or an unused recovery code, written over the record
/// read (two instances taking one code: one of them finds it gone).
async fn taken(
    ctx: &Endpoints<'_>,
    login: &str,
    code: &str,
    now: i64,
) -> Result<Option<Taken>, Denied> {
    let store = ctx.issuer.store;
    let issuer = &ctx.issuer.config.name;
    let one_time = code.chars().filter(|c| !c.is_whitespace()).count() == totp::DIGITS;
    for _ in 0..3 {
        let Some(held) = store.factors(issuer, login).await? else {
            return Ok(None);
        };
        let mut next = held.clone();
        next.version += 1;
        let taken = match (&mut next.totp, one_time) {
            (Some(t), true) => match totp::matching_step(&t.secret, code, now, t.last_step) {
                Some(step) => {
                    t.last_step = step;
                    Taken::OneTimeCode
                }
                None => return Ok(None),
            },
            _ => match recovery::position(&next.recovery, code) {
                Some(i) => {
                    next.recovery.remove(i);
                    Taken::Recovery {
                        left: next.recovery.len(),
                    }
                }
                None => return Ok(None),
            },
        };
        if store.swap_factors(&next, held.version).await? {
            return Ok(Some(taken));
        }
    }
    Err(Denied::Unavailable)
}

/// Enrols the one-time code `secret` once `code` is its: the factor and
/// ten new recovery codes kept, the codes returned to be shown.
async fn enrolled(
    ctx: &Endpoints<'_>,
    login: &str,
    secret: &[u8],
    code: &str,
    now: i64,
) -> Result<Option<Vec<String>>, Denied> {
    let Some(step) = totp::matching_step(secret, code, now, 0) else {
        return Ok(None);
    };
    let store = ctx.issuer.store;
    let issuer = &ctx.issuer.config.name;
    let held = store.factors(issuer, login).await?;
    let read_at = held.as_ref().map_or(0, |h| h.version);
    let mut next = held.unwrap_or_else(|| UserFactors {
        issuer: issuer.clone(),
        login: login.to_string(),
        ..UserFactors::default()
    });
    if next.has_second_factor() {
        // Enrolled meanwhile (another tab): this one is not the factor.
        return Ok(None);
    }
    let (codes, hashes) = recovery::new_codes();
    next.version = read_at + 1;
    next.totp = Some(TotpSecret {
        secret: secret.to_vec(),
        added_at: now,
        last_step: step,
    });
    next.recovery = hashes;
    match store.swap_factors(&next, read_at).await? {
        true => Ok(Some(codes)),
        false => Ok(None),
    }
}

/// The person is signed in by `amr`: the session begins, the consent is
/// remembered, and the application gets its code.
pub async fn finish(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    r: &AuthRequest,
    asked: &Asked,
    user: &Principal,
    amr: Vec<String>,
) -> Answer {
    let sub = ctx.issuer.accounts.subject_of(user);
    match sso::begin(ctx, req, user, &sub, amr).await {
        Ok((session, cookie)) => {
            consent::remember(ctx, &r.client, &session.login, &asked.scope, req.now).await;
            auth_request::issue(ctx, req, r, asked, &session, Some(cookie)).await
        }
        Err(e) => auth_request::back_with_error(ctx, r, e),
    }
}

/// Signed in, with a page to read before going on (the recovery codes):
/// the session begins now; the page's Continue carries a ticket naming it.
async fn signed_in_with_page(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    r: &AuthRequest,
    user: &Principal,
    render: impl FnOnce(&Step<'_>) -> String,
) -> Answer {
    let sub = ctx.issuer.accounts.subject_of(user);
    let (session, cookie) = match sso::begin(ctx, req, user, &sub, with_code()).await {
        Ok(begun) => begun,
        Err(e) => return auth_request::back_with_error(ctx, r, e),
    };
    let finished = Finished {
        sid: session.sid.clone(),
        binding: binding(ctx, req).to_string(),
        expires_at: req.now + PENDING_TTL,
        request: request_digest(r),
    };
    let answer = match ticket::seal(ctx, FINISHED, &finished).await {
        Ok(t) => page_with(ctx, req, r, ("finished", t), None, StatusCode::OK, render).await,
        Err(e) => auth_request::back_with_error(ctx, r, e),
    };
    answer.with_cookie(Some(cookie))
}

/// The code asked for.
async fn ask(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    r: &AuthRequest,
    pending: &Pending,
    failed: Option<(StatusCode, &str)>,
) -> Answer {
    let ticket = match ticket::seal(ctx, PENDING, pending).await {
        Ok(t) => t,
        Err(e) => return auth_request::back_with_error(ctx, r, e),
    };
    let (status, error) = failed.map_or((StatusCode::OK, None), |(s, e)| (s, Some(e)));
    let login = pending.login.clone();
    // Only passkeys: the page offers the passkey, and no code to type.
    let label = match pending.codes {
        true => "Use a passkey instead",
        false => "Use your passkey",
    };
    let passkey = match pending.passkeys || !pending.codes {
        true => super::passkey::offer(ctx, binding(ctx, req), req.now, label).await,
        false => None,
    };
    let codes = pending.codes;
    page_with(ctx, req, r, ("pending", ticket), error, status, |step| {
        factor_pages::ask(step, &login, passkey.as_deref(), codes)
    })
    .await
}

/// A one-time code enrolled: its QR code and key, and its first code asked for.
async fn enrol(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    r: &AuthRequest,
    pending: &Pending,
    failed: Option<(StatusCode, &str)>,
) -> Answer {
    let secret = pending.enrol.clone().unwrap_or_default();
    let ticket = match ticket::seal(ctx, PENDING, pending).await {
        Ok(t) => t,
        Err(e) => return auth_request::back_with_error(ctx, r, e),
    };
    let (status, error) = failed.map_or((StatusCode::OK, None), |(s, e)| (s, Some(e)));
    let (site, login) = (super::page::site_name(ctx), pending.login.clone());
    page_with(ctx, req, r, ("pending", ticket), error, status, |step| {
        factor_pages::enrol(step, site, &login, &secret)
    })
    .await
}

/// A page of the step, carrying the request and `carried`.
async fn page_with(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    r: &AuthRequest,
    carried: (&str, String),
    error: Option<&str>,
    status: StatusCode,
    render: impl FnOnce(&Step<'_>) -> String,
) -> Answer {
    let csrf = match csrf::token(ctx, binding(ctx, req), &r.params).await {
        Ok(t) => t,
        Err(e) => return auth_request::back_with_error(ctx, r, e),
    };
    let mut hidden = r.params.clone();
    hidden.push((carried.0.to_string(), carried.1));
    let action = format!("{}/sign-in", ctx.settings.issuer_id);
    let html = render(&Step {
        look: &ctx.settings.sign_in,
        action: &action,
        hidden: &hidden,
        csrf: &csrf,
        error,
    });
    let mut answer = Answer::page(status, html);
    answer.csp = Some(page::csp(&ctx.settings.sign_in, Some(&r.redirect_uri)));
    answer
}

/// A wrong code (or a locked or unavailable budget): the same step again,
/// saying so.
async fn wrong(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    r: &AuthRequest,
    asked: &Asked,
    pending: &Pending,
    denied: Denied,
) -> Answer {
    let failed = match denied {
        Denied::Locked => {
            return start_again(
                ctx,
                req,
                r,
                asked,
                "Too many failed attempts. Try again later.",
            )
            .await
        }
        Denied::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is unavailable. Try again later.",
        ),
        Denied::BadCredentials | Denied::Blocked => (
            StatusCode::UNAUTHORIZED,
            "That code is not right. Try again.",
        ),
    };
    match pending.enrol {
        Some(_) => enrol(ctx, req, r, pending, Some(failed)).await,
        None => ask(ctx, req, r, pending, Some(failed)).await,
    }
}

/// The sign-in form again, saying why.
async fn start_again(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    r: &AuthRequest,
    asked: &Asked,
    message: &str,
) -> Answer {
    let status = match message.starts_with("Too many") {
        true => StatusCode::TOO_MANY_REQUESTS,
        false => StatusCode::UNAUTHORIZED,
    };
    super::sign_in::show(ctx, req, r, &asked.scope, None, Some((status, message, ""))).await
}

/// A person whose sign-in could not be finished (the store): said on the form.
async fn refused(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    r: &AuthRequest,
    asked: &Asked,
    _denied: Denied,
) -> Answer {
    let failed = (
        StatusCode::SERVICE_UNAVAILABLE,
        "The service is unavailable. Try again later.",
        "",
    );
    super::sign_in::show(ctx, req, r, &asked.scope, None, Some(failed)).await
}
