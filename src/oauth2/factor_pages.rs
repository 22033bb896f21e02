//! The pages of a sign-in's second step: the code asked for, a one-time
//! code enrolled (its QR code drawn here, as inline SVG: no script), and
//! recovery codes shown once. Every value escaped; each form carries the
//! authorization request, its ticket and the CSRF token (`page::form_start`).

use super::page::{document, escape, form_start};
use crate::config::SignInPage;

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
        Some(e) => format!("<p class=\"error\" role=\"alert\">{}</p>\n", escape(e)),
        None => String::new(),
    }
}

const DENY: &str =
    "<button type=\"submit\" name=\"deny\" value=\"1\" formnovalidate>Cancel</button>\n";

/// The code field: a one-time code, or a recovery code in its place.
fn code_field(label: &str, hint: &str) -> String {
    format!(
        "<label for=\"code\">{}</label>\n\
         <input id=\"code\" name=\"code\" autocomplete=\"one-time-code\" autocapitalize=\"none\" \
         spellcheck=\"false\" required autofocus aria-describedby=\"code-hint\">\n\
         <p id=\"code-hint\" class=\"hint\">{}</p>\n",
        escape(label),
        escape(hint)
    )
}

/// A person with a second factor, asked for it; with `passkey`, the
/// button that uses one of their passkeys instead.
pub fn ask(step: &Step<'_>, login: &str, passkey: Option<&str>) -> String {
    let title = "Two-step verification";
    let mut body = format!("<h1>{title}</h1>\n");
    body += &format!("<p>Signing in as <strong>{}</strong>.</p>\n", escape(login));
    body += &error(step);
    body += &form_start(step.action, step.hidden, step.csrf);
    body += &code_field(
        "Code from your authenticator app",
        "Six digits. Lost your device? Enter one of your recovery codes instead.",
    );
    body += "<button type=\"submit\">Verify</button>\n";
    body += DENY;
    body += passkey.unwrap_or_default();
    body += "</form>\n";
    document(title, step.look, &body)
}

/// A person who must have a second factor and has none: a one-time code
/// enrolled now, confirmed by its first code.
pub fn enrol(step: &Step<'_>, login: &str, qr_svg: Option<&str>, secret: &str) -> String {
    let title = "Set up two-step verification";
    let mut body = format!("<h1>{title}</h1>\n");
    body += &format!(
        "<p>Signing in as <strong>{}</strong>. This service asks for a code from an \
         authenticator app each time you sign in.</p>\n",
        escape(login)
    );
    // The SVG is the QR library's own output: no value from a request.
    if let Some(svg) = qr_svg {
        body += "<p>Scan this QR code with your authenticator app:</p>\n";
        body += &format!(
            "<figure role=\"img\" aria-label=\"QR code of your one-time-code secret\">{svg}</figure>\n"
        );
    }
    body += &format!(
        "<p>Or type this key into it: <code id=\"secret\">{}</code></p>\n",
        escape(secret)
    );
    body += &error(step);
    body += &form_start(step.action, step.hidden, step.csrf);
    body += &code_field(
        "Code your app shows now",
        "Six digits. This confirms the app holds the key.",
    );
    body += "<button type=\"submit\">Verify</button>\n";
    body += DENY;
    body += "</form>\n";
    document(title, step.look, &body)
}

/// Recovery codes, shown this once, then on to the application.
pub fn recovery_codes(step: &Step<'_>, codes: &[String]) -> String {
    let title = "Save your recovery codes";
    let mut body = format!("<h1>{title}</h1>\n");
    body += "<p>Two-step verification is on. If you lose your device, each of these \
             codes signs you in once in place of a code from your app. Keep them \
             somewhere safe: they are not shown again.</p>\n<ol class=\"codes\">\n";
    for code in codes {
        body += &format!("<li><code>{}</code></li>\n", escape(code));
    }
    body += "</ol>\n";
    body += &form_start(step.action, step.hidden, step.csrf);
    body += "<button type=\"submit\" name=\"continue\" value=\"1\" autofocus>I have saved them: continue</button>\n";
    body += "</form>\n";
    document(title, step.look, &body)
}

/// Signed in with a recovery code: how many are left, then on.
pub fn recovery_used(step: &Step<'_>, left: usize) -> String {
    let title = "Signed in with a recovery code";
    let mut body = format!("<h1>{title}</h1>\n");
    body += &match left {
        0 => "<p role=\"status\">That was your last recovery code. Make new ones on your account page.</p>\n".to_string(),
        1 => "<p role=\"status\">You have 1 recovery code left.</p>\n".to_string(),
        n => format!("<p role=\"status\">You have {n} recovery codes left.</p>\n"),
    };
    body += &form_start(step.action, step.hidden, step.csrf);
    body += "<button type=\"submit\" name=\"continue\" value=\"1\" autofocus>Continue</button>\n";
    body += "</form>\n";
    document(title, step.look, &body)
}
