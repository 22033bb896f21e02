//! The connections to Redis: to the master `url` names, to the one the
//! sentinels name now (asked again after a failure, so a failover is
//! followed within seconds), or to a Redis Cluster's masters; in the clear
//! or over TLS (`Opener`). Discovery and routing are the `redis` crate's
//! own (`SentinelClient`, `ClusterClient`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    ClientTlsConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisError,
    TlsCertificates, TlsMode,
};
use tokio::sync::Mutex;

use super::conn::{cluster_masters, myself, Conn};
use crate::config::{RedisSettings, RedisTarget};
use crate::store::StoreError;

/// Commands and subscriptions to the master(s) in use.
pub(super) struct Link {
    /// The master's, for subscriptions (each its own connection); a
    /// cluster's are found when subscribing (`Source::subscriber`).
    pub client: Option<redis::Client>,
    /// Commands: multiplexed on one connection that reconnects itself, or
    /// on one such per cluster master.
    pub conn: Conn,
    /// `host:port` of each master.
    pub masters: Vec<String>,
    /// The master's replication id when linked (`master_replid`): a server
    /// restarted at the same address, or another put there, has another,
    /// and what it holds is not what was written here. `None` for a
    /// cluster (its client follows the slot map) or a server without `INFO`.
    pub replid: Option<String>,
    /// Set once the server at this address is found not to be the one
    /// linked to: the next look for the master links again, even to the
    /// same address.
    pub stale: AtomicBool,
}

impl Link {
    /// A cluster's: its client finds each slot's master itself.
    pub fn cluster(conn: Conn, masters: Vec<String>) -> Link {
        Link {
            client: None,
            conn,
            masters,
            replid: None,
            stale: AtomicBool::new(false),
        }
    }

    /// Whether `info` (an `INFO replication` answer from this link's
    /// address) comes from the server linked to.
    pub fn same_server(&self, info: &str) -> bool {
        match &self.replid {
            Some(replid) => info_field(info, "master_replid") == Some(replid.as_str()),
            None => true,
        }
    }
}

/// Where the master is found.
pub(super) enum Source {
    Url(redis::Client),
    Sentinel {
        client: Mutex<SentinelClient>,
        /// Each sentinel, for its `+switch-master` announcements.
        sentinels: Vec<redis::Client>,
        /// The master's name they watch.
        name: String,
    },
    Cluster {
        client: ClusterClient,
        /// The configured nodes, taken in turn for the subscription when
        /// the channel's master cannot be asked: a cluster forwards every
        /// `PUBLISH` to every node.
        nodes: Vec<redis::Client>,
        next: AtomicUsize,
        password: Option<String>,
        opener: Opener,
    },
}

/// How clients are made: plain or TLS (`rediss://`) for the addresses
/// the config and the sentinels give, and the roots that verify the
/// servers' certificates (the web PKI's unless `ca_file` names others).
pub(super) struct Opener {
    tls: bool,
    roots: Option<Vec<u8>>,
    /// The client certificate and key (PEM), for servers that ask.
    client: Option<(Vec<u8>, Vec<u8>)>,
}

impl Opener {
    fn new(settings: &RedisSettings) -> Result<Opener, StoreError> {
        let read = |key: &str, path: &std::path::Path| {
            std::fs::read(path)
                .map_err(|e| StoreError::Backend(format!("store.{key}: {}: {e}", path.display())))
        };
        let roots = settings
            .ca_file
            .as_ref()
            .map(|path| read("ca_file", path))
            .transpose()?;
        let client = match &settings.client_cert {
            Some(files) => Some((
                read("client_cert_file", &files.cert)?,
                read("client_key_file", &files.key)?,
            )),
            None => None,
        };
        Ok(Opener {
            tls: settings.tls,
            roots,
            client,
        })
    }

    /// The url of `host:port`.
    fn url(&self, address: &str) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://{address}")
    }

    /// What differs from the defaults (the web PKI's roots, no client
    /// certificate), if anything.
    fn certificates(&self) -> Option<TlsCertificates> {
        if self.roots.is_none() && self.client.is_none() {
            return None;
        }
        Some(TlsCertificates {
            client_tls: self.client.as_ref().map(|(cert, key)| ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
            root_cert: self.roots.clone(),
        })
    }

    fn open(&self, url: &str, password: &Option<String>) -> Result<redis::Client, RedisError> {
        let info = with_password(url.into_connection_info()?, password);
        match self.certificates() {
            Some(certs) => redis::Client::build_with_tls(info, certs),
            None => redis::Client::open(info),
        }
    }
}

