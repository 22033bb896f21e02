//! The lockout around a credential check: a place reserved before the
//! secret is checked, and a failure recorded after, so no burst of
//! concurrent guesses gets more checks than a budget allows.
//!
//! Budgets are counted under a login's [`login_key`] (the spellings a
//! database collation treats as one share one), and again under the
//! principal's own login once its record is found. A user's budget is its
//! own, beside its client address's. A client with a high-entropy secret
//! (the client dialects, a user dialect's OAuth 2.0 clients) is counted
//! per (client, address), with a much larger budget for the client from
//! every address together: one bad actor cannot lock an application out
//! for all its users.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{Denied, Logins};
use crate::config::login_key;
use crate::store::{Lockout, Reservation};
use crate::tokens::sha256_base64url;

/// How long a login waits for other checks of the same principal (or
/// address) to end when they could use up its budget, and how often it looks.
const BUSY_WAIT: Duration = Duration::from_secs(2);
const BUSY_RETRY: Duration = Duration::from_millis(5);

/// About half a minute of tries to give a place back.
const RELEASE_RETRIES: usize = 20;

/// Whose budget a check spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A person with a password: one budget per login.
    User,
    /// An application with a high-entropy secret: one budget per
    /// (client, address), and a larger one per client.
    Client,
}

/// One counter a check reserves a place in.
#[derive(Debug, Clone)]
struct Budget {
    key: String,
    limit: u32,
    /// A success clears it (a principal's own count; never an address's).
    cleared_by_success: bool,
}

/// A credential check reserved by [`Logins::begin_attempt`]. Its place is
/// given back when it is dropped, however the request ended: a client that
/// hangs up mid-check must not keep a principal's budget taken.
#[must_use = "end it with Logins::end_attempt"]
pub struct Attempt {
    kind: Kind,
    /// The login as typed, under [`login_key`].
    login_key: String,
    client: Option<IpAddr>,
    budgets: Vec<Budget>,
    /// Names this reservation in the store, so its release is exact.
    id: String,
    /// The most failures any of its principal budgets had when reserved.
    failures: u32,
    store: Arc<dyn Lockout>,
    /// Given back by `end_attempt`; otherwise when dropped.
    released: bool,
}

impl Attempt {
    fn keys(&self) -> Vec<String> {
        self.budgets.iter().map(|b| b.key.clone()).collect()
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let id = std::mem::take(&mut self.id);
        runtime.spawn(release_until_done(self.store.clone(), self.keys(), id));
    }
}

/// Releases a check's place, retrying while the store fails (an outage, a
/// failover) for up to [`RELEASE_RETRIES`] tries: a place never given
/// back would refuse the principal's logins as busy until the lockout
/// cool-down lapses.
async fn release_until_done(store: Arc<dyn Lockout>, keys: Vec<String>, id: String) {
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut pause = Duration::from_millis(100);
    for _ in 0..RELEASE_RETRIES {
        match store.release_attempts(&keys, &id).await {
            Ok(()) => return,
            Err(_) => tokio::time::sleep(pause).await,
        }
        pause = (pause * 2).min(Duration::from_secs(2));
    }
    tracing::warn!("could not release a credential check: the principal may be refused as busy until its lockout cool-down lapses");
}

/// How a reserved credential check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Failed,
    Succeeded,
    /// The password was right, but a second factor is still to come: its
    /// success, not this one, clears the failures (or a guesser who knows
    /// the password would clear them before each guess at the code).
    Passed,
    /// Answered before the secret was checked (an inactive client, a
    /// missing company), or the check could not run.
    Unchecked,
}

