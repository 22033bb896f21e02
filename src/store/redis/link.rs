//! The connections to Redis: to the master `url` names, to the one the
//! sentinels name now (asked again after a failure, so a failover is
//! followed within seconds), or to a Redis Cluster's masters. Discovery
//! and routing are the `redis` crate's own (`SentinelClient`,
//! `ClusterClient`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisError};
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
    },
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
        let open = |url: &str| -> Result<redis::Client, StoreError> {
            let info = url.into_connection_info().map_err(invalid)?;
            redis::Client::open(with_password(info, &redis_password)).map_err(invalid)
        };
        match &settings.target {
            RedisTarget::Url(url) => Ok(Source::Url(open(url)?)),
            RedisTarget::Cluster(nodes) => {
                let urls: Vec<String> = nodes.iter().map(|n| format!("redis://{n}")).collect();
                let mut builder = ClusterClientBuilder::new(urls.clone())
                    .connection_timeout(settings.timeout)
                    .response_timeout(settings.timeout)
                    .retries(3);
                if let Some(p) = &redis_password {
                    builder = builder.password(p);
                }
                Ok(Source::Cluster {
                    client: builder.build().map_err(invalid)?,
                    nodes: urls.iter().map(|u| open(u)).collect::<Result<_, _>>()?,
                    next: AtomicUsize::new(0),
                    password: redis_password,
                })
            }
            RedisTarget::Sentinel {
                sentinels,
                master,
                password_env,
            } => {
                let addrs = sentinels.iter().map(|s| {
                    let (host, port) = s.rsplit_once(':').unwrap_or((s, "26379"));
                    ConnectionAddr::Tcp(host.to_string(), port.parse().unwrap_or(26379))
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
                let open_sentinel = |address: &String| {
                    let info = format!("redis://{address}")
                        .into_connection_info()
                        .map_err(invalid)?;
                    redis::Client::open(with_password(info, &sentinel_password)).map_err(invalid)
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

    /// Connects to the master(s), and fails if none answers within `timeout`.
    pub async fn connect(&self, timeout: Duration) -> Result<Link, StoreError> {
        let Source::Cluster { client, .. } = self else {
            let client = self
                .master()
                .await
                .map_err(|e| StoreError::Unreachable(e.to_string()))?;
            return Source::link(client, timeout).await;
        };
        let conn = tokio::time::timeout(timeout, client.get_async_connection())
            .await
            .map_err(|_| StoreError::Unreachable("timed out".into()))?
            .map_err(|e| StoreError::Unreachable(e.to_string()))?;
        let mut conn = Conn::Cluster(conn);
        let masters = Source::cluster_masters(&mut conn)
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(Link {
            client: None,
            conn,
            masters,
        })
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
            Source::Cluster { .. } => unreachable!("a cluster has no one master"),
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
            let info = myself(&answer).map(|at| format!("redis://{at}").into_connection_info());
            if let Some(Ok(info)) = info {
                if let Ok(client) = redis::Client::open(with_password(info, password)) {
                    return client;
                }
            }
        }
        nodes[next.fetch_add(1, Ordering::Relaxed) % nodes.len()].clone()
    }

    /// Connects to `client`'s master, and fails if it does not answer a
    /// `PING` within `timeout`.
    pub async fn link(client: redis::Client, timeout: Duration) -> Result<Link, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
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
        redis::cmd("PING")
            .query_async::<String>(&mut probe)
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(Link {
            masters: vec![address(&client)],
            client: Some(client),
            conn: Conn::One(conn),
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

/// `connected_slaves` of an `INFO replication` answer.
pub(super) fn connected_replicas(info: &str) -> u32 {
    info.lines()
        .find_map(|l| l.strip_prefix("connected_slaves:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}