impl Source {
    pub fn new(settings: &RedisSettings) -> Result<Source, StoreError> {
        let invalid = |e: RedisError| StoreError::Backend(format!("{}: {e}", settings.target));
        let password = |key: &str, var: &Option<String>| -> Result<Option<String>, StoreError> {
            var.as_ref()
                .map(|var| {
                    std::env::var(var)
                        .map_err(|_| StoreError::Backend(format!("store.{key}: {var} is not set")))
                })
                .transpose()
        };
        let redis_password = password("password_env", &settings.password_env)?;
        let opener = Opener::new(settings)?;
        let open = |url: &str| opener.open(url, &redis_password).map_err(invalid);
        match &settings.target {
            RedisTarget::Url(url) => Ok(Source::Url(open(url)?)),
            RedisTarget::Cluster(nodes) => {
                let urls: Vec<String> = nodes.iter().map(|n| opener.url(n)).collect();
                let mut builder = ClusterClientBuilder::new(urls.clone())
                    .connection_timeout(settings.timeout)
                    // A `WAIT` may take `wait_timeout` on top; each
                    // command's own limit is `Redis::run`'s.
                    .response_timeout(settings.timeout + settings.wait_timeout)
                    .retries(3);
                if let Some(p) = &redis_password {
                    builder = builder.password(p);
                }
                if let Some(certs) = opener.certificates() {
                    builder = builder.certs(certs);
                }
                Ok(Source::Cluster {
                    client: builder.build().map_err(invalid)?,
                    nodes: urls.iter().map(|u| open(u)).collect::<Result<_, _>>()?,
                    next: AtomicUsize::new(0),
                    password: redis_password,
                    opener,
                })
            }
            RedisTarget::Sentinel {
                sentinels,
                master,
                password_env,
            } => {
                let addrs = sentinels.iter().map(|s| {
                    let (host, port) = s.rsplit_once(':').unwrap_or((s, "26379"));
                    let (host, port) = (host.to_string(), port.parse().unwrap_or(26379));
                    match opener.tls {
                        true => ConnectionAddr::TcpTls {
                            host,
                            port,
                            insecure: false,
                            tls_params: None,
                        },
                        false => ConnectionAddr::Tcp(host, port),
                    }
                });
                let mut builder =
                    SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)
                        .map_err(invalid)?;
                if let Some(p) = redis_password {
                    builder = builder.set_client_to_redis_password(p);
                }
                let sentinel_password = password("sentinel_password_env", password_env)?;
                if let Some(p) = &sentinel_password {
                    builder = builder.set_client_to_sentinel_password(p);
                }
                if opener.tls {
                    builder = builder
                        .set_client_to_sentinel_tls_mode(TlsMode::Secure)
                        .set_client_to_redis_tls_mode(TlsMode::Secure);
                }
                if let Some(certs) = opener.certificates() {
                    builder = builder
                        .set_client_to_sentinel_certificates(certs.clone())
                        .set_client_to_redis_certificates(certs);
                }
                let open_sentinel = |address: &String| {
                    opener
                        .open(&opener.url(address), &sentinel_password)
                        .map_err(invalid)
                };
                Ok(Source::Sentinel {
                    client: Mutex::new(builder.build().map_err(invalid)?),
                    sentinels: sentinels
                        .iter()
                        .map(open_sentinel)
                        .collect::<Result<_, _>>()?,
                    name: master.clone(),
                })
            }
        }
    }

    /// Connects to the master(s), and fails if none answers within
    /// `timeout`; a `WAIT` on the link may take `wait_timeout` on top.
    pub async fn connect(
        &self,
        timeout: Duration,
        wait_timeout: Duration,
    ) -> Result<Link, StoreError> {
        let Source::Cluster { client, .. } = self else {
            let client = self
                .master()
                .await
                .map_err(|e| StoreError::Unreachable(e.to_string()))?;
            return Source::link(client, timeout, wait_timeout).await;
        };
        let conn = tokio::time::timeout(timeout, client.get_async_connection())
            .await
            .map_err(|_| StoreError::Unreachable("timed out".into()))?
            .map_err(|e| StoreError::Unreachable(e.to_string()))?;
        let mut conn = Conn::Cluster(conn);
        let masters = Source::cluster_masters(&mut conn)
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(Link::cluster(conn, masters))
    }

    /// The masters serving a cluster's slots now, as any node sees them.
    pub async fn cluster_masters(conn: &mut Conn) -> Result<Vec<String>, RedisError> {
        let nodes: String = redis::cmd("CLUSTER").arg("NODES").query_async(conn).await?;
        Ok(cluster_masters(&nodes))
    }

    pub fn follows_sentinels(&self) -> bool {
        matches!(self, Source::Sentinel { .. })
    }

    /// The master's client: the url's, or the one the sentinels name now.
    pub async fn master(&self) -> Result<redis::Client, RedisError> {
        match self {
            Source::Url(client) => Ok(client.clone()),
            Source::Sentinel { client, .. } => client.lock().await.async_get_client().await,
            Source::Cluster { .. } => Err(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "a cluster has no one master",
            ))),
        }
    }

    /// Where the next subscription goes: the master, or a cluster's next node.
    /// In a cluster, the master of `channel`'s slot, where it is published:
    /// announcements reach a subscriber there without crossing the cluster
    /// bus (a p99 of about 40 ms when they do); while that master cannot be
    /// asked (a failover under way), the next configured node.
    pub async fn subscriber(&self, link: &Link, channel: &str, timeout: Duration) -> redis::Client {
        let Source::Cluster {
            nodes,
            next,
            password,
            opener,
            ..
        } = self
        else {
            return link.client.clone().expect("a master's link has its client");
        };
        let mut conn = link.conn.clone();
        let ask = redis::cmd("CLUSTER").arg("NODES").clone();
        if let Ok(Ok(answer)) =
            tokio::time::timeout(timeout, conn.query_at::<String>(&ask, channel)).await
        {
            if let Some(at) = myself(&answer) {
                if let Ok(client) = opener.open(&opener.url(&at), password) {
                    return client;
                }
            }
        }
        nodes[next.fetch_add(1, Ordering::Relaxed) % nodes.len()].clone()
    }

    /// Connects to `client`'s master, and fails if it does not answer a
    /// `PING` within `timeout`; notes its replication id. A `WAIT` on the
    /// link may take `wait_timeout` on top (each command's own limit is
    /// `Redis::run`'s).
    pub async fn link(
        client: redis::Client,
        timeout: Duration,
        wait_timeout: Duration,
    ) -> Result<Link, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout + wait_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(200));
        let conn = tokio::time::timeout(
            timeout,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| StoreError::Unreachable("timed out".into()))?
        .map_err(|e| StoreError::Unreachable(e.to_string()))?;
        // Commands prove what connecting does not: the password, for one.
        let mut probe = conn.clone();
        tokio::time::timeout(
            timeout,
            redis::cmd("PING").query_async::<String>(&mut probe),
        )
        .await
        .map_err(|_| StoreError::Unreachable("no answer to PING".into()))?
        .map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut info = redis::cmd("INFO");
        info.arg("replication");
        let replid =
            match tokio::time::timeout(timeout, info.query_async::<String>(&mut probe)).await {
                Ok(Ok(info)) => info_field(&info, "master_replid").map(str::to_string),
                _ => None,
            };
        Ok(Link {
            masters: vec![address(&client)],
            client: Some(client),
            conn: Conn::One(conn),
            replid,
            stale: AtomicBool::new(false),
        })
    }
}

