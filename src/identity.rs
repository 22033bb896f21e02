//! An issuer's accounts at run time, knowing no dialect and no protocol:
//! who they are (the config's, then `principals::Lookup`'s), whether a
//! secret is theirs (`check`), the lockout around every check (`lockout`),
//! a refusal said once where it is decided (`reason`), and what an
//! account's tokens say about it (`profile`). One
//! [`Identity`] per issuer with accounts, built with the snapshot
//! (`live::LiveIssuer`); the legacy dialects (`dialect`) and the OAuth 2.0
//! endpoints (`oauth2`) both log their users and clients in through it.

mod check;
mod lockout;
pub mod profile;
mod reason;

pub use check::Denied;
pub use lockout::{Attempt, Kind, Outcome};
pub use reason::Reason;

use std::sync::{Arc, OnceLock};

use prometheus::IntCounter;

use crate::config::{Accounts, Issuer};
use crate::metrics::Metrics;
use crate::principals::UserStore;
use crate::store::Store;

/// The longest field naming an account or holding its secret, in bytes:
/// every principal, secret and refresh token fits, and no client can make a
/// lockout record or a hash input of any size it likes.
pub const MAX_FIELD_LEN: usize = 512;

/// One issuer's accounts and what checks their logins, for one snapshot.
pub struct Identity {
    /// The issuer's name: its logs, its lockout budgets' keys.
    issuer: String,
    accounts: Accounts,
    /// Where accounts not in the config are looked up, if anywhere.
    users: Option<Arc<UserStore>>,
    /// `portero_lockouts_total` for the issuer.
    lockouts: IntCounter,
}

impl Identity {
    /// The identity of `issuer`, if it has accounts.
    pub fn new(
        issuer: &Issuer,
        users: Option<Arc<UserStore>>,
        metrics: &Metrics,
    ) -> Option<Identity> {
        let accounts = issuer.accounts.clone()?;
        Some(Identity {
            issuer: issuer.name.clone(),
            accounts,
            users,
            lockouts: metrics.lockouts.with_label_values(&[&issuer.name]),
        })
    }

    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// One request's logins, counted in `store`.
    pub fn logins<'a>(&'a self, store: &'a Arc<dyn Store>) -> Logins<'a> {
        Logins {
            identity: self,
            store,
            refused: OnceLock::new(),
        }
    }
}

/// An [`Identity`] as one request uses it: its checks counted in the
/// store, and the refusal the request is counted under.
pub struct Logins<'a> {
    identity: &'a Identity,
    store: &'a Arc<dyn Store>,
    /// Why this request's login was refused, noted where it was decided
    /// (`Logins::refuse`): its metrics' `reason`.
    refused: OnceLock<Reason>,
}
