//! A login's credential check: the principal looked up (config, then
//! imported principals, then the issuer's user store), the secret verified
//! (slow hashes off the proxy's threads, in a bounded queue), and the
//! lockout around it, reserved before and recorded after.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::{refresh_hash, Issuing};
use crate::config::Principal;
use crate::credentials::dummy;
use crate::import::ImportedPrincipal;
use crate::store::{Reservation, Store, StoreError};

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

/// How long a login waits for other checks of the same principal (or
/// address) to end when they could use up its budget, and how often it looks.
const BUSY_WAIT: Duration = Duration::from_secs(2);
const BUSY_RETRY: Duration = Duration::from_millis(5);

/// A credential check reserved by [`Issuing::begin_attempt`]. Its place is
/// given back when it is dropped, however the request ended: a client that
/// hangs up mid-check must not keep a principal's budget taken.
#[must_use = "end it with Issuing::end_attempt"]
pub struct Attempt {
    user: String,
    ip: Option<String>,
    /// Names this reservation in the store, so its release is exact.
    id: String,
    /// The principal's failures when the check was reserved.
    failures: u32,
    store: Arc<dyn Store>,
    /// Given back by `end_attempt`; otherwise when dropped.
    released: bool,
}

impl Attempt {
    fn keys(&self) -> Vec<&str> {
        let mut keys = vec![self.user.as_str()];
        keys.extend(self.ip.as_deref());
        keys
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
        let mut keys = vec![std::mem::take(&mut self.user)];
        keys.extend(self.ip.take());
        let id = std::mem::take(&mut self.id);
        runtime.spawn(release_until_done(self.store.clone(), keys, id));
    }
}

/// Releases a check's place, retrying while the store fails (an outage, a
/// failover) for up to [`RELEASE_RETRIES`] tries: a place never given
/// back would refuse the principal's logins as busy until the lockout
/// cool-down lapses.
async fn release_until_done(store: Arc<dyn Store>, keys: Vec<String>, id: String) {
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

/// About half a minute of tries.
const RELEASE_RETRIES: usize = 20;

/// How a reserved credential check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Failed,
    Succeeded,
    /// Answered before the secret was checked (an inactive client, a
    /// missing company), or the check could not run.
    Unchecked,
}

impl From<StoreError> for Denied {
    fn from(e: StoreError) -> Denied {
        tracing::warn!(error = %e, "token endpoint: store unavailable");
        Denied::Unavailable
    }
}

/// Slow hash checks (argon2, bcrypt, PBKDF2, scrypt) run on blocking
/// threads a few at a time, half the cores: a login flood waits its turn
/// rather than taking every core from the proxy, and past
/// [`MAX_WAITING_CHECKS`] waiting a login is refused as unavailable.
struct SlowChecks {
    running: tokio::sync::Semaphore,
    waiting: AtomicUsize,
    /// Set while logins are refused, so a flood logs once.
    refusing: AtomicBool,
}

const MAX_WAITING_CHECKS: usize = 256;

fn slow_checks() -> &'static SlowChecks {
    static CHECKS: OnceLock<SlowChecks> = OnceLock::new();
    CHECKS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        SlowChecks {
            running: tokio::sync::Semaphore::new(cores.div_ceil(2)),
            waiting: AtomicUsize::new(0),
            refusing: AtomicBool::new(false),
        }
    })
}

/// One place in the queue of slow checks, given back however the wait ends.
struct Waiting(&'static AtomicUsize);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Denied> {
    let checks = slow_checks();
    let waiting = Waiting(&checks.waiting);
    if checks.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING_CHECKS {
        if !checks.refusing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                waiting = MAX_WAITING_CHECKS,
                "slow credential checks queued to the limit: logins refused as unavailable"
            );
        }
        return Err(Denied::Unavailable);
    }
    checks.refusing.store(false, Ordering::Relaxed);
    let turn = checks
        .running
        .acquire()
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

