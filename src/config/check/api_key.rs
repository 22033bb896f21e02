//! `[issuers.NAME] kind`: an issuer of signed tokens, or of API keys. An
//! `api_key` issuer has no keys, endpoint or provider: only its name and
//! `iss`; its keys are made by the admin API or `portero import`.

use toml::Spanned;

use super::super::file::FileIssuer;
use super::super::model::IssuerKind;
use super::Checker;

impl Checker<'_> {
    /// The issuer's kind; for `api_key`, every key that only a token
    /// issuer has is refused where it is written.
    pub(super) fn issuer_kind(&mut self, name: &str, i: &FileIssuer) -> IssuerKind {
        let key = |k: &str| format!("issuers.{name}.{k}");
        if name.chars().any(char::is_control) {
            self.problem_no_span(
                format!("issuers.{name:?}"),
                "an issuer name holds no control characters",
            );
        }
        let kind = match i.kind.as_ref().map(|k| (k, k.get_ref().as_str())) {
            None | Some((_, "jwt")) => return IssuerKind::Jwt,
            Some((_, "api_key")) => IssuerKind::ApiKey,
            Some((_, "oauth2")) => return IssuerKind::OAuth2,
            Some((k, other)) => {
                self.problem(
                    k,
                    key("kind"),
                    format!(
                        "{other:?} is not a kind of issuer: jwt (the default), oauth2 or api_key"
                    ),
                );
                return IssuerKind::Jwt;
            }
        };
        let spans: [(Option<&Spanned<String>>, &str); 10] = [
            (i.dialect.as_ref(), "dialect"),
            (i.keys.first().map(|k| &k.kid), "keys"),
            (i.host.as_ref(), "host"),
            (i.path.as_ref(), "path"),
            (i.discovery_url.as_ref(), "discovery_url"),
            (i.jwks_url.as_ref(), "jwks_url"),
            (i.principals_file.as_ref(), "principals_file"),
            (i.cors.as_ref(), "cors"),
            (i.deprecation.as_ref(), "deprecation"),
            (i.ca_file.as_ref(), "ca_file"),
        ];
        let message = "an api_key issuer's keys are made by the admin API or `portero import`: it takes no token keys, endpoint or provider";
        for (given, k) in spans {
            if let Some(v) = given {
                self.problem(v, key(k), message);
            }
        }
        let more = [
            (i.roles_claims.as_ref().map(Spanned::span), "roles_claims"),
            (i.oauth2.as_ref().map(Spanned::span), "oauth2"),
            (i.user_store.as_ref().map(Spanned::span), "user_store"),
            (i.shadow.as_ref().map(Spanned::span), "shadow"),
            (i.token_ttl.as_ref().map(Spanned::span), "token_ttl"),
            (i.rate_limit.as_ref().map(Spanned::span), "rate_limit"),
        ];
        for (given, k) in more {
            if let Some(span) = given {
                self.problem(&Spanned::new(span, ()), key(k), message);
            }
        }
        let unspanned = [
            (!i.principals.is_empty(), "principals"),
            (i.allow_no_exp, "allow_no_exp"),
        ];
        for (given, k) in unspanned {
            if given {
                self.problem_no_span(key(k), message);
            }
        }
        kind
    }
}
