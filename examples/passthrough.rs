//! A bare Pingora pass-through: no routes, no auth, no headers, no metrics,
//! no log. It is the floor portero's data plane stands on, measured beside
//! the peers in the same run (BENCHMARKS.md):
//!
//! ```sh
//! cargo build --release --example passthrough
//! GATEWAY_CMD='exec target/release/examples/passthrough' bash ../shared/bench/peers.sh
//! ```
//!
//! It listens where peers.sh expects a gateway (127.0.0.1:18085) and forwards
//! to its origin (127.0.0.1:18081) on one worker thread, like the peers.

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

struct PassThrough;

#[async_trait]
impl ProxyHttp for PassThrough {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            ("127.0.0.1", 18081),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let conf = ServerConf {
        threads: 1,
        pid_file: "/tmp/portero-passthrough.pid".into(),
        upgrade_sock: "/tmp/portero-passthrough.sock".into(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, PassThrough);
    proxy.add_tcp("127.0.0.1:18085");
    server.add_service(proxy);
    server.run_forever();
}
