//! The words of portero's sign-in and account pages, in English, as an
//! operator translates them: `[issuers.NAME.sign_in.text]` maps each
//! English text listed here to the page's language (`lang`), keeping its
//! placeholders (`{user}`), which the page fills with escaped values.
//! `portero check` refuses a text not listed, and a translation that
//! drops or adds a placeholder.

/// Every text the pages say (the protocol's error descriptions aside,
/// which stay as the standards write them, unless listed).
pub const CATALOG: &[&str] = &[
    // The sign-in page.
    "Sign in",
    "An application published by {host}",
    "to continue to {client} at {host}",
    "for its use of {resource}",
    "It asks to:",
    "You allowed it before to:",
    "know who you are",
    "keep access while you are away (a refresh token)",
    "use \u{201c}{scope}\u{201d}",
    "You are signed in as {user}.",
    "Allow",
    "Deny",
    "Not you? Sign in as someone else",
    "Username",
    "Password",
    "Sign in with a passkey",
    "{name} (the name the application gives itself)",
    "an application",
    "{name} ({id}, an application that registered itself)",
    "{id} (an application that registered itself)",
    "your account page",
    "Enter your username and password.",
    "Too many failed attempts. Try again later.",
    "The service is unavailable. Try again later.",
    "Wrong username or password.",
    "Your session has ended. Sign in again.",
    "No passkey was used. Try again, or use your password.",
    // The second step.
    "Two-step verification",
    "Signing in as {user}.",
    "Code from your authenticator app",
    "Six digits. Lost your device? Enter one of your recovery codes instead.",
    "Verify",
    "Cancel",
    "Use a passkey instead",
    "Use your passkey",
    "Set up two-step verification",
    "Signing in as {user}. This service asks for a code from an authenticator app each time you sign in.",
    "Scan this QR code with your authenticator app:",
    "QR code of your one-time-code secret",
    "Or type this key into it: {key}",
    "Code your app shows now",
    "Six digits. This confirms the app holds the key.",
    "Save your recovery codes",
    "Two-step verification is on. If you lose your device, each of these codes signs you in once in place of a code from your app. Keep them somewhere safe: they are not shown again.",
    "I have saved them: continue",
    "Signed in with a recovery code",
    "That was your last recovery code. Make new ones on your account page.",
    "You have 1 recovery code left.",
    "You have {count} recovery codes left.",
    "Continue",
    "That took too long. Sign in again.",
    "Your sign-in has ended. Sign in again.",
    "That code is not right. Try again.",
    "That passkey prompt has ended or was used. Try again.",
    "That passkey could not sign you in. Try again, or use your password.",
    "The service is busy. Try again.",
    // The account page.
    "Your account",
    "Signed in as {user}.",
    "Passkeys",
    "You have no passkeys.",
    "{name}, added {added}, never used",
    "{name}, added {added}, last used {used}",
    "Remove",
    "New name",
    "Rename",
    "The passkey was renamed.",
    "Name of the new passkey",
    "Passkey",
    "Add a passkey",
    "One-time codes",
    "Your authenticator app gives your codes.",
    "Replace your authenticator app",
    "You have no authenticator app set up.",
    "Set up an authenticator app",
    "Recovery codes",
    "You have {count} unused recovery codes.",
    "Make new recovery codes",
    "The passkey was removed.",
    "The passkey was added.",
    "The passkey was not added. Try again.",
    "Your one-time code is set up.",
    "Nothing was asked.",
    "Nothing was changed.",
    "That took too long. Start again.",
    // Error pages.
    "This sign-in request cannot go on",
    "Go back to the application and try again.",
    "Sign-in error",
];

/// The placeholders of `text` (`{name}`), sorted.
pub fn placeholders(text: &str) -> Vec<&str> {
    let mut found: Vec<&str> = text
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .collect();
    found.sort_unstable();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_listed_once_and_their_placeholders_read() {
        let mut seen = std::collections::HashSet::new();
        for text in CATALOG {
            assert!(seen.insert(text), "{text} twice");
        }
        assert_eq!(
            placeholders("to continue to {client} at {host}"),
            ["client", "host"]
        );
        assert!(placeholders("Allow").is_empty());
    }
}
