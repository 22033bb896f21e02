//! Consents in Redis: `P consent:<issuer>\0<login>`, a hash of client id
//! -> record, expiring with the latest of them (each record's own
//! `expires_at` is checked on reading).

use async_trait::async_trait;

use super::{decode, encode, Redis};
use crate::clock::unix_now;
use crate::store::{Consent, Consents, StoreError};

impl Redis {
    fn consents_key(&self, issuer: &str, login: &str) -> String {
        self.key("consent", &format!("{issuer}\0{login}"))
    }
}

#[async_trait]
impl Consents for Redis {
    async fn put_consent(&self, consent: &Consent) -> Result<(), StoreError> {
        let key = self.consents_key(&consent.issuer, &consent.login);
        let mut conn = self.conn();
        // The hash lasts as long as its longest-lived record: an expiry
        // set on a new hash (NX), pushed later by a later one (GT).
        let _: () = self
            .run(
                "put_consent",
                redis::pipe()
                    .atomic()
                    .hset(&key, &consent.client_id, encode(consent))
                    .ignore()
                    .cmd("EXPIREAT")
                    .arg(&key)
                    .arg(consent.expires_at)
                    .arg("NX")
                    .ignore()
                    .cmd("EXPIREAT")
                    .arg(&key)
                    .arg(consent.expires_at)
                    .arg("GT")
                    .ignore()
                    .query_async(&mut conn),
            )
            .await?;
        Ok(())
    }

    async fn consents(&self, issuer: &str, login: &str) -> Result<Vec<Consent>, StoreError> {
        let key = self.consents_key(issuer, login);
        let mut conn = self.conn();
        let held: Vec<(String, String)> = self
            .run(
                "consents",
                redis::cmd("HGETALL").arg(&key).query_async(&mut conn),
            )
            .await?;
        let now = unix_now();
        let mut out = Vec::new();
        for (_, record) in held {
            let consent: Consent = decode(&key, record.as_bytes())?;
            if consent.live(now) {
                out.push(consent);
            }
        }
        Ok(out)
    }

    async fn delete_consents(
        &self,
        issuer: &str,
        login: &str,
        client_id: Option<&str>,
    ) -> Result<usize, StoreError> {
        let live = self.consents(issuer, login).await?;
        let key = self.consents_key(issuer, login);
        let mut conn = self.conn();
        match client_id {
            Some(id) => {
                let _: i64 = self
                    .run(
                        "delete_consents",
                        redis::cmd("HDEL").arg(&key).arg(id).query_async(&mut conn),
                    )
                    .await?;
                Ok(live.iter().filter(|c| c.client_id == id).count())
            }
            None => {
                let _: i64 = self
                    .run(
                        "delete_consents",
                        redis::cmd("DEL").arg(&key).query_async(&mut conn),
                    )
                    .await?;
                Ok(live.len())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::consent::checks;
    use crate::store::redis::oauth::tests::{store, tidy};

    #[tokio::test]
    async fn consents_are_kept_per_user_and_client_and_forgotten() {
        let Some(s) = store().await else { return };
        checks::consents_are_kept_per_user_and_client_and_forgotten(&s).await;
        tidy(&s).await;
    }
}