impl Logins<'_> {
    /// Whose budget the issuer's own principals spend: clients where the
    /// dialect's secrets are high-entropy, users otherwise (the project
    /// dialect's secrets are passwords).
    pub fn principal_kind(&self) -> Kind {
        match self.identity.accounts.form.fast_secrets() {
            true => Kind::Client,
            false => Kind::User,
        }
    }

    /// The budgets of the login whose [`login_key`] is `login_key`; with
    /// `address` the client address's own budget too.
    fn budgets(
        &self,
        kind: Kind,
        login_key: &str,
        client: Option<IpAddr>,
        address: bool,
    ) -> Vec<Budget> {
        let (name, e) = (&self.identity.issuer, &self.identity.accounts);
        let hashed = sha256_base64url(login_key);
        let budget = |key: String, limit, cleared_by_success| Budget {
            key,
            limit,
            cleared_by_success,
        };
        let mut budgets = match (kind, client) {
            (Kind::User, _) => vec![budget(
                format!("{name}\0user\0{hashed}"),
                e.max_failures,
                true,
            )],
            (Kind::Client, None) => {
                vec![budget(
                    format!("{name}\0client\0{hashed}"),
                    e.max_failures,
                    true,
                )]
            }
            (Kind::Client, Some(ip)) => vec![
                budget(
                    format!("{name}\0client\0{hashed}\0{ip}"),
                    e.max_failures,
                    true,
                ),
                budget(
                    format!("{name}\0client\0{hashed}"),
                    e.client_max_failures,
                    false,
                ),
            ],
        };
        if let (true, Some(ip)) = (address, client) {
            budgets.push(budget(
                format!("{name}\0ip\0{ip}"),
                e.ip_max_failures,
                false,
            ));
        }
        budgets
    }

    /// Reserves a credential check for `login` from `client`: refused
    /// (`Locked`) while a budget is cooling down; while its failures plus the
    /// checks already in flight reach its limit, it waits for those to end
    /// (up to `BUSY_WAIT`, then `Locked`), so no burst of concurrent
    /// guesses gets more checks than `max_failures` allows, and concurrent
    /// good logins are served one after another rather than refused.
    /// Every reservation ends with [`Logins::end_attempt`].
    pub async fn begin_attempt(
        &self,
        kind: Kind,
        login: &str,
        client: Option<IpAddr>,
        now: i64,
    ) -> Result<Attempt, Denied> {
        let login_key = login_key(login);
        let budgets = self.budgets(kind, &login_key, client, true);
        let id = format!("{:016x}", rand::random::<u64>());
        let failures = self.reserve(&budgets, &id, now).await?;
        Ok(Attempt {
            kind,
            login_key,
            client,
            budgets,
            id,
            failures,
            store: self.store.clone(),
            released: false,
        })
    }

    /// Once the principal is found: its own login's budgets are reserved
    /// too, where they differ from the typed login's (a collation that
    /// matched `ADMIN` to `admin`), so every spelling spends one budget.
    pub async fn claim(
        &self,
        attempt: &mut Attempt,
        own_login: &str,
        now: i64,
    ) -> Result<(), Denied> {
        let own = login_key(own_login);
        if own == attempt.login_key {
            return Ok(());
        }
        let budgets = self.budgets(attempt.kind, &own, attempt.client, false);
        let failures = self.reserve(&budgets, &attempt.id, now).await?;
        attempt.failures = attempt.failures.max(failures);
        attempt.budgets.extend(budgets);
        Ok(())
    }

    /// One reservation of `budgets` under `id`, waiting while busy: the
    /// first budget's failures so far.
    async fn reserve(&self, budgets: &[Budget], id: &str, now: i64) -> Result<u32, Denied> {
        let limits: Vec<(&str, u32)> = budgets.iter().map(|b| (b.key.as_str(), b.limit)).collect();
        let cooldown = self.identity.accounts.lockout.as_secs() as i64;
        let give_up = tokio::time::Instant::now() + BUSY_WAIT;
        loop {
            let reserved = match self.store.reserve_attempt(&limits, cooldown, now, id).await {
                Ok(reserved) => reserved,
                Err(e) => {
                    // The reservation may have been made before the error
                    // (its answer lost in a failover, or made but not
                    // confirmed by a replica): give it back, or it would
                    // hold until the cool-down lapses. (A release of one
                    // never made changes nothing.)
                    let keys = budgets.iter().map(|b| b.key.clone()).collect();
                    tokio::spawn(release_until_done(self.store.clone(), keys, id.to_string()));
                    return Err(e.into());
                }
            };
            match reserved {
                Reservation::Granted(failures) => return Ok(failures),
                Reservation::Locked => return Err(Denied::Locked),
                Reservation::Busy if tokio::time::Instant::now() >= give_up => {
                    return Err(Denied::Locked)
                }
                Reservation::Busy => tokio::time::sleep(BUSY_RETRY).await,
            }
        }
    }

    /// Ends a reserved check: a failure is counted against every budget
    /// (locking those at their limits), a success clears the principal's
    /// own counts, `Outcome::Unchecked` counts nothing. Its place is given
    /// back afterwards (the failure is counted first).
    pub async fn end_attempt(
        &self,
        mut attempt: Attempt,
        outcome: Outcome,
        now: i64,
    ) -> Result<(), Denied> {
        let recorded = match outcome {
            Outcome::Failed => self.record_failure(&attempt, now).await,
            Outcome::Succeeded if attempt.failures > 0 => self.clear_failures(&attempt).await,
            Outcome::Succeeded | Outcome::Passed | Outcome::Unchecked => Ok(()),
        };
        // Marked first: were this cancelled mid-way, a second release from
        // `Drop` could give back another check's place.
        attempt.released = true;
        let keys = attempt.keys();
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let released = self.store.release_attempts(&key_refs, &attempt.id).await;
        if released.is_err() {
            tokio::spawn(release_until_done(
                self.store.clone(),
                keys,
                attempt.id.clone(),
            ));
        }
        recorded?;
        released.map_err(Denied::from)
    }

    /// A person whose password [`Outcome::Passed`] has now signed in with
    /// their second factor too (or needs none): their own login's
    /// failures are cleared.
    pub async fn signed_in(&self, own_login: &str) -> Result<(), Denied> {
        let own = login_key(own_login);
        let budgets = self.budgets(self.principal_kind(), &own, None, false);
        for budget in budgets.iter().filter(|b| b.cleared_by_success) {
            self.store.clear_failures(&budget.key).await?;
        }
        Ok(())
    }

    /// One check of a second factor (a one-time code, a recovery code) of
    /// `login`, spending the same budget as a wrong password: `check`
    /// answers whether the code was theirs. Refused while the budget
    /// cools down.
    pub async fn second_factor<T, F>(
        &self,
        login: &str,
        client: Option<IpAddr>,
        now: i64,
        check: F,
    ) -> Result<T, Denied>
    where
        F: std::future::Future<Output = Result<Option<T>, Denied>>,
    {
        let attempt = match self.begin_attempt(Kind::User, login, client, now).await {
            Ok(a) => a,
            Err(d) => return Err(self.refuse(login, d.into())),
        };
        let checked = check.await;
        let outcome = match &checked {
            Ok(Some(_)) => Outcome::Succeeded,
            Ok(None) => Outcome::Failed,
            Err(_) => Outcome::Unchecked,
        };
        self.end_attempt(attempt, outcome, now).await?;
        match checked {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Err(self.refuse(login, super::Reason::WrongCode)),
            Err(d) => Err(d),
        }
    }

    async fn clear_failures(&self, attempt: &Attempt) -> Result<(), Denied> {
        for budget in attempt.budgets.iter().filter(|b| b.cleared_by_success) {
            self.store.clear_failures(&budget.key).await?;
        }
        Ok(())
    }

    /// Counts a failed login against every budget, in one write.
    async fn record_failure(&self, attempt: &Attempt, now: i64) -> Result<(), Denied> {
        let limits: Vec<(&str, u32)> = attempt
            .budgets
            .iter()
            .map(|b| (b.key.as_str(), b.limit))
            .collect();
        let cooldown = self.identity.accounts.lockout.as_secs() as i64;
        if self.store.record_failures(&limits, cooldown, now).await? {
            self.identity.lockouts.inc();
        }
        Ok(())
    }
}
