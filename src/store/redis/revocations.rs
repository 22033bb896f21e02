//! Revocations in Redis (`P rev:<kind>\0<id>`, written and announced by
//! `channel`), and the tokens derived from a token (`P derived:<jti>`),
//! revoked with it.

use std::collections::HashSet;

use async_trait::async_trait;

use super::{decode, now_secs, Redis};
use crate::auth::revocation::Revocation;
use crate::store::{revocation_key, RevocationLog, StoreError, MAX_DERIVED};

#[async_trait]
impl RevocationLog for Redis {
    async fn add_revocations(&self, list: &[Revocation]) -> Result<(), StoreError> {
        self.write_revocations(list).await?;
        // Written first, read second (`derive_token` the other way round):
        // a token derived meanwhile is either found here or refused there.
        let mut seen: HashSet<String> = list
            .iter()
            .filter_map(|r| match r {
                Revocation::Jti { jti, .. } => Some(jti.clone()),
                _ => None,
            })
            .collect();
        let mut parents: Vec<String> = seen.iter().cloned().collect();
        while !parents.is_empty() {
            let mut pipe = redis::pipe();
            for jti in &parents {
                pipe.cmd("HGETALL").arg(self.derived_key(jti));
            }
            let mut conn = self.conn();
            let found: Vec<Vec<(String, i64)>> = self
                .run("add_revocations", pipe.query_async(&mut conn))
                .await?;
            let derived: Vec<Revocation> = found
                .into_iter()
                .flatten()
                .filter(|(jti, _)| seen.len() < MAX_DERIVED && seen.insert(jti.clone()))
                .map(|(jti, exp)| Revocation::Jti {
                    jti,
                    expires_at: Some(exp),
                })
                .collect();
            if derived.is_empty() {
                break;
            }
            self.write_revocations(&derived).await?;
            parents = derived
                .into_iter()
                .filter_map(|r| match r {
                    Revocation::Jti { jti, .. } => Some(jti),
                    _ => None,
                })
                .collect();
        }
        Ok(())
    }

    async fn derive_token(&self, parent: &str, child: &(String, i64)) -> Result<bool, StoreError> {
        let parent_revoked = Revocation::Jti {
            jti: parent.to_string(),
            expires_at: None,
        };
        let keep = (child.1 + self.ttl_margin - now_secs() as i64).max(1);
        let mut invocation = self.derive_token.prepare_invoke();
        invocation
            .key(self.grouped("rev", &revocation_key(&parent_revoked)))
            .key(self.derived_key(parent))
            .arg(&child.0)
            .arg(child.1)
            .arg(keep);
        let mut conn = self.conn();
        let derived: i64 = self
            .run("derive_token", invocation.invoke_async(&mut conn))
            .await?;
        Ok(derived == 1)
    }

    async fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.scan(&self.grouped("rev", "*"))
            .await?
            .iter()
            .map(|(k, v)| decode(k, v))
            .collect()
    }
}
