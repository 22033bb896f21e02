//! The pages of a sign-in's second step: the code asked for, a one-time
//! code enrolled (its QR code drawn here, as inline SVG: no script), and
//! recovery codes shown once. Every value escaped; each form carries the
//! authorization request, its ticket and the CSRF token (`page::form_start`).

use super::page::{document, escape, form_start, say, say_with, strong, words};
use crate::config::SignInPage;
use crate::factors::totp;

/// What every page of the step has: the look, where it posts, what it carries.
#[derive(Clone, Copy)]
pub struct Step<'a> {
    pub look: &'a SignInPage,
    pub action: &'a str,
    /// The authorization request and the step's ticket.
    pub hidden: &'a [(String, String)],
    pub csrf: &'a str,
    pub error: Option<&'a str>,
}

fn error(step: &Step<'_>) -> String {
    match step.error {
        Some(e) => format!(
            "<p class=\"error\" role=\"alert\">{}</p>\n",
            say(step.look, e)
        ),
        None => String::new(),
    }
}

/// A button of the form, in the page's words.
fn button(look: &SignInPage, attributes: &str, label: &str) -> String {
    format!(
        "<button type=\"submit\"{attributes}>{}</button>\n",
        say(look, label)
    )
}

/// The Cancel button: the application hears `access_denied`.
fn cancel(look: &SignInPage) -> String {
    button(look, " name=\"deny\" value=\"1\" formnovalidate", "Cancel")
}

/// The code field: a one-time code, or a recovery code in its place.
fn code_field(look: &SignInPage, label: &str, hint: &str) -> String {
    format!(
        "<label for=\"code\">{}</label>\n\
         <input id=\"code\" name=\"code\" autocomplete=\"one-time-code\" autocapitalize=\"none\" \
         spellcheck=\"false\" required autofocus aria-describedby=\"code-hint\">\n\
         <p id=\"code-hint\" class=\"hint\">{}</p>\n",
        say(look, label),
        say(look, hint)
    )
}

/// A page's heading, in its words.
fn heading(look: &SignInPage, title: &'static str) -> String {
    format!("<h1>{}</h1>\n", say(look, title))
}

/// A person with a second factor, asked for it: a code where they have
/// `codes` to type; with `passkey`, the button that uses one of their
/// passkeys.
pub fn ask(step: &Step<'_>, login: &str, passkey: Option<&str>, codes: bool) -> String {
    let (look, title) = (step.look, "Two-step verification");
    let mut body = heading(look, title);
    let user = strong(login);
    body += &format!(
        "<p>{}</p>\n",
        say_with(look, "Signing in as {user}.", &[("user", &user)])
    );
    body += &error(step);
    body += &form_start(step.action, step.hidden, step.csrf);
    if codes {
        body += &code_field(
            look,
            "Code from your authenticator app",
            "Six digits. Lost your device? Enter one of your recovery codes instead.",
        );
        body += &button(look, "", "Verify");
    }
    body += &cancel(look);
    body += passkey.unwrap_or_default();
    body += "</form>\n";
    document(words(look, title), look, &body)
}

/// A one-time code enrolled now for `login` at `site`, confirmed by its
/// first code: its `otpauth://` URI as a QR code, and its key.
pub fn enrol(step: &Step<'_>, site: &str, login: &str, secret: &[u8]) -> String {
    let uri = totp::uri(site, login, secret);
    let (qr_svg, secret) = (totp::qr_svg(&uri), totp::secret_text(secret));
    let (look, title) = (step.look, "Set up two-step verification");
    let mut body = heading(look, title);
    let user = strong(login);
    let said = "Signing in as {user}. This service asks for a code from an authenticator app \
                each time you sign in.";
    body += &format!("<p>{}</p>\n", say_with(look, said, &[("user", &user)]));
    // The SVG is the QR library's own output: no value from a request.
    if let Some(svg) = &qr_svg {
        body += &format!(
            "<p>{}</p>\n<figure role=\"img\" aria-label=\"{}\">{svg}</figure>\n",
            say(look, "Scan this QR code with your authenticator app:"),
            say(look, "QR code of your one-time-code secret"),
        );
    }
    let key = format!("<code id=\"secret\">{}</code>", escape(&secret));
    body += &format!(
        "<p>{}</p>\n",
        say_with(look, "Or type this key into it: {key}", &[("key", &key)])
    );
    body += &error(step);
    body += &form_start(step.action, step.hidden, step.csrf);
    body += &code_field(
        look,
        "Code your app shows now",
        "Six digits. This confirms the app holds the key.",
    );
    body += &button(look, "", "Verify");
    body += &cancel(look);
    body += "</form>\n";
    document(words(look, title), look, &body)
}

/// Recovery codes, shown this once, then on to the application.
pub fn recovery_codes(step: &Step<'_>, codes: &[String]) -> String {
    let (look, title) = (step.look, "Save your recovery codes");
    let mut body = heading(look, title);
    let said = "Two-step verification is on. If you lose your device, each of these codes signs \
                you in once in place of a code from your app. Keep them somewhere safe: they are \
                not shown again.";
    body += &format!("<p>{}</p>\n<ol class=\"codes\">\n", say(look, said));
    for code in codes {
        body += &format!("<li><code>{}</code></li>\n", escape(code));
    }
    body += "</ol>\n";
    body += &form_start(step.action, step.hidden, step.csrf);
    body += &button(
        look,
        " name=\"continue\" value=\"1\" autofocus",
        "I have saved them: continue",
    );
    body += "</form>\n";
    document(words(look, title), look, &body)
}

/// Signed in with a recovery code: how many are left, then on.
pub fn recovery_used(step: &Step<'_>, left: usize) -> String {
    let (look, title) = (step.look, "Signed in with a recovery code");
    let mut body = heading(look, title);
    let said = match left {
        0 => say(
            look,
            "That was your last recovery code. Make new ones on your account page.",
        ),
        1 => say(look, "You have 1 recovery code left."),
        n => say_with(
            look,
            "You have {count} recovery codes left.",
            &[("count", &n.to_string())],
        ),
    };
    body += &format!("<p role=\"status\">{said}</p>\n");
    body += &form_start(step.action, step.hidden, step.csrf);
    body += &button(look, " name=\"continue\" value=\"1\" autofocus", "Continue");
    body += "</form>\n";
    document(words(look, title), look, &body)
}
