//! `[issuers.NAME.sign_in]`: the sign-in page's look and words, and how
//! people sign in on it beside a password.

use std::collections::BTreeMap;

/// `[issuers.NAME.sign_in]`: how the sign-in page looks, and whether it
/// offers passkeys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignInPage {
    pub title: Option<String>,
    /// An https (or same-origin path) URL of an image shown above the form.
    pub logo_url: Option<String>,
    /// A stylesheet linked after portero's own.
    pub stylesheet_url: Option<String>,
    /// The WebAuthn relying party id (`public_url`'s host unless `rp_id`
    /// says otherwise) where passkeys are on; `None`: off.
    pub passkeys: Option<String>,
    /// The pages' language (`<html lang>`); `None`: English.
    pub lang: Option<String>,
    /// English text (`page_words::CATALOG`) -> the pages' words for it.
    pub text: BTreeMap<String, String>,
}

/// What a person needs beside their password (`second_factor`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SecondFactor {
    /// Nobody is asked for one, nor may enrol a one-time code.
    #[default]
    Off,
    /// Whoever enrolled one is asked for it.
    Optional,
    /// Everyone: a user without one enrols one right after their password.
    Required,
}
