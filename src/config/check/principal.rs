//! `[[issuers.NAME.principals]]`: what a principal may say, checked
//! against what reads it (its dialect, its OAuth 2.0 endpoints).

use toml::Spanned;

use super::super::file::*;
use super::super::model::*;
use super::Checker;

/// A principal's keys that only its OAuth 2.0 endpoints read, as a client.
const OAUTH2_CLIENT_KEYS: [&str; 3] = ["permissions", "auth_method", "introspect"];

/// What reads an issuer's principals: its dialect's endpoint (or a
/// standard issuer's sign-in), and its OAuth 2.0 endpoints if it has them.
#[derive(Clone, Copy)]
pub(super) struct Readers {
    pub(super) form: AccountForm,
    pub(super) oauth2: bool,
}

/// The keys written in `p` that some dialect may not read, each with where
/// it is written (`secret_hash`, `active`, `blocked` and `rate_limit` are
/// read by every dialect).
fn written_keys(p: &FilePrincipal) -> Vec<(&'static str, std::ops::Range<usize>)> {
    fn at<T>(v: &Option<Spanned<T>>) -> Option<std::ops::Range<usize>> {
        v.as_ref().map(Spanned::span)
    }
    [
        ("username", at(&p.username)),
        ("client_id", at(&p.client_id)),
        ("business", at(&p.business)),
        ("proyecto", at(&p.proyecto)),
        ("id", at(&p.id)),
        ("nombre", at(&p.nombre)),
        ("role", at(&p.role)),
        ("company", at(&p.company)),
        ("permissions", at(&p.permissions)),
        ("auth_method", at(&p.auth_method)),
        ("introspect", at(&p.introspect)),
        ("roles", at(&p.roles)),
        ("claims", at(&p.claims)),
    ]
    .into_iter()
    .filter_map(|(name, at)| Some((name, at?)))
    .collect()
}

impl Checker<'_> {
    pub(super) fn auth_method(
        &mut self,
        written: &Option<Spanned<String>>,
        key: &str,
    ) -> Option<ClientAuth> {
        written.as_ref().map(|m| {
            self.choice(
                &Some(m.clone()),
                &format!("{key}.auth_method"),
                [
                    ("client_secret_basic", ClientAuth::Basic),
                    ("client_secret_post", ClientAuth::Post),
                ],
            )
        })
    }

    pub(super) fn principal(
        &mut self,
        key: &str,
        readers: Readers,
        p: &FilePrincipal,
    ) -> Option<Principal> {
        let form = readers.form;
        let secret = self.stored_hash(&p.secret_hash, &format!("{key}.secret_hash"))?;
        let text = |v: &Option<Spanned<String>>| v.as_ref().map(|s| s.get_ref().clone());
        let login = form.login_of(
            p.username.as_ref().map(|s| s.get_ref().as_str()),
            p.client_id.as_ref().map(|s| s.get_ref().as_str()),
            p.business.as_ref().map(|s| s.get_ref().as_str()),
            p.proyecto.as_ref().map(|s| s.get_ref().as_str()),
        );
        let Some(login) = login else {
            self.problem(
                &p.secret_hash,
                key,
                format!("the {} dialect needs {}", form.name(), form.login_fields()),
            );
            return None;
        };
        if form == AccountForm::Dialect(Dialect::Project)
            && p.business
                .as_ref()
                .is_some_and(|b| b.get_ref().contains('/'))
        {
            self.problem(
                &p.secret_hash,
                format!("{key}.business"),
                "may not contain `/`: the login is business/proyecto",
            );
            return None;
        }
        self.keys_read(key, readers, p);
        if form == AccountForm::Dialect(Dialect::ClientFlat) && p.company.is_none() {
            self.problem(
                &p.secret_hash,
                format!("{key}.company"),
                format!(
                    "principal {login:?} has no company: the client-flat dialect needs one to \
                     log in; add company = \"...\" (one of companies)"
                ),
            );
        }
        let id = match &p.id {
            None => serde_json::Value::Null,
            Some(v) => serde_json::to_value(v.get_ref()).unwrap_or(serde_json::Value::Null),
        };
        Some(Principal {
            login,
            secret,
            id,
            username: text(&p.username),
            nombre: text(&p.nombre),
            role: text(&p.role),
            business: text(&p.business),
            proyecto: text(&p.proyecto),
            client_id: text(&p.client_id),
            company: text(&p.company),
            permissions: p
                .permissions
                .as_ref()
                .map_or_else(Vec::new, |l| l.get_ref().clone()),
            active: p.active,
            blocked: p.blocked,
            rate_limit: p.rate_limit.filter(|n| *n > 0),
            stored_hash: None,
            auth_method: self.auth_method(&p.auth_method, key),
            introspect: p.introspect.as_ref().is_some_and(|i| *i.get_ref()),
            roles: p
                .roles
                .as_ref()
                .map_or_else(Vec::new, |r| r.get_ref().clone()),
            claims: self.own_claims(&p.claims, &format!("{key}.claims")),
            client: ClientProfile::default(),
        })
    }

    /// Refuses, at its line, each key of `p` that nothing reads: one its
    /// dialect's endpoint never reads, or an OAuth 2.0 client's where the
    /// issuer has no OAuth 2.0 endpoints. Such a key only looks as if it
    /// did something (a `role` no token ever carries).
    fn keys_read(&mut self, key: &str, readers: Readers, p: &FilePrincipal) {
        let form = readers.form;
        let read = form.principal_keys();
        let as_client = form.has_clients();
        for (name, at) in written_keys(p) {
            let problem = if read.contains(&name) {
                continue;
            } else if as_client && OAUTH2_CLIENT_KEYS.contains(&name) {
                if readers.oauth2 {
                    continue;
                }
                format!(
                    "the {} dialect never reads {name} without OAuth 2.0 endpoints (it is an \
                     OAuth 2.0 client's); add the issuer's oauth2 table, or remove it",
                    form.name()
                )
            } else {
                let mut keys = read.join(", ");
                if as_client {
                    for more in OAUTH2_CLIENT_KEYS.iter().filter(|k| !read.contains(k)) {
                        keys += &format!(", {more} (as an OAuth 2.0 client)");
                    }
                }
                format!(
                    "the {} dialect never reads {name}: its principals have {keys}, \
                     secret_hash, active, blocked and rate_limit; remove it",
                    form.name(),
                )
            };
            self.problem(&Spanned::new(at, ()), format!("{key}.{name}"), problem);
        }
    }
}

impl Checker<'_> {
    /// A standard issuer's user's `claims`, as JSON; a claim portero sets
    /// itself is refused (it would be overwritten, or worse, trusted).
    fn own_claims(
        &mut self,
        written: &Option<Spanned<toml::Table>>,
        key: &str,
    ) -> serde_json::Map<String, serde_json::Value> {
        let Some(table) = written else {
            return serde_json::Map::new();
        };
        for name in table.get_ref().keys() {
            if RESERVED_CLAIMS.contains(&name.as_str()) {
                self.problem(
                    table,
                    key,
                    format!(
                        "{name:?} is a claim portero sets or reads itself; name yours otherwise"
                    ),
                );
            }
        }
        match serde_json::to_value(table.get_ref()) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => {
                self.problem(table, key, "must be a table of JSON-representable values");
                serde_json::Map::new()
            }
        }
    }
}
