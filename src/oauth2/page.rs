//! The pages the authorization endpoint shows: the sign-in form (or, with
//! a sign-on session, a button to go on as the signed-in user) and the
//! error page for a request that cannot be sent back to its client. HTML
//! that works without JavaScript, with labels and `lang`, every value
//! escaped; the strict CSP that goes with it is [`csp`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

use http::StatusCode;

use super::{Answer, Endpoints};
use crate::config::SignInPage;

/// portero's own look; the operator's stylesheet comes after it.
const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;\
padding:0 1rem;color:#1a1a1a}h1{font-size:1.4rem}label{display:block;margin-top:1rem}\
input{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}\
button{margin-top:1.5rem;padding:.6rem 1.2rem;font-size:1rem}\
.error{color:#a00000;border-left:3px solid #a00000;padding-left:.5rem}\
img{max-width:100%;max-height:4rem}.hint{color:#444;font-size:.9rem}\
code{word-break:break-all}ol.codes{font-family:ui-monospace,monospace;font-size:1.1rem}";

/// The pages' one script (passkeys), allowed by its hash where a page has it.
pub const SCRIPT: &str = include_str!("passkey.js");

/// The site's name as passkey prompts and authenticator apps show it:
/// the sign-in page's title, else the issuer's name.
pub fn site_name<'a>(ctx: &'a Endpoints<'_>) -> &'a str {
    ctx.settings
        .sign_in
        .title
        .as_deref()
        .unwrap_or(&ctx.issuer.config.name)
}

/// `english` in the pages' words: the operator's translation
/// (`[issuers.NAME.sign_in.text]`) where there is one.
pub fn words<'a>(look: &'a SignInPage, english: &'a str) -> &'a str {
    look.text.get(english).map_or(english, String::as_str)
}

/// `english` in the pages' words with its placeholders filled with
/// `values`, as plain text (escaped where it is put in a page).
pub fn words_with(look: &SignInPage, english: &str, values: &[(&str, &str)]) -> String {
    let mut said = words(look, english).to_string();
    for (name, value) in values {
        said = said.replace(&format!("{{{name}}}"), value);
    }
    said
}

/// `english` in the pages' words, escaped.
pub fn say(look: &SignInPage, english: &str) -> String {
    escape(words(look, english))
}

/// `english` in the pages' words, escaped, with each placeholder
/// (`{name}`) then filled with its value, which is HTML already.
pub fn say_with(look: &SignInPage, english: &str, values: &[(&str, &str)]) -> String {
    let mut said = say(look, english);
    for (name, value) in values {
        said = said.replace(&format!("{{{name}}}"), value);
    }
    said
}

/// `value` escaped and in bold.
pub fn strong(value: &str) -> String {
    format!("<strong>{}</strong>", escape(value))
}

/// Escapes text for an HTML element's content or a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The page's `Content-Security-Policy`: nothing but its own style, the
/// operator's logo and stylesheet, and a form that may post only to this
/// origin and be redirected only to `redirect` (the client's callback:
/// browsers hold a form's redirects to `form-action`). Never framed.
pub fn csp(look: &SignInPage, redirect: Option<&str>) -> String {
    let style_hash = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    let origin_of = |u: &str| -> String {
        match url::Url::parse(u) {
            Ok(url) if url.scheme() == "https" || url.scheme() == "http" => {
                url.origin().ascii_serialization()
            }
            Ok(url) => format!("{}:", url.scheme()),
            Err(_) => String::new(),
        }
    };
    let external = |u: &Option<String>| {
        u.as_deref()
            .filter(|u| !u.starts_with('/'))
            .map(origin_of)
            .unwrap_or_default()
    };
    // The passkey script, by its hash, where passkeys are on.
    let script = match look.passkeys {
        Some(_) => format!(
            "script-src 'sha256-{}'; ",
            STANDARD.encode(Sha256::digest(SCRIPT.as_bytes()))
        ),
        None => String::new(),
    };
    format!(
        "default-src 'none'; {script}style-src 'sha256-{style_hash}' 'self' {}; img-src 'self' {}; \
         form-action 'self' {}; frame-ancestors 'none'; base-uri 'none'",
        external(&look.stylesheet_url),
        external(&look.logo_url),
        redirect.map(origin_of).unwrap_or_default(),
    )
}

/// What the sign-in form says and carries.
pub struct SignIn<'a> {
    pub look: &'a SignInPage,
    /// Where the form posts.
    pub action: &'a str,
    /// The authorization request, carried as hidden fields.
    pub hidden: &'a [(String, String)],
    pub csrf: &'a str,
    /// The application asking, as the user should recognise it.
    pub client_name: &'a str,
    /// Where the application's metadata document is published (its
    /// identity), for a client named by one.
    pub publisher: Option<&'a str>,
    /// Where the user will be sent back: the redirect URI's host.
    pub return_host: &'a str,
    /// The resource (RFC 8707) the token would be for, if one is asked.
    pub resource: Option<&'a str>,
    /// The scopes the application asks for.
    pub scope: &'a [String],
    /// Those of them the signed-in user allowed it before.
    pub allowed_before: &'a [String],
    /// The operator's words for scopes (`scope_descriptions`).
    pub descriptions: &'a std::collections::BTreeMap<String, String>,
    /// With a sign-on session: the user it can go on as.
    pub signed_in_as: Option<&'a str>,
    pub username: Option<&'a str>,
    pub error: Option<&'a str>,
    /// The passkey button, rendered, where passkeys are on.
    pub passkey: Option<&'a str>,
}

pub fn sign_in(s: &SignIn<'_>) -> String {
    let look = s.look;
    let title = look.title.as_deref().unwrap_or(words(look, "Sign in"));
    let mut body = String::new();
    if let Some(logo) = &s.look.logo_url {
        body += &format!("<img src=\"{}\" alt=\"\">\n", escape(logo));
    }
    body += &format!("<h1>{}</h1>\n", escape(title));
    if let Some(publisher) = s.publisher {
        let host = strong(publisher);
        let said = say_with(
            look,
            "An application published by {host}",
            &[("host", &host)],
        );
        body += &format!("<p class=\"publisher\">{said}</p>\n");
    }
    let (client, host) = (strong(s.client_name), strong(s.return_host));
    let values = [("client", client.as_str()), ("host", host.as_str())];
    body += &format!(
        "<p>{}</p>\n",
        say_with(look, "to continue to {client} at {host}", &values)
    );
    if let Some(resource) = s.resource {
        let resource = strong(resource);
        let said = say_with(
            look,
            "for its use of {resource}",
            &[("resource", &resource)],
        );
        body += &format!("<p>{said}</p>\n");
    }
    let (before, new): (Vec<&String>, Vec<&String>) = s
        .scope
        .iter()
        .partition(|scope| s.allowed_before.contains(scope));
    for (heading, scopes) in [("It asks to:", new), ("You allowed it before to:", before)] {
        if scopes.is_empty() {
            continue;
        }
        body += &format!("<p>{}</p>\n<ul>\n", say(look, heading));
        for scope in scopes {
            let said = match s.descriptions.get(scope.as_str()) {
                Some(text) => escape(text),
                None => scope_in_words(look, scope),
            };
            body += &format!("<li>{said}</li>\n");
        }
        body += "</ul>\n";
    }
    if let Some(error) = s.error {
        body += &format!(
            "<p class=\"error\" role=\"alert\">{}</p>\n",
            say(look, error)
        );
    }
    body += &form_start(s.action, s.hidden, s.csrf);
    match s.signed_in_as {
        Some(user) => {
            let user = strong(user);
            body += &format!(
                "<p>{}</p>\n\
                 <button type=\"submit\" name=\"continue\" value=\"1\" autofocus>{}</button>\n\
                 <button type=\"submit\" name=\"deny\" value=\"1\" formnovalidate>{}</button>\n\
                 <p><button type=\"submit\" name=\"switch\" value=\"1\" formnovalidate>{}</button></p>\n",
                say_with(look, "You are signed in as {user}.", &[("user", &user)]),
                say(look, "Allow"),
                say(look, "Deny"),
                say(look, "Not you? Sign in as someone else"),
            );
        }
        None => {
            let username = s.username.map(escape).unwrap_or_default();
            let focus = |first: bool| if first { " autofocus" } else { "" };
            body += &format!(
                "<label for=\"username\">{}</label>\n\
                 <input id=\"username\" name=\"username\" autocomplete=\"username{}\" required \
                 value=\"{username}\"{}>\n\
                 <label for=\"password\">{}</label>\n\
                 <input id=\"password\" name=\"password\" type=\"password\" \
                 autocomplete=\"current-password\" required{}>\n\
                 <button type=\"submit\">{}</button>\n\
                 <button type=\"submit\" name=\"deny\" value=\"1\" formnovalidate>{}</button>\n",
                say(look, "Username"),
                // Browsers offer passkeys from the username field too.
                if s.passkey.is_some() { " webauthn" } else { "" },
                focus(username.is_empty()),
                say(look, "Password"),
                focus(!username.is_empty()),
                say(look, "Sign in"),
                say(look, "Deny"),
            );
            body += s.passkey.unwrap_or_default();
        }
    }
    body += "</form>\n";
    document(title, s.look, &body)
}

/// A form posting to `action`, carrying `hidden` (the authorization
/// request, and any ticket) and the CSRF token.
pub fn form_start(action: &str, hidden: &[(String, String)], csrf: &str) -> String {
    let mut form = format!("<form method=\"post\" action=\"{}\">\n", escape(action));
    for (name, value) in hidden {
        form += &format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
            escape(name),
            escape(value)
        );
    }
    form += &format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">\n",
        escape(csrf)
    );
    form
}

