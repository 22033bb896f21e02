//! portero: a reverse-proxy authentication gateway.
//!
//! # Layout
//! Data flows one way: `config` (the model) imports nothing of the runtime
//! but the leaves its checks need (`claim_path`, `claims`, `header_name`,
//! `path`'s rules, `redirect_uri`, `rule`, which imports only leaves); the runtime modules
//! import the model, never the reverse, and no top module reaches back.
//!
//! - [`config`]: `gateway.toml` → a validated [`config::Config`]: `file` (the
//!   only serde types), `set_aside` (unknown keys and values of the wrong type
//!   named and set aside, so the rest is read), `key_paths` (the key at a
//!   byte of the file, from its syntax tree), `check` (one function per
//!   table; `parse` reads single values), `model` (plain data, a file per
//!   table), `restart` (what a reload cannot apply), `units` (durations,
//!   sizes, offsets).
//! - [`clock`]: wall-clock time, in one place, settable in tests.
//! - [`path`]: request paths normalised once, ambiguous ones refused.
//! - `target`: a request's one host, normalised path and method, or a `400`.
//! - `method_override`: `X-HTTP-Method-Override` and its kin, in every spelling.
//! - [`routes`]: (host, path, method) → route, compiled once per config.
//! - [`api_keys`]: API keys: made and kept as keyed hashes (`index`: every
//!   record in memory), checked per snapshot by their bytes (`check`).
//! - [`claims`]: a token's claims, parsed once (a name twice refused), read by name;
//!   [`claim_path`]: paths into nested claims (`a.b`, `"x.y".z`).
//! - `header_name`: names as upstreams fold them (`_` for `-`, case; cookies and
//!   query parameters as PHP and ASP.NET read them).
//! - [`auth`]: keys by `kid` (own, or from a JWKS), revocations, route policies, token validation; no I/O.
//! - [`jwk`]: a JWKS's keys made verification keys, each with its own algorithm.
//! - [`dpop`]: DPoP proofs (RFC 9449), at routes and at the token endpoint:
//!   `htu` (the URI compared as RFC 3986 normalises it), `key` (the proof's
//!   public key and its thumbprint), `nonce` (server nonces every instance
//!   takes), `replay` (each proof once, in memory).
//! - [`rule`]: route rules, a subset of CEL: parsed and type-checked when
//!   the config is read, evaluated over a token's claims and the request.
//! - `introspection`: opaque tokens read by their provider's introspection
//!   endpoint (RFC 7662), the answers kept by a keyed hash; `call` (one
//!   call), `answer` (what an answer means).
//! - [`key_loading`]: every issuer's keys read (environment, key files), generated and kept in the store, or from the JWKS registry.
//! - [`credentials`]: secret hashing and checking (argon2id, fast keyed hash).
//! - `oauth2`: portero's OAuth 2.1 authorization server under `/oauth2/NAME`:
//!   `metadata`, `authorize` with its sign-in page (`sign_in`, `page`) and
//!   sign-on session (`sso`), the token endpoint (`token`, `code`, `refresh`,
//!   `client`), OpenID Connect (`oidc`), registration, revocation and
//!   introspection (`inspect`). A `kind = "oauth2"` issuer's users and
//!   clients, or a dialect's principals.
//! - [`redirect_uri`]: what a client's redirect URI may be (a leaf `config` reads too).
//! - [`identity`]: an issuer's accounts at run time, one `Identity` per
//!   snapshot, knowing no dialect and no protocol: `check` (the secret
//!   checked against the account `principals` finds), `lockout` (budgets),
//!   `reason` (a refusal said once).
//! - `tokens`: what minting stamps and returns, refresh tokens and their families (`refresh`), random
//!   identifiers and the SHA-256 digest refresh tokens are stored under.
//! - [`dialect`]: the five legacy token-endpoint dialects, one module each
//!   (docs/dialects.md), adapters over `issuer`: their wire and nothing else;
//!   `shadow`, their answers compared with the legacy service's (`catalogue`:
//!   what each dialect answers; `compare`: the field rules).
//! - [`issuer`]: one issuer at work on one request (`IssuerContext`): its
//!   accounts' logins, minting with its keys, its store; what the dialects
//!   and the standard server both answer through.
//! - [`limits`]: client address rules, rates and requests in flight per route
//!   and key (pingora-limits; a cluster-wide rate in the store); `window` (the bucket arithmetic).
//! - `session`: browser sessions of the routes that sign people in (`login`):
//!   portero as an OpenID Connect client (`flow`, `pending`, `tokens`,
//!   `provider`), sessions sealed in the store (`seal`), logouts (`logout`)
//!   and the provider's tokens kept fresh (`refresh`).
//! - `client_addr`: the client's address, through trusted proxies.
//! - `cors`: CORS preflights answered and responses marked, per route policy.
//! - `resource_metadata`: protected routes' RFC 9728 metadata documents,
//!   made once per config; `challenges`: each route's `WWW-Authenticate`
//!   challenges (`Bearer`, `DPoP` with its algorithms, the metadata's URL).
//! - `forwarding`: what the upstream is told: stripped, injected and forwarded headers.
//! - `live`: the snapshot a reload swaps: a `LiveIssuer` per issuer, a `LiveRoute` per route,
//!   keys, upstream groups, settings; `Live::assemble` builds it for server start and reload.
//! - `jwks`: external issuers' keys, fetched and refreshed off the request path; `fetch` (one HTTP fetch).
//! - `tls_roots`: root certificates and HTTP clients for outbound TLS (a `ca_file` or the system's).
//! - `forward_auth`: the request a forward-auth call asks about, from its headers.
//! - `proxy`: one request: route → authorize → rewrite → forward → record.
//! - `proxy_protocol`: the PROXY protocol header a load balancer sends first.
//! - `respond`: the one mapping from an error to an HTTP response (`admin`: the admin API's).
//! - [`access_log`]: one line per request, formatted into the thread's own
//!   buffer and written by a background thread in large writes.
//! - `trace_context`: W3C `traceparent` and `X-Request-Id` for the upstream and the log.
//! - `span_export`: request spans posted to an OpenTelemetry collector (OTLP/HTTP) in batches.
//! - `tunnel`: upgraded connections (WebSocket) relayed both ways until they
//!   close, their token expires or is revoked; `frames` finds WebSocket frame ends.
//! - [`upstream`]: groups and health checks; `codec` (HTTP/1.1, no I/O),
//!   `body` (de-framed responses), `pool` (idle connections), `conn` (dialling),
//!   `h1` (one HTTP/1.1 exchange), `h2` (HTTP/2 and gRPC), `added` (the
//!   headers portero adds to the client's, written into the head).
//! - `connections`: what one client connection may hold: the cap, head and idle timeouts.
//! - `listener`: accepting within those limits; TLS, HTTP/1.1 and HTTP/2; graceful drain.
//! - `admin`: metrics, health, readiness, reload and revocation on the admin listener.
//! - [`echo`]: the built-in echo upstream for the demo, tests and benchmarks.
//! - [`metrics`]: every `portero_*` metric, with bounded labels.
//! - `principals`: who may log in, through one `lookup` (the config, then
//!   `imported`, the records `portero import` keeps in the store, then `sql`,
//!   the user store: `pool`, `cache`, `rows`, `rehash`); the found record's
//!   own login is the identity.
//! - [`store`]: one small trait per domain (secrets, revocations, refresh tokens,
//!   lockout, sessions, ...), each implemented by both backends: embedded (redb)
//!   or shared (Redis, with revocations pushed to every instance).
//! - [`server`]: binds the listeners, assembles the above and runs until told to stop;
//!   `signals` (SIGTERM, SIGINT, SIGHUP as drain, stop, reload).
//!
//! Modules without a link are private: nothing outside the crate needs them.
#![forbid(unsafe_code)]

pub mod access_log;
mod admin;
pub mod api_keys;
pub mod auth;
mod challenges;
pub mod claim_path;
pub mod claims;
mod client_addr;
pub mod client_cert;
pub mod clock;
pub mod config;
mod connections;
mod cors;
pub mod credentials;
pub mod dialect;
pub mod dpop;
pub mod echo;
mod executor;
mod factors;
mod forward_auth;
mod forwarding;
mod header_name;
pub mod identity;
pub mod import;
mod introspection;
pub mod issuer;
pub mod jwk;
mod jwks;
pub mod key_loading;
pub mod limits;
mod listener;
mod live;
mod method_override;
pub mod metrics;
mod oauth2;
pub mod page_words;
pub mod path;
mod principals;
mod proxy;
mod proxy_protocol;
pub mod redirect_uri;
mod resource_metadata;
mod respond;
pub mod routes;
pub mod rule;
pub mod server;
mod session;
mod span_export;
pub mod store;
mod target;
mod tls_roots;
mod tokens;
mod trace_context;
mod tunnel;
pub mod upstream;
