//! The connections to the Redis master: the one `url` names, or the one
//! the sentinels name now (asked again after a failure, so a failover is
//! followed within seconds). Discovery is the `redis` crate's own
//! (`SentinelClient`).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisError};
use tokio::sync::Mutex;

use crate::config::{RedisSettings, RedisTarget};
use crate::store::StoreError;

/// Commands and subscriptions to one master.
pub(super) struct Link {
    /// For subscriptions (each its own connection).
    pub client: redis::Client,
    /// Commands, multiplexed on one connection that reconnects itself.
    pub conn: ConnectionManager,
    /// `host:port` of the master.
    pub master: String,
}

/// Where the master is found.
pub(super) enum Source {
    Url(redis::Client),
    Sentinel(Mutex<SentinelClient>),
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
        match &settings.target {
            RedisTarget::Url(url) => {
                let mut info = url.as_str().into_connection_info().map_err(invalid)?;
                if let Some(password) = redis_password {
                    let redis_settings = info.redis_settings().clone().set_password(password);
                    info = info.set_redis_settings(redis_settings);
                }
                Ok(Source::Url(redis::Client::open(info).map_err(invalid)?))
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
                if let Some(p) = password("sentinel_password_env", password_env)? {
                    builder = builder.set_client_to_sentinel_password(p);
                }
                Ok(Source::Sentinel(Mutex::new(
                    builder.build().map_err(invalid)?,
                )))
            }
        }
    }

    pub fn follows_sentinels(&self) -> bool {
        matches!(self, Source::Sentinel(_))
    }

    /// The master's client: the url's, or the one the sentinels name now.
    pub async fn master(&self) -> Result<redis::Client, RedisError> {
        match self {
            Source::Url(client) => Ok(client.clone()),
            Source::Sentinel(sentinels) => sentinels.lock().await.async_get_client().await,
        }
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
            master: address(&client),
            client,
            conn,
        })
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