impl Issuing<'_> {
    /// The lockout keys of a login and a client address. The login goes in
    /// hashed: any string a client sends makes a record of the same size.
    fn lock_keys(&self, login: &str, client: Option<IpAddr>) -> (String, Option<String>) {
        let name = &self.issuer.name;
        (
            format!("{name}\0user\0{}", refresh_hash(login)),
            client.map(|ip| format!("{name}\0ip\0{ip}")),
        )
    }

    /// Reserves a credential check for `login` from `client`: refused
    /// (`Locked`) while either is cooling down; while its failures plus the
    /// checks already in flight reach its limit, it waits for those to end
    /// (up to `BUSY_WAIT`, then `Locked`), so no burst of concurrent
    /// guesses gets more checks than `max_failures` allows, and concurrent
    /// good logins are served one after another rather than refused.
    /// Every reservation ends with [`Issuing::end_attempt`].
    pub async fn begin_attempt(
        &self,
        login: &str,
        client: Option<IpAddr>,
        now: i64,
    ) -> Result<Attempt, Denied> {
        let (user, ip) = self.lock_keys(login, client);
        let e = self.endpoint;
        let mut limits = vec![(user.as_str(), e.max_failures)];
        if let Some(ip) = &ip {
            limits.push((ip.as_str(), e.ip_max_failures));
        }
        let cooldown = e.lockout.as_secs() as i64;
        let give_up = tokio::time::Instant::now() + BUSY_WAIT;
        let id = format!("{:016x}", rand::random::<u64>());
        loop {
            let reserved = match self
                .store
                .reserve_attempt(&limits, cooldown, now, &id)
                .await
            {
                Ok(reserved) => reserved,
                Err(e) => {
                    // The reservation may have been made before the error
                    // (its answer lost in a failover, or made but not
                    // confirmed by a replica): give it back, or it would
                    // hold until the cool-down lapses. (A release of one
                    // never made changes nothing.)
                    let keys = limits.iter().map(|(k, _)| k.to_string()).collect();
                    tokio::spawn(release_until_done(self.store.clone(), keys, id));
                    return Err(e.into());
                }
            };
            match reserved {
                Reservation::Granted(failures) => {
                    return Ok(Attempt {
                        user: user.clone(),
                        ip: ip.clone(),
                        id,
                        failures,
                        store: self.store.clone(),
                        released: false,
                    })
                }
                Reservation::Locked => return Err(Denied::Locked),
                Reservation::Busy if tokio::time::Instant::now() >= give_up => {
                    return Err(Denied::Locked)
                }
                Reservation::Busy => tokio::time::sleep(BUSY_RETRY).await,
            }
        }
    }

    /// Ends a reserved check: a failure is counted against the principal
    /// and the client address (locking them at their limits), a success
    /// clears the principal's failures, `Outcome::Unchecked` counts nothing.
    /// Its place is given back afterwards (the failure is counted first).
    pub async fn end_attempt(
        &self,
        mut attempt: Attempt,
        outcome: Outcome,
        now: i64,
    ) -> Result<(), Denied> {
        let recorded = match outcome {
            Outcome::Failed => self.record_failure(&attempt, now).await,
            Outcome::Succeeded if attempt.failures > 0 => self
                .store
                .clear_failures(&attempt.user)
                .await
                .map_err(Denied::from),
            Outcome::Succeeded | Outcome::Unchecked => Ok(()),
        };
        // Marked first: were this cancelled mid-way, a second release from
        // `Drop` could give back another check's place.
        attempt.released = true;
        let released = self
            .store
            .release_attempts(&attempt.keys(), &attempt.id)
            .await;
        if released.is_err() {
            let keys = attempt.keys().into_iter().map(str::to_string).collect();
            let id = attempt.id.clone();
            tokio::spawn(release_until_done(self.store.clone(), keys, id));
        }
        recorded?;
        released.map_err(Denied::from)
    }

    /// The principal `login` names: from the config, else those `portero
    /// import` wrote to the store, else the issuer's user store.
    pub async fn principal(&self, login: &str) -> Result<Option<Arc<Principal>>, Denied> {
        if let Some(p) = self.endpoint.principals.get(login) {
            return Ok(Some(p.clone()));
        }
        if let Some(record) = self.store.principal(&self.issuer.name, login).await? {
            return Ok(
                match ImportedPrincipal::decode(&record, self.endpoint.dialect) {
                    Ok(p) => Some(Arc::new(p)),
                    Err(why) => {
                        tracing::error!(
                            issuer = %self.issuer.name,
                            login,
                            "an imported principal refused: {why}"
                        );
                        None
                    }
                },
            );
        }
        match self.users {
            None => Ok(None),
            Some(users) => users.find(login).await.map_err(|_| Denied::Unavailable),
        }
    }

    /// Checks `secret` against the principal's hash, or a dummy when there
    /// is no principal, so both take the same time: of the fast kind where
    /// every secret is one, else argon2id (a user store's rows may hold
    /// any format; none is slower).
    pub async fn verify_secret(
        &self,
        principal: Option<&Principal>,
        secret: &str,
    ) -> Result<bool, Denied> {
        let fast_dummy = self.endpoint.dialect.fast_secrets() && self.users.is_none();
        let hash = match principal {
            Some(p) => p.secret.clone(),
            None => dummy(fast_dummy).clone(),
        };
        // A fast hash takes about a microsecond: checked in place. Argon2 takes
        // tens of milliseconds: off the proxy's threads.
        let matches = if hash.is_fast() {
            hash.verify(secret)
        } else {
            let secret = secret.to_string();
            blocking(move || hash.verify(&secret)).await?
        };
        if let (true, Some(p), Some(users)) = (matches, principal, self.users) {
            if users.wants_rehash(p) {
                users.rehash_later(p, secret);
            }
        }
        Ok(matches && principal.is_some())
    }

    /// Counts a failed login against the principal and the client
    /// address, in one write.
    async fn record_failure(&self, attempt: &Attempt, now: i64) -> Result<(), Denied> {
        let e = self.endpoint;
        let mut limits = vec![(attempt.user.as_str(), e.max_failures)];
        if let Some(ip) = &attempt.ip {
            limits.push((ip.as_str(), e.ip_max_failures));
        }
        let cooldown = e.lockout.as_secs() as i64;
        if self.store.record_failures(&limits, cooldown, now).await? {
            self.metrics
                .lockouts
                .with_label_values(&[&self.issuer.name])
                .inc();
        }
        Ok(())
    }

    /// The whole login of the password dialects: lockout, secret, blocked flag.
    pub async fn authenticate(
        &self,
        login: &str,
        secret: &str,
        client: Option<IpAddr>,
        now: i64,
    ) -> Result<Arc<Principal>, Denied> {
        let attempt = self.begin_attempt(login, client, now).await?;
        let principal = match self.principal(login).await {
            Ok(p) => p,
            Err(d) => {
                self.end_attempt(attempt, Outcome::Unchecked, now).await?;
                return Err(d);
            }
        };
        let verified = self.verify_secret(principal.as_deref(), secret).await;
        let outcome = match verified {
            Ok(true) => Outcome::Succeeded,
            Ok(false) => Outcome::Failed,
            Err(_) => Outcome::Unchecked,
        };
        self.end_attempt(attempt, outcome, now).await?;
        if !verified? {
            return Err(Denied::BadCredentials);
        }
        let principal = principal.expect("verified, so present");
        if principal.blocked {
            return Err(Denied::Blocked);
        }
        if !principal.active {
            return Err(Denied::BadCredentials);
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
        let checks = (0..MAX_WAITING_CHECKS + 200)
            .map(|_| blocking(|| std::thread::sleep(std::time::Duration::from_millis(2))));
        let answers = futures_util::future::join_all(checks).await;
        let refused = answers.iter().filter(|a| a.is_err()).count();
        assert!(refused >= 200 - 2, "{refused} refused");
        assert!(answers.len() - refused >= MAX_WAITING_CHECKS - 2);
    }
}
