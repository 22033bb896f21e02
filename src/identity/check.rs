//! A login's credential check: the account asked of the issuer's
//! `principals::Lookup`, the secret verified (slow hashes off the proxy's
//! threads, in a bounded queue per issuer), inside the lockout
//! (`lockout.rs`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::lockout::{Attempt, Outcome};
use super::{Logins, Reason};
use crate::config::{login_key, Principal, SecondFactor, SecretHash};
use crate::credentials::{dummy, StandIn};
use crate::principals::{Lookup, LookupError};
use crate::store::StoreError;

/// Why a login did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Too many failures for this principal or client address: cooling down.
    Locked,
    BadCredentials,
    /// Flagged blocked in the credential store (right password).
    Blocked,
    /// The store could not be read or written.
    Unavailable,
}

impl From<StoreError> for Denied {
    fn from(e: StoreError) -> Denied {
        tracing::warn!(error = %e, "token endpoint: store unavailable");
        Denied::Unavailable
    }
}

impl From<LookupError> for Denied {
    fn from(e: LookupError) -> Denied {
        match e {
            LookupError::Store(e) => Denied::from(e),
            // The user store logs its outages itself, once each.
            LookupError::UserStore(_) => Denied::Unavailable,
        }
    }
}

/// Slow hash checks (argon2, bcrypt, PBKDF2, scrypt) run on blocking
/// threads a few at a time, half the cores, in a queue per issuer: a login
/// flood waits its turn rather than taking every core from the proxy, one
/// issuer's slow rows never hold up another issuer's logins, and past
/// [`MAX_WAITING_CHECKS`] waiting a login is refused as unavailable.
struct SlowChecks {
    running: Arc<tokio::sync::Semaphore>,
    waiting: AtomicUsize,
    /// Set while logins are refused, so a flood logs once.
    refusing: AtomicBool,
}

const MAX_WAITING_CHECKS: usize = 256;

/// The queue of `issuer`'s slow checks.
fn slow_checks(issuer: &str) -> Arc<SlowChecks> {
    static QUEUES: OnceLock<Mutex<HashMap<String, Arc<SlowChecks>>>> = OnceLock::new();
    let mut queues = QUEUES
        .get_or_init(Mutex::default)
        .lock()
        .expect("not poisoned");
    if let Some(queue) = queues.get(issuer) {
        return queue.clone();
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let queue = Arc::new(SlowChecks {
        running: Arc::new(tokio::sync::Semaphore::new(cores.div_ceil(2))),
        waiting: AtomicUsize::new(0),
        refusing: AtomicBool::new(false),
    });
    queues.insert(issuer.to_string(), queue.clone());
    queue
}

/// One place in the queue of slow checks, given back however the wait ends.
struct Waiting(Arc<SlowChecks>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn blocking<T: Send + 'static>(
    issuer: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Denied> {
    let checks = slow_checks(issuer);
    let waiting = Waiting(checks.clone());
    if checks.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING_CHECKS {
        if !checks.refusing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                issuer,
                waiting = MAX_WAITING_CHECKS,
                "slow credential checks queued to the limit: logins refused as unavailable"
            );
        }
        return Err(Denied::Unavailable);
    }
    checks.refusing.store(false, Ordering::Relaxed);
    let turn = checks
        .running
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| Denied::Unavailable)?;
    drop(waiting);
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        f()
    })
    .await
    .map_err(|_| Denied::Unavailable)
}

/// Whether `secret` matches `hash`, and how long checking `hash` and
/// then each of `untimed` took (`hash`'s first).
fn timed_checks(
    hash: SecretHash,
    untimed: Vec<SecretHash>,
    secret: &str,
) -> (bool, Vec<(SecretHash, Duration)>) {
    let started = Instant::now();
    let matches = hash.verify(secret);
    let mut times = vec![(hash, started.elapsed())];
    for hash in untimed {
        let started = Instant::now();
        hash.verify(secret);
        times.push((hash, started.elapsed()));
    }
    (matches, times)
}