/// A scope as the page names it (HTML): OpenID Connect's own in words,
/// any other by its name.
fn scope_in_words(look: &SignInPage, scope: &str) -> String {
    match scope {
        "openid" => say(look, "know who you are"),
        "offline_access" => say(look, "keep access while you are away (a refresh token)"),
        other => say_with(
            look,
            "use \u{201c}{scope}\u{201d}",
            &[("scope", &escape(other))],
        ),
    }
}

/// A request portero cannot send back to any client, answered with the
/// error page (`400`) and its policy: never a redirect.
pub fn shown(ctx: &Endpoints<'_>, message: &str) -> Answer {
    let look = &ctx.settings.sign_in;
    let mut answer = Answer::page(StatusCode::BAD_REQUEST, error(look, message));
    answer.csp = Some(csp(look, None));
    answer
}

/// A request portero cannot send back to any client: said on the page.
pub fn error(look: &SignInPage, message: &str) -> String {
    let body = format!(
        "<h1>{}</h1>\n<p class=\"error\" role=\"alert\">{}</p>\n<p>{}</p>\n",
        say(look, "This sign-in request cannot go on"),
        say(look, message),
        say(look, "Go back to the application and try again."),
    );
    document(words(look, "Sign-in error"), look, &body)
}

/// A short notice (signed out, or asked to confirm), with an optional
/// form already built of escaped parts.
pub fn notice(look: &SignInPage, message: &str, form: Option<&str>) -> String {
    let body = format!(
        "<h1>{}</h1>\n{}\n",
        escape(message),
        form.unwrap_or_default()
    );
    document("Sign out", look, &body)
}

