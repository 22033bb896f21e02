//! A row's legacy hash rewritten as argon2id once its login passes
//! (`rehash.update`), and the rows still waiting for it counted
//! (`rehash.legacy_count`).

use std::sync::Arc;
use std::time::Duration;

use super::UserStore;
use crate::config::Principal;

impl UserStore {
    /// Whether a login that `p` just passed should rewrite its hash.
    pub fn wants_rehash(&self, p: &Principal) -> bool {
        self.config.rehash_update.is_some() && p.stored_hash.is_some() && !p.secret.is_current()
    }

    /// Writes an argon2id hash of `secret` over the row's `p.stored_hash`,
    /// in the background: a compare-and-swap, so a password changed
    /// meanwhile is never overwritten, and a failed write never fails the
    /// login it follows.
    pub fn rehash_later(self: &Arc<Self>, p: &Principal, secret: &str) {
        let (Some(update), Some(stored)) = (&self.config.rehash_update, &p.stored_hash) else {
            return;
        };
        let (store, update, stored) = (self.clone(), update.clone(), stored.clone());
        let (login, secret) = (p.login.clone(), secret.to_string());
        tokio::spawn(async move {
            let format = crate::config::secret_hash(&stored)
                .map(|h| h.format())
                .unwrap_or("unknown");
            let Ok(new) =
                tokio::task::spawn_blocking(move || crate::credentials::hash_password(&secret))
                    .await
            else {
                return;
            };
            let mut args = store.login_args(&login);
            args.insert(0, new);
            args.push(stored);
            let written = store.pool.execute(&update, args).await;
            store.cache.forget(&login);
            match written {
                Ok(1) => {
                    tracing::info!(format, "user store: a {format} hash rewritten as argon2id")
                }
                Ok(_) => tracing::info!(
                    format,
                    "user store: not rehashed, the row changed since it was read"
                ),
                Err(e) => tracing::warn!(error = %e, "user store: rehash not written"),
            }
        });
    }

    /// Sets `gauge` to the rows whose hash is not argon2id yet, now and
    /// once a minute, while the store is in use.
    pub fn count_legacy_hashes(self: &Arc<Self>, gauge: prometheus::IntGauge) {
        let Some(count) = self.config.legacy_count.clone() else {
            return;
        };
        let store = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                let Some(store) = store.upgrade() else { return };
                match store.pool.count(&count).await {
                    Ok(n) => gauge.set(n),
                    Err(e) => tracing::warn!(error = %e, "user store: legacy_count failed"),
                }
            }
        });
    }
}
