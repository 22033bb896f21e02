//! The factors a person signs in with beside a password, knowing no HTTP:
//! one-time codes (`totp`, RFC 6238), recovery codes (`recovery`), and
//! how a sign-in's methods are named in tokens (`Methods`: RFC 8176
//! `amr`, and the `acr` levels portero publishes). The records live in
//! the store (`store::Factors`); the pages that use them are the OAuth 2.0
//! sign-in page's (`oauth2::second_factor`).

pub mod passkeys;
pub mod recovery;
pub mod totp;

/// The `acr` of a sign-in with a password alone.
pub const ACR_PASSWORD: &str = "urn:portero:acr:pwd";
/// The `acr` of a sign-in with two factors (a password and a code).
pub const ACR_MFA: &str = "urn:portero:acr:mfa";
/// The `acr` of a sign-in with a passkey: two factors, phishing-resistant.
pub const ACR_PHISHING_RESISTANT: &str = "urn:portero:acr:phr";

/// Every `acr` portero issues, weakest first: a request for one is met by
/// it or any after it.
pub const ACR_LEVELS: [&str; 3] = [ACR_PASSWORD, ACR_MFA, ACR_PHISHING_RESISTANT];

/// How a person signed in, as RFC 8176 names the methods (`amr`).
pub fn acr_of(amr: &[String]) -> &'static str {
    let has = |m: &str| amr.iter().any(|a| a == m);
    if has("hwk") || has("swk") {
        ACR_PHISHING_RESISTANT
    } else if has("mfa") {
        ACR_MFA
    } else {
        ACR_PASSWORD
    }
}

/// Whether a sign-in at `acr` meets a request for any of `asked` (space-
/// separated `acr_values`); values portero does not issue are ignored, as
/// OpenID Connect Core §3.1.2.1 makes them voluntary.
pub fn meets(acr: &str, asked: &[String]) -> bool {
    let rank = |v: &str| ACR_LEVELS.iter().position(|l| *l == v);
    let known: Vec<usize> = asked.iter().filter_map(|v| rank(v)).collect();
    let Some(least) = known.into_iter().min() else {
        return true;
    };
    rank(acr).is_some_and(|held| held >= least)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amr(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_acr_follows_the_methods() {
        assert_eq!(acr_of(&amr(&["pwd"])), ACR_PASSWORD);
        assert_eq!(acr_of(&amr(&["pwd", "otp", "mfa"])), ACR_MFA);
        assert_eq!(acr_of(&amr(&["hwk", "mfa"])), ACR_PHISHING_RESISTANT);
        assert_eq!(acr_of(&amr(&["swk", "mfa"])), ACR_PHISHING_RESISTANT);
    }

    #[test]
    fn a_request_is_met_by_its_level_or_a_stronger_one() {
        let asked = amr(&[ACR_MFA]);
        assert!(!meets(ACR_PASSWORD, &asked));
        assert!(meets(ACR_MFA, &asked));
        assert!(meets(ACR_PHISHING_RESISTANT, &asked));
        // The least of several asked is enough; unknown values ask nothing.
        assert!(meets(ACR_MFA, &amr(&[ACR_PHISHING_RESISTANT, ACR_MFA])));
        assert!(meets(ACR_PASSWORD, &amr(&["urn:other:gold"])));
        assert!(!meets(
            ACR_MFA,
            &amr(&["urn:other:gold", ACR_PHISHING_RESISTANT])
        ));
    }
}
