//! A protected route's demands of tokens bound to a key: `token_binding`,
//! `dpop_algs` and `dpop_nonce` (RFC 9449). Each is refused where it
//! could do nothing: on a public route, or where no token can come as
//! `DPoP` (no `bearer` or `authorization` among `token_from`).

use super::super::file::FileRoute;
use super::super::model::{Sender, TokenSource};
use super::Checker;
use crate::dpop::Algorithms;

impl Checker<'_> {
    /// The route's [`Sender`], given its token sources (`None`: a public
    /// route, where any of its keys is a problem).
    pub(super) fn sender(
        &mut self,
        index: usize,
        r: &FileRoute,
        token_from: Option<&[TokenSource]>,
    ) -> Sender {
        let key = |k: &str| format!("routes[{index}].{k}");
        let mut sender = Sender::default();
        let Some(token_from) = token_from else {
            self.unused(r, &key, "a public route takes no token");
            return sender;
        };
        sender.dpop = token_from
            .iter()
            .any(|s| matches!(s, TokenSource::Bearer | TokenSource::RawAuthorization));
        if !sender.dpop {
            self.unused(
                r,
                &key,
                "a token comes as DPoP only in the Authorization header: add \"bearer\" (or \"authorization\") to token_from",
            );
            return sender;
        }
        if let Some(binding) = &r.token_binding {
            match binding.get_ref().as_str() {
                "allowed" => {}
                // A browser session's cookie is bound to no key.
                "required" if r.login.is_some() => self.problem(
                    binding,
                    key("token_binding"),
                    "a route that signs people in takes their session cookie, which is bound to no key",
                ),
                "required" => sender.required = true,
                other => self.problem(
                    binding,
                    key("token_binding"),
                    format!("{other:?}: expected \"allowed\" or \"required\""),
                ),
            }
        }
        if let Some(algs) = &r.dpop_algs {
            match Algorithms::of(algs.get_ref().iter().map(String::as_str)) {
                Ok(_) if algs.get_ref().is_empty() => {
                    self.problem(algs, key("dpop_algs"), "no algorithm: no proof could pass")
                }
                Ok(set) => sender.algorithms = set,
                Err(name) => self.problem(
                    algs,
                    key("dpop_algs"),
                    format!(
                        "{name:?} is not an asymmetric algorithm a proof may use (one of {})",
                        Algorithms::ALL.names()
                    ),
                ),
            }
        }
        sender.nonce = r.dpop_nonce.as_ref().is_some_and(|n| *n.get_ref());
        sender
    }

    /// Each of the route's binding keys that is set, refused: `why`.
    fn unused(&mut self, r: &FileRoute, key: &dyn Fn(&str) -> String, why: &str) {
        if let Some(v) = &r.token_binding {
            self.problem(v, key("token_binding"), why);
        }
        if let Some(v) = &r.dpop_algs {
            self.problem(v, key("dpop_algs"), why);
        }
        if let Some(v) = &r.dpop_nonce {
            self.problem(v, key("dpop_nonce"), why);
        }
    }
}
