//! `[hash_limits]`, the most a stored hash may cost to check, and a
//! principal's `secret_hash` read within them.

use toml::Spanned;

use super::super::file::FileHashLimits;
use super::super::model::{HashLimits, SecretHash};
use super::super::units::parse_size;
use super::{secret_hash, Checker};

impl Checker<'_> {
    /// `[hash_limits]`: each key defaults to what a current library writes
    /// with room to spare (docs/configuration.md).
    pub(super) fn hash_limits(&mut self, t: &FileHashLimits) -> HashLimits {
        let default = HashLimits::default();
        let memory = match &t.memory {
            None => default.memory,
            Some(v) => parse_size(v.get_ref()).unwrap_or_else(|e| {
                self.problem(v, "hash_limits.memory", e);
                default.memory
            }),
        };
        let bcrypt_cost = match &t.bcrypt_cost {
            Some(c) if *c.get_ref() > 31 => {
                self.problem(c, "hash_limits.bcrypt_cost", "bcrypt's cost is at most 31");
                default.bcrypt_cost
            }
            Some(c) => *c.get_ref(),
            None => default.bcrypt_cost,
        };
        let scrypt_log_n = match &t.scrypt_log_n {
            Some(n) if *n.get_ref() > 63 => {
                self.problem(n, "hash_limits.scrypt_log_n", "scrypt's log2 N is below 64");
                default.scrypt_log_n
            }
            Some(n) => *n.get_ref(),
            None => default.scrypt_log_n,
        };
        HashLimits {
            pbkdf2_rounds: t.pbkdf2_rounds.unwrap_or(default.pbkdf2_rounds),
            bcrypt_cost,
            memory,
            argon2_passes: t.argon2_passes.unwrap_or(default.argon2_passes),
            parallelism: t.parallelism.unwrap_or(default.parallelism),
            scrypt_log_n,
        }
    }

    /// A principal's `secret_hash`: a format portero knows, within
    /// `[hash_limits]`.
    pub(super) fn stored_hash(
        &mut self,
        written: &Spanned<String>,
        key: &str,
    ) -> Option<SecretHash> {
        let checked = secret_hash::secret_hash(written.get_ref())
            .and_then(|h| secret_hash::within_limits(&h, &self.hash_limits).map(|()| h));
        match checked {
            Ok(h) => Some(h),
            Err(e) => {
                self.problem(
                    written,
                    key,
                    format!("{e} (make one with `portero hash-secret`)"),
                );
                None
            }
        }
    }
}
