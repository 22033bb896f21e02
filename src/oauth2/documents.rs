//! Client ID metadata documents (draft-ietf-oauth-client-id-metadata-
//! document, as MCP 2025-11-25 asks): with `client_metadata_documents`, a
//! `client_id` that is an https URL with a path names the client's
//! metadata, fetched from there. The URL must be written as a parser
//! writes it back (no dot segments, default port, query, fragment or
//! credentials); the fetch goes only to public addresses (the name is
//! resolved here and checked, and the connection made to the addresses
//! checked, so a second answer cannot point it elsewhere) unless the host
//! is one of `client_metadata_private_hosts`; no redirects, 5 s, 16 KiB.
//! The document must name the URL as its `client_id`, be a public client
//! (`none`, no secret), name no member twice and describe itself as
//! registration's clients do (its duties too: DPoP, pushed requests).
//! Documents are kept as their `Cache-Control` says, between a minute
//! and a day, a refused one for a minute, the 10,000 most recently used
//! per issuer; each issuer fetches at most 16 at a time, and at most two
//! for one address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::registration::{self, Metadata};
use super::{Endpoints, Error};
use crate::config::{MetadataDocuments, Principal};
use crate::jwks::{get, FetchError};

const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_DOCUMENT: usize = 16 * 1024;
const DEFAULT_TTL: Duration = Duration::from_secs(300);
const MIN_TTL: Duration = Duration::from_secs(60);
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// A document refused (unreachable, invalid) is not fetched again sooner.
const REFUSED_TTL: Duration = MIN_TTL;
const FETCHES_PER_ISSUER: usize = 16;
const FETCHES_PER_ADDRESS: usize = 2;
/// Documents an issuer keeps; past it, the least recently used go first.
const MAX_KEPT: usize = 10_000;

/// Whether `id` is to be read as the URL of a metadata document.
pub fn names_a_document(id: &str) -> bool {
    id.starts_with("https://")
}

/// The client the document at `id` describes, fetched or kept; `None`
/// when the issuer takes no documents or this one is refused (the WARN
/// line says why), as for an unknown client. `from`: the address whose
/// request names it, which may have only so many fetches in flight.
pub async fn client(
    ctx: &Endpoints<'_>,
    id: &str,
    from: Option<IpAddr>,
) -> Result<Option<Arc<Principal>>, Error> {
    let Some(settings) = &ctx.settings.metadata_documents else {
        return Ok(None);
    };
    if !names_a_document(id) {
        return Ok(None);
    }
    let issuer = ctx.issuer.config.name.as_str();
    // A URL refused unread costs nothing, and is not kept.
    let url = match document_url(id) {
        Ok(url) => url,
        Err(why) => {
            refused(issuer, id, &why);
            return Ok(None);
        }
    };
    let fetcher = fetcher(issuer, settings);
    if let Some(kept) = fetcher.kept.get(id) {
        return Ok(kept.client);
    }
    let _turn = Turn::take(issuer, from).ok_or_else(Error::unavailable)?;
    let _permit = tokio::time::timeout(TIMEOUT, fetcher.permits.acquire())
        .await
        .map_err(|_| Error::unavailable())?
        .map_err(|_| Error::unavailable())?;
    // Fetched by another request while this one waited.
    if let Some(kept) = fetcher.kept.get(id) {
        return Ok(kept.client);
    }
    let (client, ttl) = match read(ctx, &fetcher, &url).await {
        Ok((client, ttl)) => (Some(Arc::new(client)), ttl),
        Err(why) => {
            refused(issuer, id, &why);
            (None, REFUSED_TTL)
        }
    };
    fetcher.kept.insert(
        id.to_string(),
        Kept {
            client: client.clone(),
            until: Instant::now() + ttl,
        },
    );
    Ok(client)
}

fn refused(issuer: &str, id: &str, why: &str) {
    tracing::warn!(target: "portero::oauth2", issuer = %issuer, client_id = ?id, error = %why, "client metadata document refused");
}

/// A fetch's outcome, kept until `until`: a client, or a refusal.
#[derive(Clone)]
struct Kept {
    client: Option<Arc<Principal>>,
    until: Instant,
}

/// An issuer's kept documents: the most recently used, by URL, each until
/// it lapses (a lapsed one reads as absent).
struct KeptDocuments(quick_cache::sync::Cache<String, Kept>);

impl KeptDocuments {
    fn get(&self, id: &str) -> Option<Kept> {
        self.0.get(id).filter(|k| Instant::now() < k.until)
    }

    fn insert(&self, id: String, kept: Kept) {
        self.0.insert(id, kept);
    }
}

/// A fetch in flight for one address at one issuer: at most
/// `FETCHES_PER_ADDRESS` at a time, so one client's slow documents hold
/// few of the issuer's turns.
struct Turn(String);

