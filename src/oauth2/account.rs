//! The account page, `/oauth2/NAME/account`: a signed-in person lists,
//! names and removes their passkeys, adds one, sets up or replaces their
//! one-time code, and makes new recovery codes. Every change needs a
//! sign-in of the last five minutes; an older session (or none) is sent
//! through the sign-in page again, as the page's own client
//! (`auth_request::ACCOUNT_CLIENT`, which no configured client may be named), which
//! comes back here with no code. Forms are bound to the session by their
//! CSRF token and posted from this origin only; no script but the passkey
//! button's.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{Passkey, Uuid};

use super::auth_request::{account_page, ACCOUNT_CLIENT};
use super::factor_pages::{self, Step};
use super::form::Form;
use super::page::{self, document, passkey_button, say, say_with, strong, words};
use super::passkey::{id_text, relying_party, Ceremony};
use super::{csrf, sso, ticket, Answer, Endpoints, Request};
use crate::config::SecondFactor;
use crate::factors::{recovery, totp};
use crate::store::{SsoSession, StoredPasskey, TotpSecret, UserFactors};

/// A change needs a sign-in this recent; the sign-in it asks for is
/// younger still (`max_age`), so the page never sends a person round.
const FRESH: i64 = 300;
const REGISTER: &str = "passkey-registration";
const ENROL: &str = "account-one-time-code";

/// A registration ceremony, for the session that began it.
#[derive(Serialize, Deserialize)]
struct Registration {
    ceremony: Ceremony,
    login: String,
}

/// A one-time code being set up: its secret, for the session.
#[derive(Serialize, Deserialize)]
struct Enrolment {
    secret: Vec<u8>,
    sid: String,
    expires_at: i64,
}

pub async fn handle(ctx: &Endpoints<'_>, req: &Request<'_>) -> Answer {
    let session = match sso::current(ctx, req).await {
        Ok(s) => s.filter(|s| req.now - s.auth_time <= FRESH),
        Err(e) => return page::shown(ctx, &e.description),
    };
    let Some(session) = session else {
        return sign_in_first(ctx, false);
    };
    // A person with a factor (or who must have one) changes factors only
    // after signing in with one: a password alone adds none.
    let issuer = &ctx.issuer.config.name;
    let passkeys_on = ctx.settings.sign_in.passkeys.is_some();
    let has = match ctx.issuer.store.factors(issuer, &session.login).await {
        Ok(held) => held.is_some_and(|f| f.has_usable_factor(passkeys_on)),
        Err(_) => return page::shown(ctx, "The service is unavailable. Try again later."),
    };
    let required = ctx.issuer.accounts.second_factor == SecondFactor::Required;
    if (has || required) && crate::factors::acr_of(&session.amr) == crate::factors::ACR_PASSWORD {
        return sign_in_first(ctx, true);
    }
    if *req.method == http::Method::GET {
        return show(ctx, &session, req.now, None, None).await;
    }
    if !csrf::same_origin(ctx, req) {
        return page::shown(ctx, "the form was posted from another site");
    }
    let form = match Form::parse(req.body, req.form) {
        Ok(f) => f,
        Err(e) => return page::shown(ctx, &e.description),
    };
    let expected = match form_token(ctx, &session).await {
        Ok(t) => t,
        Err(e) => return page::shown(ctx, &e.description),
    };
    if !csrf::same(form.get("csrf"), &expected) {
        return page::shown(
            ctx,
            "the form has expired or was not this page's; start again",
        );
    }
    let done = match form.get("action").unwrap_or_default() {
        "add_passkey" => add_passkey(ctx, req, &session, &form).await,
        "remove_passkey" => {
            change(ctx, &session, |f| {
                let before = f.passkeys.len();
                f.passkeys.retain(|p| Some(p.id.as_str()) != form.get("id"));
                (f.passkeys.len() < before).then(|| "The passkey was removed.".to_string())
            })
            .await
        }
        "rename_passkey" => {
            let name = passkey_name(ctx, &form);
            change(ctx, &session, |f| {
                let p = f
                    .passkeys
                    .iter_mut()
                    .find(|p| Some(p.id.as_str()) == form.get("id"))?;
                p.name = name.clone();
                Some("The passkey was renamed.".to_string())
            })
            .await
        }
        "totp_start" if ctx.issuer.accounts.second_factor != SecondFactor::Off => {
            return enrol_page(ctx, req, &session, totp::new_secret(), None).await;
        }
        "totp_confirm" => return confirm_totp(ctx, req, &session, &form).await,
        "recovery" => {
            let (codes, hashes) = recovery::new_codes();
            let changed = change(ctx, &session, |f| {
                f.has_second_factor().then(|| {
                    f.recovery = hashes.clone();
                    String::new()
                })
            })
            .await;
            return match changed {
                Ok(_) => codes_page(ctx, &session, &codes).await,
                Err(message) => show(ctx, &session, req.now, None, Some(&message)).await,
            };
        }
        _ => Err("Nothing was asked.".to_string()),
    };
    match done {
        Ok(message) => show(ctx, &session, req.now, Some(&message), None).await,
        Err(message) => show(ctx, &session, req.now, None, Some(&message)).await,
    }
}