/// A passkey button in a form: hidden until the script shows it (a browser
/// without WebAuthn never sees it), with the options it uses as JSON the
/// script reads, the field the answer goes in, and the ceremony's ticket.
pub fn passkey_button(
    look: &SignInPage,
    kind: &str,
    label: &str,
    options: &str,
    ceremony: &str,
) -> String {
    // JSON in a script element: `<` written as an escape, so no text in it
    // can close the element.
    let options = options.replace('<', "\\u003c");
    format!(
        "<script type=\"application/json\" id=\"passkey-options\">{options}</script>\n\
         <input type=\"hidden\" name=\"passkey\" value=\"\">\n\
         <input type=\"hidden\" name=\"ceremony\" value=\"{}\">\n\
         <button type=\"button\" data-webauthn=\"{kind}\" data-options=\"passkey-options\" \
         data-field=\"passkey\" data-failed=\"{}\" hidden>{}</button>\n\
         <p id=\"passkey-status\" role=\"status\" class=\"hint\"></p>\n",
        escape(ceremony),
        say(
            look,
            "No passkey was used. Try again, or use your password."
        ),
        say(look, label)
    )
}

pub fn document(title: &str, look: &SignInPage, body: &str) -> String {
    let stylesheet = look
        .stylesheet_url
        .as_deref()
        .map(|u| format!("<link rel=\"stylesheet\" href=\"{}\">\n", escape(u)))
        .unwrap_or_default();
    // The script only where a passkey button is (its policy allows it
    // only where passkeys are on).
    let script = match body.contains("data-webauthn") && look.passkeys.is_some() {
        true => format!("<script>{SCRIPT}</script>\n"),
        false => String::new(),
    };
    format!(
        "<!doctype html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"same-origin\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n{stylesheet}</head>\n<body>\n<main>\n{body}</main>\n{script}</body>\n</html>\n",
        escape(look.lang.as_deref().unwrap_or("en")),
        escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        assert_eq!(
            escape("\"><script>alert('x')</script>&"),
            "&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"
        );
    }

    #[test]
    fn the_policy_allows_the_callback_and_no_framing() {
        let look = SignInPage::default();
        let policy = csp(&look, Some("https://app.example.com/cb?x=1"));
        assert!(policy.contains("form-action 'self' https://app.example.com;"));
        assert!(policy.contains("frame-ancestors 'none'"));
        assert!(policy.contains("default-src 'none'"));
        let native = csp(&look, Some("com.example.app:/cb"));
        assert!(native.contains("form-action 'self' com.example.app:;"));
    }
}
