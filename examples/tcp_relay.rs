//! The floor under any tokio data plane: each client connection is paired
//! with its own origin connection, and every read from one side is written
//! to the other, with no HTTP parsing, no pool and no auth. It answers one
//! question for BENCHMARKS.md: how much of a proxied request's cost is the
//! kernel and tokio, which no HTTP engine on tokio can remove. Not a proxy:
//! it assumes one request, then one response, per read.
//!
//! ```sh
//! cargo build --release --example tcp_relay
//! bash benches/ab.sh target/release/examples/tcp_relay target/release/examples/hyper_passthrough
//! ```

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LISTEN: &str = "127.0.0.1:18085";
const ORIGIN: &str = "127.0.0.1:18081";

async fn relay(mut client: TcpStream) -> std::io::Result<()> {
    let mut origin = TcpStream::connect(ORIGIN).await?;
    origin.set_nodelay(true)?;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        origin.write_all(&buf[..n]).await?;
        let n = origin.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        client.write_all(&buf[..n]).await?;
    }
}

fn main() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(LISTEN).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                if let Err(e) = relay(stream).await {
                    eprintln!("relay: {e}");
                }
            });
        }
    })
}