/// No recent sign-in (or none with a factor, `factor`): through the
/// sign-in page, as the page's client.
fn sign_in_first(ctx: &Endpoints<'_>, factor: bool) -> Answer {
    let challenge = crate::tokens::sha256_base64url(&crate::tokens::random_id(32));
    let mut authorize = url::Url::parse(&format!("{}/authorize", ctx.settings.issuer_id))
        .expect("the issuer identifier is a URL");
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", ACCOUNT_CLIENT)
        .append_pair("redirect_uri", &account_page(ctx))
        .append_pair("scope", "openid")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("max_age", &(FRESH - 10).to_string());
    if factor {
        authorize
            .query_pairs_mut()
            .append_pair("acr_values", crate::factors::ACR_MFA);
    }
    Answer::redirect(authorize.into())
}

/// Applies `edit` to the person's factors, written over the record read;
/// `edit` says what the page tells them, or `None` for nothing changed.
async fn change(
    ctx: &Endpoints<'_>,
    session: &SsoSession,
    mut edit: impl FnMut(&mut UserFactors) -> Option<String>,
) -> Result<String, String> {
    let store = ctx.issuer.store;
    let issuer = &ctx.issuer.config.name;
    let unavailable = |_| "The service is unavailable. Try again later.".to_string();
    for _ in 0..3 {
        let held = store
            .factors(issuer, &session.login)
            .await
            .map_err(unavailable)?;
        let read_at = held.as_ref().map_or(0, |h| h.version);
        let mut next = held.unwrap_or_else(|| UserFactors {
            issuer: issuer.clone(),
            login: session.login.clone(),
            ..UserFactors::default()
        });
        let Some(message) = edit(&mut next) else {
            return Err("Nothing was changed.".to_string());
        };
        next.version = read_at + 1;
        if store
            .swap_factors(&next, read_at)
            .await
            .map_err(unavailable)?
        {
            return Ok(message);
        }
    }
    Err("The service is busy. Try again.".to_string())
}

async fn add_passkey(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    session: &SsoSession,
    form: &Form,
) -> Result<String, String> {
    let failed = || "The passkey was not added. Try again.".to_string();
    let rp = relying_party(ctx).ok_or_else(failed)?;
    let opened: Option<Registration> =
        ticket::open(ctx, REGISTER, form.get("ceremony").unwrap_or_default())
            .await
            .map_err(|_| failed())?;
    let registration = opened
        .filter(|r| r.login == session.login)
        .ok_or_else(failed)?;
    if !registration
        .ceremony
        .claim(ctx, &session.sid, req.now)
        .await
    {
        return Err("That passkey prompt has ended or was used. Try again.".to_string());
    }
    let passkey = rp
        .finish_registration(form.get("passkey").unwrap_or_default(), &registration.ceremony.state)
        .map_err(|e| {
            tracing::info!(issuer = %ctx.issuer.config.name, error = %e, "a passkey was not registered");
            failed()
        })?;
    let id = id_text(passkey.cred_id());
    let name = passkey_name(ctx, form);
    let credential = serde_json::to_value(&passkey).map_err(|_| failed())?;
    // The credential id is unique across every user of the issuer: the
    // handle index names one login per handle, and a credential carries
    // its own handle, so one registered twice would be refused at sign-in;
    // it is refused here first, for this user's own list.
    change(ctx, session, |f| {
        if f.passkeys.iter().any(|p| p.id == id) {
            return None;
        }
        if f.handle.is_empty() {
            return None;
        }
        f.passkeys.push(StoredPasskey {
            id: id.clone(),
            name: name.clone(),
            added_at: req.now,
            used_at: None,
            credential: credential.clone(),
        });
        Some("The passkey was added.".to_string())
    })
    .await
}

