//! The key names under the prefix, as the layout in `redis.rs` lists them:
//! in a Redis Cluster, keys a script or transaction touches together share
//! a hash tag.

use super::Redis;

impl Redis {
    pub(super) fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    /// A key of a kind written together (revocations, lockout counters):
    /// in a cluster, every one of the kind in one slot.
    pub(super) fn grouped(&self, kind: &str, id: &str) -> String {
        if self.cluster {
            format!("{}{{{kind}}}:{id}", self.prefix)
        } else {
            self.key(kind, id)
        }
    }

    /// The tokens derived from the token `jti`: in a cluster, in the
    /// revocations' slot (but outside the pattern they are read back by).
    pub(super) fn derived_key(&self, jti: &str) -> String {
        if self.cluster {
            format!("{}{{rev}}derived:{jti}", self.prefix)
        } else {
            self.key("derived", jti)
        }
    }

    /// A refresh token's record or lineage key: in a cluster, both in the
    /// token's slot.
    pub(super) fn refresh_key(&self, kind: &str, hash: &str) -> String {
        if self.cluster {
            format!("{}{kind}:{{{hash}}}", self.prefix)
        } else {
            self.key(kind, hash)
        }
    }
}
