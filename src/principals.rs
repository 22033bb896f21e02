//! Who may log in to an issuer, wherever they are kept: the config's
//! principals, the records `portero import` wrote to the store
//! (`imported`), the operator's SQL table (`sql`, the user store).

mod imported;
mod sql;

pub use imported::{ImportedPrincipal, KEYS};
pub use sql::{open, OpenError, UserStore};