async fn confirm_totp(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    session: &SsoSession,
    form: &Form,
) -> Answer {
    let opened: Option<Enrolment> =
        ticket::open(ctx, ENROL, form.get("enrolment").unwrap_or_default())
            .await
            .ok()
            .flatten();
    let Some(enrolment) = opened.filter(|e| e.sid == session.sid && e.expires_at > req.now) else {
        return show(
            ctx,
            session,
            req.now,
            None,
            Some("That took too long. Start again."),
        )
        .await;
    };
    let code = form.get("code").unwrap_or_default();
    let secret = enrolment.secret.clone();
    let checked = ctx
        .issuer
        .logins
        .second_factor(&session.login, req.client, req.now, async {
            Ok(totp::matching_step(&secret, code, req.now, 0))
        });
    let step = match checked.await {
        Ok(step) => step,
        Err(_) => {
            let failed = (
                StatusCode::UNAUTHORIZED,
                "That code is not right. Try again.",
            );
            return enrol_page(ctx, req, session, enrolment.secret, Some(failed)).await;
        }
    };
    let (codes, hashes) = recovery::new_codes();
    let mut fresh_codes = false;
    let changed = change(ctx, session, |f| {
        f.totp = Some(TotpSecret {
            secret: secret.clone(),
            added_at: req.now,
            last_step: step,
        });
        fresh_codes = f.recovery.is_empty();
        if fresh_codes {
            f.recovery = hashes.clone();
        }
        Some("Your one-time code is set up.".to_string())
    })
    .await;
    match (changed, fresh_codes) {
        (Ok(_), true) => codes_page(ctx, session, &codes).await,
        (Ok(message), false) => show(ctx, session, req.now, Some(&message), None).await,
        (Err(message), _) => show(ctx, session, req.now, None, Some(&message)).await,
    }
}

async fn enrol_page(
    ctx: &Endpoints<'_>,
    req: &Request<'_>,
    session: &SsoSession,
    secret: Vec<u8>,
    failed: Option<(StatusCode, &str)>,
) -> Answer {
    let enrolment = Enrolment {
        secret: secret.clone(),
        sid: session.sid.clone(),
        expires_at: req.now + FRESH,
    };
    let Ok(sealed) = ticket::seal(ctx, ENROL, &enrolment).await else {
        return page::shown(ctx, "The service is unavailable. Try again later.");
    };
    let hidden = [
        ("action".to_string(), "totp_confirm".to_string()),
        ("enrolment".to_string(), sealed),
    ];
    let (status, error) = failed.map_or((StatusCode::OK, None), |(s, e)| (s, Some(e)));
    rendered(ctx, session, &hidden, status, |step| {
        let step = Step { error, ..*step };
        factor_pages::enrol(&step, page::site_name(ctx), &session.login, &secret)
    })
    .await
}

async fn codes_page(ctx: &Endpoints<'_>, session: &SsoSession, codes: &[String]) -> Answer {
    let hidden = [("action".to_string(), "shown".to_string())];
    rendered(ctx, session, &hidden, StatusCode::OK, |step| {
        factor_pages::recovery_codes(step, codes)
    })
    .await
}

