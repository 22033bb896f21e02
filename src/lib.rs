//! portero: a reverse-proxy authentication gateway.
//!
//! # Layout
//! - [`config`]: the only serde types; `gateway.toml` → a validated [`config::Config`].
//! - [`path`]: request paths normalised once, ambiguous ones refused.
//! - [`target`]: a request's one host and normalised path, or a `400`.
//! - [`routes`]: (host, path, method) → route, compiled once per config.
//! - [`auth`]: keys by `kid`, revocations, route policies, token validation; no I/O.
//! - [`credentials`]: principals and hashed secrets (argon2id, fast keyed hash).
//! - [`issue`]: the five token-endpoint dialects, one module each.
//! - [`identity`]: what the upstream is told: stripped, injected and forwarded headers.
//! - [`upstream`]: round robin over health-checked servers.
//! - [`live`]: the snapshot a reload swaps: routes, strip rules, keys.
//! - [`proxy`]: one request through the gateway, from route lookup to the metrics it leaves.
//! - [`forward`]: one exchange with an upstream: slots, retries, timeouts, streamed body limits.
//! - [`wire`]: HTTP/1.1 as portero speaks it upstream: request heads, response heads, de-framed bodies.
//! - [`pool`]: idle upstream connections per server, reused only while quiet.
//! - [`connections`]: what one client connection may hold: the cap, head and idle timeouts.
//! - [`listener`]: the listeners: TLS, HTTP/1.1 and HTTP/2, graceful drain.
//! - [`admin`]: metrics, health, readiness and revocation on the admin listener.
//! - [`echo`]: the built-in echo upstream for the demo, tests and benchmarks.
//! - [`metrics`]: every `portero_*` metric, with bounded labels.
//! - [`store`]: keys, refresh tokens, revocations, lockout counters: embedded (redb)
//!   or shared (Redis, with revocations pushed to every instance).
//! - [`server`]: assembles all of the above from a config and runs it.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod clock;
pub mod config;
pub mod connections;
pub mod credentials;
pub mod echo;
pub mod identity;
pub mod issue;
pub mod listener;
pub mod live;
pub mod metrics;
pub mod path;
pub mod proxy;
pub mod respond;
pub mod routes;
pub mod server;
pub mod store;
pub mod target;
pub mod upstream;