fn turns() -> &'static Mutex<HashMap<String, usize>> {
    static TURNS: OnceLock<Mutex<HashMap<String, usize>>> = OnceLock::new();
    TURNS.get_or_init(Default::default)
}

impl Turn {
    fn take(issuer: &str, from: Option<IpAddr>) -> Option<Turn> {
        let key = format!(
            "{issuer}\n{}",
            from.map(|ip| ip.to_string()).unwrap_or_default()
        );
        let mut map = turns().lock().expect("not poisoned");
        let taken = map.entry(key.clone()).or_default();
        if *taken >= FETCHES_PER_ADDRESS {
            return None;
        }
        *taken += 1;
        Some(Turn(key))
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut map = turns().lock().expect("not poisoned");
        if let Some(taken) = map.get_mut(&self.0) {
            *taken -= 1;
            if *taken == 0 {
                map.remove(&self.0);
            }
        }
    }
}

/// One issuer's HTTP client (its roots, the address guard) and its
/// fetches in flight.
struct Fetcher {
    settings: MetadataDocuments,
    http: Result<reqwest::Client, String>,
    permits: Semaphore,
    kept: KeptDocuments,
}

/// The issuer's fetcher, made again when its settings change.
fn fetcher(issuer: &str, settings: &MetadataDocuments) -> Arc<Fetcher> {
    static FETCHERS: OnceLock<Mutex<HashMap<String, Arc<Fetcher>>>> = OnceLock::new();
    let mut map = FETCHERS
        .get_or_init(Default::default)
        .lock()
        .expect("not poisoned");
    if let Some(f) = map.get(issuer).filter(|f| f.settings == *settings) {
        return f.clone();
    }
    let made = Arc::new(Fetcher {
        settings: settings.clone(),
        http: http_client(settings),
        permits: Semaphore::new(FETCHES_PER_ISSUER),
        kept: KeptDocuments(quick_cache::sync::Cache::new(MAX_KEPT)),
    });
    map.insert(issuer.to_string(), made.clone());
    made
}

fn http_client(settings: &MetadataDocuments) -> Result<reqwest::Client, String> {
    let mut roots =
        crate::tls_roots::roots(None).unwrap_or_else(|_| rustls::RootCertStore::empty());
    if let Some(path) = &settings.ca_file {
        for cert in crate::config::pem_certificates(path)? {
            roots.add(cert).map_err(|e| e.to_string())?;
        }
    }
    let tls = crate::tls_roots::client_builder(roots)
        .map_err(|e| e.to_string())?
        .with_no_client_auth();
    let guard = Guard {
        private_hosts: settings.private_hosts.clone(),
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        // Straight to the addresses checked, never through a proxy.
        .no_proxy()
        .dns_resolver(Arc::new(guard))
        .user_agent(concat!("portero/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}

/// Resolves a document's host for the connection, and refuses a name any
/// of whose addresses is not public (unless the host is a private one):
/// what is checked is what is connected to.
struct Guard {
    private_hosts: Vec<String>,
}

impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let private_ok = self.private_hosts.contains(&host);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !private_ok {
                if let Some(a) = addrs.iter().find(|a| !is_public(a.ip())) {
                    let refused = format!("{host} resolves to {}, not a public address", a.ip());
                    return Err(refused.into());
                }
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether `ip` is a public unicast address: not loopback, private,
/// link-local (where cloud metadata services answer), shared, reserved,
/// documentation, multicast or unspecified; an IPv6 address that carries
/// an IPv4 one (mapped, NAT64, 6to4) is judged by that one.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            // IPv4-translated (SIIT, ::ffff:0:a.b.c.d).
            if s[..6] == [0, 0, 0, 0, 0xffff, 0] {
                return false;
            }
            let embedded = |hi: u16, lo: u16| {
                IpAddr::V4(std::net::Ipv4Addr::new(
                    (hi >> 8) as u8,
                    hi as u8,
                    (lo >> 8) as u8,
                    lo as u8,
                ))
            };
            match s[0] {
                // NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
                0x64 if s[1] == 0xff9b => is_public(embedded(s[6], s[7])),
                0x2002 => is_public(embedded(s[1], s[2])),
                // Teredo and documentation.
                0x2001 if s[1] == 0 || s[1] == 0xdb8 => false,
                first => {
                    !(v6.is_unspecified()
                        || v6.is_loopback()
                        || v6.is_multicast()
                        || (first & 0xfe00) == 0xfc00
                        || (first & 0xffc0) == 0xfe80
                        || (first & 0xffc0) == 0xfec0
                        || s[..6] == [0; 6])
                }
            }
        }
    }
}

/// The client the document at `id` describes, and how long to keep it.
async fn read(
    ctx: &Endpoints<'_>,
    fetcher: &Fetcher,
    url: &url::Url,
) -> Result<(Principal, Duration), String> {
    let id = url.as_str();
    if let Some(ip) = literal_ip(url) {
        let private_ok = fetcher
            .settings
            .private_hosts
            .iter()
            .any(|h| url.host_str() == Some(h));
        if !private_ok && !is_public(ip) {
            return Err(format!("{ip} is not a public address"));
        }
    }
    let http = fetcher.http.as_ref().map_err(Clone::clone)?;
    let (body, max_age) = fetch(http, id).await?;
    let document: Value = serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
    let object = document.as_object().ok_or("not a JSON object")?;
    if registration::names_a_member_twice(&body) {
        return Err("a member is named twice".into());
    }
    let client = described(ctx, id, object)?;
    let ttl = max_age.unwrap_or(DEFAULT_TTL).clamp(MIN_TTL, MAX_TTL);
    Ok((client, ttl))
}

fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        url::Host::Domain(_) => None,
    }
}

