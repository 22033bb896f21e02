//! The embedded store's revocations, under their record key
//! (`revocation_key`), and the tokens derived from a token, under its jti.

use std::collections::HashSet;

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::db::{backend, decode, encode, Redb};
use super::Embedded;
use crate::auth::revocation::Revocation;
use crate::store::{revocation_key, RevocationLog, StoreError, MAX_DERIVED};

pub(super) const REVOCATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("revocations");
/// Tokens exchanged for a token, under its jti: (jti, exp) of each.
pub(super) const DERIVED: TableDefinition<&str, &[u8]> = TableDefinition::new("derived_tokens");

#[async_trait]
impl RevocationLog for Embedded {
    async fn add_revocations(&self, list: &[Revocation]) -> Result<(), StoreError> {
        let list = list.to_vec();
        let derived = self
            .run("add_revocations", move |db| db.add_revocations(&list))
            .await?;
        if let Some(cache) = self.cache.get() {
            for r in &derived {
                cache.apply(r);
            }
        }
        Ok(())
    }

    async fn derive_token(&self, parent: &str, child: &(String, i64)) -> Result<bool, StoreError> {
        let (parent, child) = (parent.to_string(), child.clone());
        self.run("derive_token", move |db| db.derive_token(&parent, &child))
            .await
    }

    async fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        self.run("revocations", |db| db.revocations()).await
    }
}

impl Redb {
    /// All in one transaction: a refresh token's revocations land together,
    /// with those of the tokens derived from them. Returns the latter.
    fn add_revocations(&self, list: &[Revocation]) -> Result<Vec<Revocation>, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let mut derived = Vec::new();
        {
            let mut t = tx.open_table(REVOCATIONS).map_err(backend)?;
            let links = tx.open_table(DERIVED).map_err(backend)?;
            let mut seen: HashSet<String> = HashSet::new();
            let mut next: Vec<String> = Vec::new();
            for r in list {
                t.insert(revocation_key(r).as_str(), encode(r).as_slice())
                    .map_err(backend)?;
                if let Revocation::Jti { jti, .. } = r {
                    seen.insert(jti.clone());
                    next.push(jti.clone());
                }
            }
            while let Some(parent) = next.pop() {
                let Some(v) = links.get(parent.as_str()).map_err(backend)? else {
                    continue;
                };
                let children: Vec<(String, i64)> = decode(&parent, v.value())?;
                for (jti, exp) in children {
                    if seen.len() >= MAX_DERIVED || !seen.insert(jti.clone()) {
                        continue;
                    }
                    let r = Revocation::Jti {
                        jti: jti.clone(),
                        expires_at: Some(exp),
                    };
                    t.insert(revocation_key(&r).as_str(), encode(&r).as_slice())
                        .map_err(backend)?;
                    derived.push(r);
                    next.push(jti);
                }
            }
        }
        tx.commit().map_err(backend)?;
        Ok(derived)
    }

    fn derive_token(&self, parent: &str, child: &(String, i64)) -> Result<bool, StoreError> {
        let tx = self.db.begin_write().map_err(backend)?;
        let parent_revoked = Revocation::Jti {
            jti: parent.to_string(),
            expires_at: None,
        };
        {
            let revoked = tx.open_table(REVOCATIONS).map_err(backend)?;
            if revoked
                .get(revocation_key(&parent_revoked).as_str())
                .map_err(backend)?
                .is_some()
            {
                return Ok(false);
            }
            let mut links = tx.open_table(DERIVED).map_err(backend)?;
            let mut children: Vec<(String, i64)> = match links.get(parent).map_err(backend)? {
                Some(v) => decode(parent, v.value())?,
                None => Vec::new(),
            };
            children.push(child.clone());
            links
                .insert(parent, encode(&children).as_slice())
                .map_err(backend)?;
        }
        tx.commit().map_err(backend)?;
        Ok(true)
    }

    fn revocations(&self) -> Result<Vec<Revocation>, StoreError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let t = tx.open_table(REVOCATIONS).map_err(backend)?;
        let mut out = Vec::new();
        for entry in t.iter().map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            out.push(decode(k.value(), v.value())?);
        }
        Ok(out)
    }
}

/// Drops, in `tx`, jti revocations of tokens that expired before `cutoff`
/// and the derived-token entries whose every token did.
pub(super) fn purge_revocations(tx: &WriteTransaction, cutoff: i64) -> Result<(), StoreError> {
    let mut t = tx.open_table(REVOCATIONS).map_err(backend)?;
    t.retain(|_, v| {
        !matches!(
            serde_json::from_slice::<Revocation>(v),
            Ok(Revocation::Jti { expires_at: Some(exp), .. }) if exp < cutoff
        )
    })
    .map_err(backend)?;
    // A token's derived tokens expire no later than it does: an
    // entry whose every child expired names nothing left to revoke.
    let mut t = tx.open_table(DERIVED).map_err(backend)?;
    t.retain(|_, v| {
        serde_json::from_slice::<Vec<(String, i64)>>(v).map_or(true, |children| {
            children.iter().any(|(_, exp)| *exp >= cutoff)
        })
    })
    .map_err(backend)
}
