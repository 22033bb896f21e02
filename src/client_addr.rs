//! The client's address that address rules and limits act on: the
//! socket's peer, or, when that peer is a trusted proxy, the nearest hop in
//! `X-Forwarded-For` that is not one. What an untrusted peer writes there
//! is never read: it could name anyone.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use crate::listener::Peer;

pub fn client_ip(peer: &Peer, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let mut client = peer.addr.ip().to_canonical();
    if !peer.trusted {
        return client;
    }
    // Each proxy appends the address it heard from: read from the right,
    // past the trusted ones. All of them one header or several, in order.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Garbage from the hop before: stop at the last address known good.
            return client;
        };
        client = ip;
        if !trusted.iter().any(|n| n.contains(&ip)) {
            return ip;
        }
    }
    client
}

/// `203.0.113.7`, `2001:db8::1`, or either with a port (`[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(addr: &str, trusted: &[ipnet::IpNet]) -> Peer {
        let addr: std::net::SocketAddr = addr.parse().unwrap();
        let ip = addr.ip().to_canonical();
        Peer::new(addr, false, trusted.iter().any(|net| net.contains(&ip)))
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let p = peer("198.51.100.7:5000", &trusted);
        assert_eq!(
            client_ip(&p, &xff(&["1.2.3.4"]), &trusted).to_string(),
            "198.51.100.7"
        );
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let p = peer("10.0.0.2:5000", &trusted);
        // The client forged the first entry; the edge proxy appended the real one.
        let h = xff(&["6.6.6.6, 203.0.113.5", "10.0.0.9"]);
        assert_eq!(client_ip(&p, &h, &trusted).to_string(), "203.0.113.5");
        assert_eq!(
            client_ip(&p, &HeaderMap::new(), &trusted).to_string(),
            "10.0.0.2"
        );
        let h = xff(&["[2001:db8::5]:443"]);
        assert_eq!(client_ip(&p, &h, &trusted).to_string(), "2001:db8::5");
        let h = xff(&["203.0.113.5, not-an-address, 10.0.0.3"]);
        assert_eq!(client_ip(&p, &h, &trusted).to_string(), "10.0.0.3");
    }
}