/// A page of the step's kind, posting back here.
async fn rendered(
    ctx: &Endpoints<'_>,
    session: &SsoSession,
    hidden: &[(String, String)],
    status: StatusCode,
    render: impl FnOnce(&Step<'_>) -> String,
) -> Answer {
    let Ok(csrf) = form_token(ctx, session).await else {
        return page::shown(ctx, "The service is unavailable. Try again later.");
    };
    let action = account_page(ctx);
    let html = render(&Step {
        look: &ctx.settings.sign_in,
        action: &action,
        hidden,
        csrf: &csrf,
        error: None,
    });
    let mut answer = Answer::page(status, html);
    answer.csp = Some(page::csp(&ctx.settings.sign_in, None));
    answer
}

/// The page: the person's passkeys, one-time code and recovery codes.
async fn show(
    ctx: &Endpoints<'_>,
    session: &SsoSession,
    now: i64,
    notice: Option<&str>,
    error: Option<&str>,
) -> Answer {
    let store = ctx.issuer.store;
    let issuer = &ctx.issuer.config.name;
    let Ok(held) = store.factors(issuer, &session.login).await else {
        return page::shown(ctx, "The service is unavailable. Try again later.");
    };
    let factors = with_handle(ctx, session, held.unwrap_or_default()).await;
    let Ok(csrf) = form_token(ctx, session).await else {
        return page::shown(ctx, "The service is unavailable. Try again later.");
    };
    let action = account_page(ctx);
    let look = &ctx.settings.sign_in;
    let form =
        |fields: &[(&str, &str)], button: &str| button_form(look, &action, &csrf, fields, button);
    let title = "Your account";
    let user = strong(&session.login);
    let mut body = format!(
        "<h1>{}</h1>\n<p>{}</p>\n",
        say(look, title),
        say_with(look, "Signed in as {user}.", &[("user", &user)])
    );
    if let Some(n) = notice {
        body += &format!("<p role=\"status\">{}</p>\n", say(look, n));
    }
    if let Some(e) = error {
        body += &format!("<p class=\"error\" role=\"alert\">{}</p>\n", say(look, e));
    }
    if look.passkeys.is_some() {
        body += &format!("<h2>{}</h2>\n", say(look, "Passkeys"));
        if factors.passkeys.is_empty() {
            body += &format!("<p>{}</p>\n", say(look, "You have no passkeys."));
        }
        body += "<ul>\n";
        for (i, p) in factors.passkeys.iter().enumerate() {
            let (name, added) = (strong(&p.name), date(p.added_at));
            let said = match p.used_at {
                Some(t) => say_with(
                    look,
                    "{name}, added {added}, last used {used}",
                    &[("name", &name), ("added", &added), ("used", &date(t))],
                ),
                None => say_with(
                    look,
                    "{name}, added {added}, never used",
                    &[("name", &name), ("added", &added)],
                ),
            };
            let remove = form(&[("action", "remove_passkey"), ("id", &p.id)], "Remove");
            let rename = rename_form(look, &action, &csrf, i, p);
            body += &format!("<li>{said}\n{rename}{remove}</li>\n");
        }
        body += "</ul>\n";
        body += &add_passkey_form(ctx, session, &factors, now, &action, &csrf).await;
    }
    if ctx.issuer.accounts.second_factor != SecondFactor::Off {
        body += &format!("<h2>{}</h2>\n", say(look, "One-time codes"));
        let (said, button) = match factors.totp.is_some() {
            true => (
                "Your authenticator app gives your codes.",
                "Replace your authenticator app",
            ),
            false => (
                "You have no authenticator app set up.",
                "Set up an authenticator app",
            ),
        };
        body += &format!(
            "<p>{}</p>\n{}",
            say(look, said),
            form(&[("action", "totp_start")], button)
        );
    }
    if factors.has_second_factor() {
        let count = factors.recovery.len().to_string();
        body += &format!(
            "<h2>{}</h2>\n<p>{}</p>\n{}",
            say(look, "Recovery codes"),
            say_with(
                look,
                "You have {count} unused recovery codes.",
                &[("count", &count)]
            ),
            form(&[("action", "recovery")], "Make new recovery codes")
        );
    }
    let html = document(words(look, title), look, &body);
    let mut answer = Answer::page(StatusCode::OK, html);
    answer.csp = Some(page::csp(&ctx.settings.sign_in, None));
    answer
}

/// `factors` with a WebAuthn user handle, made once (where passkeys are
/// on) before the first passkey is registered.
async fn with_handle(
    ctx: &Endpoints<'_>,
    session: &SsoSession,
    factors: UserFactors,
) -> UserFactors {
    if !factors.handle.is_empty() || ctx.settings.sign_in.passkeys.is_none() {
        return factors;
    }
    let handle = Uuid::new_v4().to_string();
    let _ = change(ctx, session, |f| {
        f.handle.is_empty().then(|| {
            f.handle = handle.clone();
            String::new()
        })
    })
    .await;
    let issuer = &ctx.issuer.config.name;
    match ctx.issuer.store.factors(issuer, &session.login).await {
        Ok(Some(held)) => held,
        _ => factors,
    }
}

/// The name a form gives a passkey: at most 64 characters, none a
/// control character; "Passkey" (in the page's words) when none is given.
fn passkey_name(ctx: &Endpoints<'_>, form: &Form) -> String {
    let given: String = form
        .get("name")
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    match given.trim().is_empty() {
        true => words(&ctx.settings.sign_in, "Passkey").to_string(),
        false => given,
    }
}

/// The form that renames the passkey `p`, the `i`th in the list.
fn rename_form(
    look: &crate::config::SignInPage,
    action: &str,
    csrf: &str,
    i: usize,
    p: &StoredPasskey,
) -> String {
    let hidden = [
        ("action".to_string(), "rename_passkey".to_string()),
        ("id".to_string(), p.id.clone()),
    ];
    format!(
        "{}<label for=\"rename-{i}\">{}</label>\n\
         <input id=\"rename-{i}\" name=\"name\" maxlength=\"64\" value=\"{}\">\n\
         <button type=\"submit\">{}</button>\n</form>\n",
        page::form_start(action, &hidden, csrf),
        say(look, "New name"),
        super::page::escape(&p.name),
        say(look, "Rename"),
    )
}

/// A form of one button, posting `fields` to the page.
fn button_form(
    look: &crate::config::SignInPage,
    action: &str,
    csrf: &str,
    fields: &[(&str, &str)],
    button: &str,
) -> String {
    let hidden: Vec<(String, String)> = fields
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    format!(
        "{}<button type=\"submit\">{}</button>\n</form>\n",
        page::form_start(action, &hidden, csrf),
        say(look, button)
    )
}

/// The form that adds a passkey: a name, and the browser's prompt.
async fn add_passkey_form(
    ctx: &Endpoints<'_>,
    session: &SsoSession,
    factors: &UserFactors,
    now: i64,
    action: &str,
    csrf: &str,
) -> String {
    let (Some(rp), Ok(handle)) = (relying_party(ctx), Uuid::parse_str(&factors.handle)) else {
        return String::new();
    };
    let have: Vec<Passkey> = factors
        .passkeys
        .iter()
        .filter_map(|p| serde_json::from_value(p.credential.clone()).ok())
        .collect();
    let Ok((options, state)) = rp.start_registration(handle, &session.login, &have) else {
        return String::new();
    };
    let registration = Registration {
        ceremony: Ceremony::new(&session.sid, state, now),
        login: session.login.clone(),
    };
    let Ok(sealed) = ticket::seal(ctx, REGISTER, &registration).await else {
        return String::new();
    };
    let hidden = [("action".to_string(), "add_passkey".to_string())];
    let look = &ctx.settings.sign_in;
    format!(
        "{}<label for=\"name\">{}</label>\n\
         <input id=\"name\" name=\"name\" maxlength=\"64\" value=\"{}\">\n{}</form>\n",
        page::form_start(action, &hidden, csrf),
        say(look, "Name of the new passkey"),
        say(look, "Passkey"),
        passkey_button(
            look,
            "create",
            "Add a passkey",
            &options.to_string(),
            &sealed
        )
    )
}

/// The page's forms' CSRF token: bound to the session.
async fn form_token(ctx: &Endpoints<'_>, session: &SsoSession) -> Result<String, super::Error> {
    csrf::token(
        ctx,
        &session.sid,
        &[("account".into(), session.sid.clone())],
    )
    .await
}

/// A day, as the page says it (UTC).
fn date(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map_or_else(String::new, |t| t.format("%Y-%m-%d").to_string())
}
