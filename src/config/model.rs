//! The validated configuration: plain data that the rest of portero reads.
//! It is never deserialized (the file layer is `file.rs`) and imports nothing
//! of the runtime; behaviour on these types lives with the runtime modules
//! (token extraction and policy checks in `auth::policy`, secret checks in
//! `credentials`). One file per table, like `check/`.

mod client;
mod issuer;
mod principal;
mod route;
mod server;
mod session;
mod sign_in;
mod upstream;

use std::path::PathBuf;

pub use client::*;
pub use issuer::*;
pub use principal::*;
pub use route::*;
pub use server::*;
pub use session::*;
pub use sign_in::*;
pub use upstream::*;

#[derive(Debug, Clone)]
pub struct Config {
    pub source: PathBuf,
    pub server: ServerSettings,
    pub listeners: Vec<Listener>,
    pub admin: AdminSettings,
    pub store: StoreSettings,
    pub auth: AuthSettings,
    pub upstreams: Vec<Upstream>,
    pub dns: DnsSettings,
    pub issuers: Vec<Issuer>,
    pub routes: Vec<Route>,
    /// `[tracing]`: where request spans go, if anywhere.
    pub span_export: Option<SpanExport>,
    /// `[sessions]`, when a route signs people in (`login`).
    pub sessions: Option<Sessions>,
}
