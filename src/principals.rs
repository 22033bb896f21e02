//! Who may log in to an issuer, wherever they are kept: the config's
//! principals, the records `portero import` wrote to the store
//! (`imported`), an SQL table (`sql`).

mod imported;

pub use imported::{ImportedPrincipal, KEYS};
