//! Who may log in to an issuer, wherever they are kept: the config's
//! principals, the records `portero import` wrote to the store
//! (`imported`), the operator's SQL table (`sql`, the user store); and the
//! one lookup a login asks of them (`lookup`).

mod imported;
mod lookup;
mod sql;

pub use imported::{ImportedPrincipal, KEYS};
pub use lookup::{Lookup, LookupError};
pub use sql::{open, OpenError, UserStore};