fn with_password(info: ConnectionInfo, password: &Option<String>) -> ConnectionInfo {
    match password {
        Some(password) => {
            let settings = info.redis_settings().clone().set_password(password.clone());
            info.set_redis_settings(settings)
        }
        None => info,
    }
}

/// `host:port` of the server `client` connects to.
pub(super) fn address(client: &redis::Client) -> String {
    match client.get_connection_info().addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        other => other.to_string(),
    }
}

/// The replicas an `INFO replication` answer lists as online: one still
/// loading its first full copy is listed but cannot confirm a write yet
/// (it gets the write with the copy).
pub(super) fn online_replicas(info: &str) -> u32 {
    // "slave0:ip=...,port=...,state=online,offset=...,lag=..."
    let listed = info.lines().filter(|l| {
        l.strip_prefix("slave")
            .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()))
    });
    listed.filter(|l| l.contains(",state=online,")).count() as u32
}

/// The value of `name` in an `INFO` answer.
fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
        slave0:ip=127.0.0.1,port=7001,state=online,offset=4242,lag=0\r\n\
        slave1:ip=127.0.0.1,port=7002,state=wait_bgsave,offset=0,lag=0\r\n\
        master_failover_state:no-failover\r\n\
        master_replid:9a9eabd3c1f0a1b2c3d4e5f60718293a4b5c6d7e\r\n\
        master_replid2:0000000000000000000000000000000000000000\r\n";

    #[test]
    fn a_replica_loading_its_first_copy_is_not_online() {
        assert_eq!(online_replicas(INFO), 1);
        assert_eq!(online_replicas("role:master\r\nconnected_slaves:0\r\n"), 0);
    }

    #[test]
    fn the_replication_id_is_read_whole_and_not_mistaken_for_the_second() {
        let replid = "9a9eabd3c1f0a1b2c3d4e5f60718293a4b5c6d7e";
        assert_eq!(info_field(INFO, "master_replid"), Some(replid));
        assert_eq!(
            info_field(INFO, "master_replid2"),
            Some("0".repeat(40).as_str())
        );
        assert_eq!(info_field(INFO, "role"), Some("master"));
        assert_eq!(info_field(INFO, "master_host"), None);
    }
}
