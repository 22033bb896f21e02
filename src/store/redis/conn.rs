//! The command connection: to one master, or to every master of a Redis
//! Cluster (the `redis` crate routes each command by its keys' slot,
//! follows `MOVED` and reads the slot map again after a failover).

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ErrorKind, FromRedisValue, Pipeline, RedisFuture, RedisResult, Script, ServerErrorKind,
    Value,
};

#[derive(Clone)]
pub(super) enum Conn {
    One(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    /// Sends `cmd`, which names no key, to the master that holds `key`:
    /// where a write to `key` went, over the same connection (so `WAIT`
    /// counts that write). See [`Conn::pipe_at`].
    pub async fn query_at<T: FromRedisValue>(&mut self, cmd: &Cmd, key: &str) -> RedisResult<T> {
        let (answer,) = self.pipe_at(std::slice::from_ref(cmd), key).await?;
        Ok(answer)
    }

    /// Sends `cmds`, which name no key, in one pipeline to the master that
    /// holds `key`; their answers as `T` (a tuple, one field a command). In
    /// a cluster they go behind a `PTTL key`, which fails (`MOVED`) on any
    /// node but that master: keyless commands alone would quietly go to
    /// another node while the client's slot map is out of date (a failover
    /// under way).
    pub async fn pipe_at<T: FromRedisValue>(&mut self, cmds: &[Cmd], key: &str) -> RedisResult<T> {
        let cluster = matches!(self, Conn::Cluster(_));
        let mut pipe = redis::pipe();
        if cluster {
            pipe.cmd("PTTL").arg(key).ignore();
        }
        for cmd in cmds {
            pipe.add_command(cmd.clone());
        }
        let answer = pipe.query_async(self).await;
        if let Err(e) = &answer {
            // A keyed command alone is redirected, and has the slot map
            // read again, for the next try.
            if cluster && e.code() == Some("MOVED") {
                let _ = redis::cmd("PTTL").arg(key).query_async::<i64>(self).await;
            }
        }
        answer
    }

    /// Sends `pipe`, in which `script` may be invoked (`EVALSHA`), loading
    /// the script first where the server does not know it yet (a new or
    /// restarted server): a script that was not found did not run, so the
    /// pipeline is sent again whole.
    pub async fn send<T: FromRedisValue>(
        &mut self,
        pipe: &Pipeline,
        script: Option<&Script>,
    ) -> RedisResult<T> {
        match (pipe.query_async(self).await, script) {
            (Err(e), Some(script)) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                script.load_async(self).await?;
                pipe.query_async(self).await
            }
            (answer, _) => answer,
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::One(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::One(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::One(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}

/// The masters serving slots, from a `CLUSTER NODES` answer (`host:port`,
/// sorted): a line is `<id> <ip:port@cport[,hostname]> <flags> <master>
/// <ping> <pong> <epoch> <link> <slot>...`.
pub(super) fn cluster_masters(nodes: &str) -> Vec<String> {
    let mut masters: Vec<String> = nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?.split(',').collect::<Vec<_>>();
            let serving = fields.len() > 8 && flags.contains(&"master") && !flags.contains(&"fail");
            let address = fields[1].split(['@', ',']).next()?;
            serving.then(|| address.to_string())
        })
        .collect();
    masters.sort();
    masters
}

/// `host:port` of the node that gave a `CLUSTER NODES` answer (`myself`).
pub(super) fn myself(nodes: &str) -> Option<String> {
    let line = nodes.lines().find(|l| {
        l.split_whitespace()
            .nth(2)
            .is_some_and(|f| f.contains("myself"))
    })?;
    let address = line.split_whitespace().nth(1)?.split(['@', ',']).next()?;
    Some(address.to_string())
}

#[cfg(test)]
mod tests {
    use super::{cluster_masters, myself};

    #[test]
    fn masters_are_the_serving_ones() {
        let nodes = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7002@17002 master - 0 1 2 connected 5461-10922
c3 127.0.0.1:7003@17003 master,fail - 0 1 3 disconnected
d4 127.0.0.1:7004@17004 slave a1 0 1 1 connected
e5 127.0.0.1:7005@17005,redis-5 master - 0 1 5 connected 10923-16383
f6 127.0.0.1:7006@17006 master - 0 1 6 connected
";
        assert_eq!(
            cluster_masters(nodes),
            ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7005"]
        );
        assert_eq!(myself(nodes).as_deref(), Some("127.0.0.1:7001"));
    }
}