impl Logins<'_> {
    /// Where the issuer's principals are found.
    fn lookup(&self) -> Lookup<'_> {
        let identity = self.identity;
        Lookup::new(
            &identity.issuer,
            &identity.accounts,
            self.store.as_ref(),
            identity.users.as_ref(),
        )
    }

    /// The principal `login` names, as `principals::Lookup` finds it: the
    /// config's, else an imported one, else the user store's row. A login
    /// with a control character names no one, and is never sent to a
    /// database (a NUL fails PostgreSQL's query, which would report an
    /// outage that is not one).
    pub async fn principal(&self, login: &str) -> Result<Option<Arc<Principal>>, Denied> {
        if login.chars().any(char::is_control) {
            return Ok(None);
        }
        Ok(self.lookup().principal(login).await?)
    }

    /// As [`Logins::principal`], with the found principal's own login's
    /// budget reserved in `attempt` too (`Locked` when it is spent).
    pub async fn principal_claimed(
        &self,
        attempt: &mut Attempt,
        login: &str,
        now: i64,
    ) -> Result<Option<Arc<Principal>>, Denied> {
        let found = self.principal(login).await?;
        if let Some(p) = &found {
            self.claim(attempt, &p.login, now).await?;
        }
        Ok(found)
    }

    /// Checks `secret` against the principal's hash, or against the
    /// issuer's stand-in when there is no principal, so both take the same
    /// time.
    pub async fn verify_secret(
        &self,
        principal: Option<&Principal>,
        secret: &str,
    ) -> Result<bool, Denied> {
        self.verify_secret_among(principal, secret, None).await
    }

    /// As [`Logins::verify_secret`], among the hashes `stand_in` counts
    /// (clients that are not the issuer's principals have their own; `None`
    /// for the issuer's). A refusal lasts at least what checking their
    /// slowest class takes.
    pub async fn verify_secret_among(
        &self,
        principal: Option<&Principal>,
        secret: &str,
        stand_in: Option<&Mutex<StandIn>>,
    ) -> Result<bool, Denied> {
        let lookup = self.lookup();
        let stand_in = stand_in.unwrap_or_else(|| lookup.stand_in());
        let (hash, untimed) = {
            let mut stand_in = stand_in.lock().expect("not poisoned");
            let hash = match principal {
                Some(p) => p.secret.clone(),
                None => stand_in.hash().unwrap_or_else(|| dummy(false).clone()),
            };
            (hash, stand_in.untimed())
        };
        // A fast hash takes about a microsecond: checked in place. Argon2 takes
        // tens of milliseconds: off the proxy's threads.
        let (matches, times) = if hash.is_fast() && untimed.is_empty() {
            timed_checks(hash, untimed, secret)
        } else {
            let secret = secret.to_string();
            blocking(&self.identity.issuer, move || {
                timed_checks(hash, untimed, &secret)
            })
            .await?
        };
        let floor = {
            let mut stand_in = stand_in.lock().expect("not poisoned");
            for (hash, took) in &times {
                stand_in.timed(hash, *took);
            }
            stand_in.floor()
        };
        let Some(p) = principal.filter(|_| matches) else {
            // Refused: as late as the slowest class would have been, so
            // the time tells no format, and no known name from an unknown.
            let took: Duration = times.iter().map(|(_, took)| *took).sum();
            if floor > took {
                tokio::time::sleep(floor - took).await;
            }
            return Ok(false);
        };
        lookup.passed(p, secret);
        Ok(true)
    }

    /// The whole login of a user (or a client dialect's client): lockout, secret, blocked
    /// and inactive flags, each refusal said once (`Logins::refuse`). The
    /// principal returned is who logged in: its own login, never the
    /// spelling typed, names it in tokens.
    ///
    /// This is a login with a password alone (a dialect's endpoint, the
    /// password grant): where people must give a second factor it is
    /// refused, unless `legacy_password_only` keeps it open. A person who
    /// has a second factor is never cleared of failures by a password
    /// alone: their wrong codes stay counted.
    pub async fn log_in(
        &self,
        login: &str,
        secret: &str,
        client: Option<IpAddr>,
        now: i64,
    ) -> Result<Arc<Principal>, Denied> {
        // Applications (high-entropy secrets) have no second factor, nor
        // does anyone where no sign-in page could set one up or take it:
        // no store read for them.
        let accounts = &self.identity.accounts;
        if self.principal_kind() == super::Kind::Client || !accounts.sign_in_page {
            let checked = self.check_login(login, secret, client, now, Outcome::Succeeded);
            return checked.await.map_err(|why| self.refuse(login, why));
        }
        let open = accounts.legacy_password_only;
        if accounts.second_factor == SecondFactor::Required && !open {
            // Nobody signs in so: refused before any check.
            return Err(self.refuse(login, Reason::PasswordAlone));
        }
        let checked = self.check_login(login, secret, client, now, Outcome::Passed);
        let principal = checked.await.map_err(|why| self.refuse(login, why))?;
        let issuer = &self.identity.issuer;
        let factors = self.store.factors(issuer, &principal.login).await?;
        match factors.is_some_and(|f| f.has_second_factor()) {
            true if accounts.second_factor != SecondFactor::Off && !open => {
                Err(self.refuse(login, Reason::PasswordAlone))
            }
            true => Ok(principal),
            false => {
                self.signed_in(&principal.login).await?;
                if login_key(login) != login_key(&principal.login) {
                    self.signed_in(login).await?;
                }
                Ok(principal)
            }
        }
    }

    /// The password step of a sign-in at the sign-in page: as [`log_in`],
    /// except that a success clears no failures (the whole sign-in's
    /// does: [`Logins::signed_in`]), and a second factor may follow.
    pub async fn check_password(
        &self,
        login: &str,
        secret: &str,
        client: Option<IpAddr>,
        now: i64,
    ) -> Result<Arc<Principal>, Denied> {
        self.check_login(login, secret, client, now, Outcome::Passed)
            .await
            .map_err(|why| self.refuse(login, why))
    }

    async fn check_login(
        &self,
        login: &str,
        secret: &str,
        client: Option<IpAddr>,
        now: i64,
        passed: Outcome,
    ) -> Result<Arc<Principal>, Reason> {
        let mut attempt = self
            .begin_attempt(self.principal_kind(), login, client, now)
            .await?;
        let principal = match self.principal_claimed(&mut attempt, login, now).await {
            Ok(p) => p,
            Err(d) => {
                self.end_attempt(attempt, Outcome::Unchecked, now).await?;
                return Err(d.into());
            }
        };
        let verified = self.verify_secret(principal.as_deref(), secret).await;
        let outcome = match verified {
            Ok(true) => passed,
            Ok(false) => Outcome::Failed,
            Err(_) => Outcome::Unchecked,
        };
        self.end_attempt(attempt, outcome, now).await?;
        let Some(principal) = principal else {
            verified?;
            return Err(Reason::UnknownPrincipal);
        };
        if !verified? {
            return Err(Reason::WrongSecret);
        }
        if principal.blocked {
            return Err(Reason::Blocked);
        }
        if !principal.active {
            return Err(Reason::Inactive);
        }
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_checks_wait_in_a_bounded_queue() {
        // Far more checks at once than may wait: the surplus is refused at
        // once, the rest run a few at a time, none is lost.
        let checks = (0..MAX_WAITING_CHECKS + 200).map(|_| {
            blocking("a", || {
                std::thread::sleep(std::time::Duration::from_millis(2))
            })
        });
        let answers = futures_util::future::join_all(checks).await;
        let refused = answers.iter().filter(|a| a.is_err()).count();
        assert!(refused >= 200 - 2, "{refused} refused");
        assert!(answers.len() - refused >= MAX_WAITING_CHECKS - 2);
    }
}
