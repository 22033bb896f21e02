//! The PROXY protocol header (v1 text or v2 binary) a load balancer writes
//! before a connection's first byte, naming the client it accepted the
//! connection from. Read off the socket exactly, so nothing of what
//! follows is consumed, and parsed by `ppp`.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The shortest header of either version (`PROXY UNKNOWN\r\n`).
const SHORTEST: usize = 15;
/// The longest v1 header, by the specification.
const LONGEST_V1: usize = 107;
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// Reads the header: the client it names, or `None` for one that names
/// none (v1 `UNKNOWN`, v2 `LOCAL`: the balancer's own health checks, or
/// a v2 family with no address), in which case the socket's peer stands,
/// no longer trusted (`listener::proxied_peer`).
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Option<SocketAddr>, String> {
    let io = |e: std::io::Error| format!("reading the PROXY header: {e}");
    let mut buf = vec![0u8; SHORTEST];
    stream.read_exact(&mut buf).await.map_err(io)?;
    if buf.starts_with(b"PROXY ") {
        while !buf.ends_with(b"\r\n") {
            if buf.len() >= LONGEST_V1 {
                return Err("a PROXY v1 header longer than 107 bytes".into());
            }
            buf.push(stream.read_u8().await.map_err(io)?);
        }
    } else if buf.starts_with(&V2_SIGNATURE[..]) {
        buf.push(stream.read_u8().await.map_err(io)?);
        let length = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        let start = buf.len();
        buf.resize(start + length, 0);
        stream.read_exact(&mut buf[start..]).await.map_err(io)?;
    } else {
        return Err("the connection did not start with a PROXY header".into());
    }
    source(&buf)
}

fn source(header: &[u8]) -> Result<Option<SocketAddr>, String> {
    use ppp::{v1, v2, HeaderResult};
    let bad = |e: &dyn std::fmt::Display| format!("a malformed PROXY header: {e}");
    Ok(match HeaderResult::parse(header) {
        HeaderResult::V1(Ok(h)) => match h.addresses {
            v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
            v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
            v1::Addresses::Unknown => None,
        },
        HeaderResult::V2(Ok(h)) => match (h.command, h.addresses) {
            (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            _ => None,
        },
        HeaderResult::V1(Err(e)) => return Err(bad(&e)),
        HeaderResult::V2(Err(e)) => return Err(bad(&e)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, String>, Vec<u8>) {
        let mut stream = bytes;
        let result = read_header(&mut stream).await;
        (result, stream.to_vec())
    }

    #[tokio::test]
    async fn v1_names_the_client_and_leaves_the_request() {
        let (addr, rest) =
            read(b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\nGET / HTTP/1.1\r\n").await;
        assert_eq!(addr.unwrap().unwrap().to_string(), "203.0.113.7:51000");
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let (addr, rest) = read(b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\nX").await;
        assert_eq!(addr.unwrap().unwrap().to_string(), "[2001:db8::7]:51000");
        assert_eq!(rest, b"X");
        let (addr, rest) = read(b"PROXY UNKNOWN\r\nGET").await;
        assert_eq!(addr.unwrap(), None);
        assert_eq!(rest, b"GET");
    }

    #[tokio::test]
    async fn v2_names_the_client_and_leaves_the_request() {
        let header = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (
                "198.51.100.9:40000".parse::<SocketAddr>().unwrap(),
                "10.0.0.1:443".parse::<SocketAddr>().unwrap(),
            ),
        )
        .build()
        .unwrap();
        let mut bytes = header.clone();
        bytes.extend_from_slice(b"GET");
        let (addr, rest) = read(&bytes).await;
        assert_eq!(addr.unwrap().unwrap().to_string(), "198.51.100.9:40000");
        assert_eq!(rest, b"GET");
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        assert!(read(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.0.is_err());
        assert!(read(b"PROXY TCP4 nonsense here at all\r\n")
            .await
            .0
            .is_err());
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
        assert!(read(long.as_bytes()).await.0.is_err());
    }
}