/// The URL a client id must be: https with a path, nothing a second
/// spelling could hide behind (it is the client's identity).
fn document_url(id: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(id).map_err(|e| format!("not a URL: {e}"))?;
    let problem = if url.scheme() != "https" {
        Some("not https")
    } else if url.as_str() != id {
        Some("not written as a URL parser writes it back (dot segments, case, default port)")
    } else if !url.username().is_empty() || url.password().is_some() {
        Some("credentials in the URL")
    } else if url.query().is_some() || url.fragment().is_some() {
        Some("a query or fragment")
    } else if url.path() == "/" {
        Some("no path")
    } else {
        None
    };
    match problem {
        Some(p) => Err(p.to_string()),
        None => Ok(url),
    }
}

/// A `200` of at most `MAX_DOCUMENT` bytes, and its `max-age`; a
/// redirect is refused, never followed.
async fn fetch(http: &reqwest::Client, url: &str) -> Result<(Vec<u8>, Option<Duration>), String> {
    get(http, url, MAX_DOCUMENT).await.map_err(|e| match e {
        FetchError::BadStatus { status, .. } if (300..400).contains(&status) => {
            format!("HTTP {status}: redirects are not followed")
        }
        e => e.to_string(),
    })
}

/// The client a document describes: its own URL as `client_id`, public,
/// and what registration would take.
fn described(ctx: &Endpoints<'_>, id: &str, object: &Metadata) -> Result<Principal, String> {
    if object.get("client_id").and_then(Value::as_str) != Some(id) {
        return Err("its client_id is not the URL it was fetched from".into());
    }
    for secret in ["client_secret", "client_secret_expires_at"] {
        if object.contains_key(secret) {
            return Err(format!("{secret}: a document's client has no secret"));
        }
    }
    match object.get("token_endpoint_auth_method") {
        None => {}
        Some(Value::String(m)) if m == "none" => {}
        Some(_) => return Err("token_endpoint_auth_method: none only".into()),
    }
    let why = |e: Error| e.description;
    let redirect_uris = registration::redirect_uris(object).map_err(why)?;
    let grant_types = registration::grant_types(object).map_err(why)?;
    let scope = registration::scope(ctx, object, &grant_types).map_err(why)?;
    let client_name = registration::client_name(object).map_err(why)?;
    let mut client = registration::principal(crate::store::RegisteredClient {
        issuer: ctx.issuer.config.name.clone(),
        client_id: id.to_string(),
        client_name,
        redirect_uris,
        grant_types,
        scope,
        created: 0,
        last_used: 0,
        expires_at: 0,
        registered_from: None,
        dpop_bound_access_tokens: registration::flag(object, "dpop_bound_access_tokens")
            .map_err(why)?,
        require_pushed_authorization_requests: registration::flag(
            object,
            "require_pushed_authorization_requests",
        )
        .map_err(why)?,
    });
    client.client.registered = false;
    client.client.metadata_document = true;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_are_public() {
        let public = |s: &str| is_public(s.parse().unwrap());
        for ok in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(public(ok), "{ok}");
        }
        for not in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:db8::1",
            "::127.0.0.1",
            "::ffff:0:7f00:1",
        ] {
            assert!(!public(not), "{not}");
        }
    }

    #[test]
    fn a_client_id_url_has_one_spelling() {
        assert!(document_url("https://app.example/client.json").is_ok());
        assert!(document_url("https://app.example:8443/c").is_ok());
        for bad in [
            "http://app.example/client.json",
            "https://app.example/",
            "https://app.example",
            "https://APP.example/c",
            "https://app.example:443/c",
            "https://app.example/a/../c",
            "https://app.example/./c",
            "https://user:pw@app.example/c",
            "https://app.example/c?x=1",
            "https://app.example/c#x",
        ] {
            assert!(document_url(bad).is_err(), "{bad}");
        }
    }
}
