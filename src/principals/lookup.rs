//! The one lookup a login asks: the config's principals, then those
//! `portero import` wrote to the store, then the issuer's user store. The
//! principal found is named by its own login, never by the spelling typed:
//! a config principal wins whichever spelling reached its login.

use std::sync::{Arc, Mutex};

use super::imported::ImportedPrincipal;
use super::sql::{Unavailable, UserStore};
use crate::config::{within_limits, Accounts, Principal};
use crate::credentials::{stand_in_of, StandIn};
use crate::store::{ImportedPrincipals, StoreError};

/// Why a lookup could not answer.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    UserStore(#[from] Unavailable),
}

/// An issuer's principals, wherever they are kept.
pub struct Lookup<'a> {
    issuer: &'a str,
    accounts: &'a Accounts,
    store: &'a dyn ImportedPrincipals,
    /// The issuer's SQL table, if it has one.
    users: Option<&'a Arc<UserStore>>,
}

impl<'a> Lookup<'a> {
    pub fn new(
        issuer: &'a str,
        accounts: &'a Accounts,
        store: &'a dyn ImportedPrincipals,
        users: Option<&'a Arc<UserStore>>,
    ) -> Lookup<'a> {
        Lookup {
            issuer,
            accounts,
            store,
            users,
        }
    }

    /// The principal `login` names: from the config, else those `portero
    /// import` wrote to the store, else the issuer's user store. It is
    /// asked only for logins `identity` lets through.
    pub async fn principal(&self, login: &str) -> Result<Option<Arc<Principal>>, LookupError> {
        if let Some(p) = self.accounts.principals.get(login) {
            return Ok(Some(p.clone()));
        }
        let found = self.beyond_the_config(login).await?;
        // A record another spelling reached whose login is one with a
        // config principal's: the config's is who logs in, as for the
        // same spelling.
        Ok(
            found.map(|p| match self.accounts.principals.get_by_key(&p.login) {
                Some(configured) => configured.clone(),
                None => p,
            }),
        )
    }

    /// The principal `login` names among those imported, then in the user store.
    async fn beyond_the_config(&self, login: &str) -> Result<Option<Arc<Principal>>, LookupError> {
        if let Some(record) = self.store.principal(self.issuer, login).await? {
            return Ok(self.imported(&record, login));
        }
        match self.users {
            None => Ok(None),
            Some(users) => Ok(users.find(login).await?),
        }
    }

    /// An imported record as one of the issuer's accounts; `None` (logged) when
    /// it is unreadable or its hash costs more than the issuer allows.
    fn imported(&self, record: &str, login: &str) -> Option<Arc<Principal>> {
        let decoded = ImportedPrincipal::decode(record, self.accounts.form)
            .and_then(|p| within_limits(&p.secret, &self.accounts.hash_limits).map(|()| p));
        match decoded {
            Ok(p) => Some(Arc::new(p)),
            Err(why) => {
                tracing::warn!(
                    issuer = %self.issuer,
                    login,
                    "an imported principal refused: {why}"
                );
                None
            }
        }
    }

    /// The formats and costs of the issuer's principals (for a user store,
    /// of the rows read so far), as `credentials::StandIn`.
    pub fn stand_in(&self) -> &'a Mutex<StandIn> {
        match self.users {
            Some(users) => users.stand_in(),
            None => stand_in_of(&self.accounts.principals),
        }
    }

    /// `p` passed its secret check with `secret`: a user store row whose
    /// hash is in a legacy format has it rewritten, in the background.
    pub fn passed(&self, p: &Principal, secret: &str) {
        if let Some(users) = self.users {
            if users.wants_rehash(p) {
                users.rehash_later(p, secret);
            }
        }
    }
}
