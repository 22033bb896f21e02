//! `[issuers.NAME.sign_in]`: the sign-in page's look, and how people sign
//! in on it beside a password: passkeys (`passkeys`, `rp_id`) and the
//! second factor (`second_factor`, `legacy_password_only`).

use std::collections::BTreeMap;

use toml::Spanned;

use super::super::file::FileSignIn;
use super::super::model::{Accounts, SecondFactor, SignInPage};
use super::Checker;

impl Checker<'_> {
    /// The table, read where the issuer has a sign-in page (`page`); the
    /// second-factor policy is set on its `accounts`, whose every login
    /// (the legacy endpoint's too) it rules.
    pub(super) fn sign_in_page(
        &mut self,
        name: &str,
        written: Option<&FileSignIn>,
        page: bool,
        public_url: &str,
        accounts: &mut Accounts,
    ) -> SignInPage {
        accounts.sign_in_page = page;
        let Some(t) = written else {
            return SignInPage::default();
        };
        if !page {
            self.problem_no_span(
                format!("issuers.{name}.sign_in"),
                "never shown: the issuer has no authorization endpoint (oauth2.authorization_code)",
            );
        }
        let key = |k: &str| format!("issuers.{name}.sign_in.{k}");
        let url = |c: &mut Self, v: &Option<Spanned<String>>, k: &str| {
            let written = v.as_ref()?;
            let text = written.get_ref();
            let same_origin = text.starts_with('/') && !text.starts_with("//");
            let https = url::Url::parse(text).is_ok_and(|u| u.scheme() == "https");
            if !(same_origin || https) {
                c.problem(
                    written,
                    key(k),
                    "an https URL, or a path on this origin (/...)",
                );
                return None;
            }
            if text.contains(['"', '\'', '<', '>', ' ', ';', '\\']) {
                c.problem(
                    written,
                    key(k),
                    "may not contain quotes, <, >, spaces, ; or \\",
                );
                return None;
            }
            Some(text.clone())
        };
        let passkeys = self.passkeys(name, t, public_url);
        self.second_factor(name, t, accounts);
        let (lang, text) = self.words(name, t);
        SignInPage {
            title: t.title.as_ref().map(|v| v.get_ref().clone()),
            logo_url: url(self, &t.logo_url, "logo_url"),
            stylesheet_url: url(self, &t.stylesheet_url, "stylesheet_url"),
            passkeys,
            lang,
            text,
        }
    }

    /// `lang` (a language tag) and `text`: each key a text the pages say
    /// (`page_words::CATALOG`), its translation with the same placeholders.
    fn words(&mut self, name: &str, t: &FileSignIn) -> (Option<String>, BTreeMap<String, String>) {
        let key = |k: &str| format!("issuers.{name}.sign_in.{k}");
        let lang = t.lang.as_ref().and_then(|written| {
            let tag = written.get_ref();
            let well_formed = !tag.is_empty()
                && tag.len() <= 35
                && tag.split('-').all(|part| {
                    !part.is_empty()
                        && part.len() <= 8
                        && part.bytes().all(|b| b.is_ascii_alphanumeric())
                });
            if !well_formed {
                self.problem(
                    written,
                    key("lang"),
                    "a language tag, such as \"de\" or \"pt-BR\"",
                );
                return None;
            }
            Some(tag.clone())
        });
        let Some(written) = &t.text else {
            return (lang, BTreeMap::new());
        };
        let mut text = BTreeMap::new();
        for (english, words) in written.get_ref() {
            let at = format!("{}.{english:?}", key("text"));
            if !crate::page_words::CATALOG.contains(&english.as_str()) {
                let near = crate::page_words::CATALOG
                    .iter()
                    .max_by(|a, b| strsim::jaro(a, english).total_cmp(&strsim::jaro(b, english)))
                    .expect("a catalog");
                self.problem(
                    written,
                    at,
                    format!("not a text the pages say; did you mean {near:?}?"),
                );
                continue;
            }
            if words.trim().is_empty() || words.len() > 1000 {
                self.problem(written, at, "1 to 1000 characters");
                continue;
            }
            let (ours, theirs) = (
                crate::page_words::placeholders(english),
                crate::page_words::placeholders(words),
            );
            if ours != theirs {
                self.problem(
                    written,
                    at,
                    format!("must keep the placeholders {ours:?}, no more"),
                );
                continue;
            }
            text.insert(english.clone(), words.clone());
        }
        (lang, text)
    }

    /// `passkeys` and `rp_id`: the relying party id, where passkeys are
    /// on. A browser takes a passkey only from a secure origin (https, or
    /// http on localhost) whose host is the id or under it, and never an
    /// IP address as the id.
    fn passkeys(&mut self, name: &str, t: &FileSignIn, public_url: &str) -> Option<String> {
        let key = |k: &str| format!("issuers.{name}.sign_in.{k}");
        let on = t.passkeys.as_ref().is_some_and(|p| *p.get_ref());
        if !on {
            if let Some(rp_id) = &t.rp_id {
                self.problem(rp_id, key("rp_id"), "ignored: passkeys are off");
            }
            return None;
        }
        let at = t.passkeys.as_ref().expect("on");
        let url = url::Url::parse(public_url).ok()?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let secure = url.scheme() == "https" || (url.scheme() == "http" && host == "localhost");
        if !secure {
            self.problem(
                at,
                key("passkeys"),
                "browsers offer passkeys only to an https server.public_url (or http://localhost)",
            );
            return None;
        }
        if matches!(url.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))) {
            self.problem(
                at,
                key("passkeys"),
                "browsers take no IP address as a passkey's relying party: give server.public_url a host name",
            );
            return None;
        }
        let Some(rp_id) = &t.rp_id else {
            return Some(host);
        };
        let id = rp_id.get_ref();
        let under = host == *id || host.ends_with(&format!(".{id}"));
        // A bare top-level name is a public suffix no browser takes.
        let a_domain = id.contains('.') || id == "localhost";
        if !under || !a_domain || *id != id.to_ascii_lowercase() {
            self.problem(
                rp_id,
                key("rp_id"),
                format!(
                    "must be {host:?} (server.public_url's host) or a domain it is under \
                     (not a top-level name), in lower case"
                ),
            );
            return None;
        }
        Some(id.clone())
    }

    /// `second_factor` and `legacy_password_only`, set on the accounts.
    fn second_factor(&mut self, name: &str, t: &FileSignIn, accounts: &mut Accounts) {
        let key = |k: &str| format!("issuers.{name}.sign_in.{k}");
        if let Some(written) = &t.second_factor {
            accounts.second_factor = match written.get_ref().as_str() {
                "off" => SecondFactor::Off,
                "optional" => SecondFactor::Optional,
                "required" => SecondFactor::Required,
                _ => {
                    self.problem(
                        written,
                        key("second_factor"),
                        "one of \"off\", \"optional\", \"required\"",
                    );
                    SecondFactor::Off
                }
            };
            if accounts.second_factor != SecondFactor::Off && accounts.form.fast_secrets() {
                self.problem(
                    written,
                    key("second_factor"),
                    "the issuer's principals are applications with generated secrets: no person signs in here",
                );
            }
        }
        if let Some(written) = &t.legacy_password_only {
            if accounts.second_factor == SecondFactor::Off
                && !t.passkeys.as_ref().is_some_and(|p| *p.get_ref())
            {
                self.problem(
                    written,
                    key("legacy_password_only"),
                    "ignored: nobody has a second factor (second_factor is off and passkeys are off)",
                );
            }
            accounts.legacy_password_only = *written.get_ref();
        }
    }
}
