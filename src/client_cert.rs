//! A client's certificate (RFC 8705's mutual TLS): from the TLS handshake
//! of a listener with `client_ca_file`, or, behind a TLS-terminating proxy
//! in `trusted_proxies`, from its `Client-Cert` and `Client-Cert-Chain`
//! fields (RFC 9440). Its SHA-256 thumbprint is what a certificate-bound
//! token's `cnf["x5t#S256"]` names; the same fields carry it upstream.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

pub const CLIENT_CERT: HeaderName = HeaderName::from_static("client-cert");
pub const CLIENT_CERT_CHAIN: HeaderName = HeaderName::from_static("client-cert-chain");

/// A certificate longer than this (DER) is refused: a client's is a
/// kilobyte or two.
const MAX_DER: usize = 16 * 1024;

/// At most this many certificates in a chain field.
const MAX_CHAIN: usize = 8;

#[derive(Debug)]
pub struct ClientCert {
    /// The leaf certificate, DER.
    pub der: Vec<u8>,
    /// The rest of the chain as the client sent it, DER each.
    pub chain: Vec<Vec<u8>>,
    /// base64url(SHA-256(DER)): RFC 8705 §3.1's `x5t#S256`.
    pub thumbprint: Box<str>,
    /// It chains to roots portero trusts (a listener's `client_ca_file`),
    /// or a proxy trusted to pass certificates on vouches for it.
    pub verified: bool,
}

impl ClientCert {
    pub fn new(der: Vec<u8>, chain: Vec<Vec<u8>>, verified: bool) -> ClientCert {
        let thumbprint = URL_SAFE_NO_PAD.encode(Sha256::digest(&der)).into();
        ClientCert {
            der,
            chain,
            thumbprint,
            verified,
        }
    }

    /// The certificate a trusted proxy passed on (RFC 9440 §2): one
    /// `Client-Cert` field, a Byte Sequence (`:base64:`), and the chain in
    /// one `Client-Cert-Chain` field, a list of them. `Ok(None)` when it
    /// sent none; `Err` for a field that is not one certificate.
    pub fn from_fields(headers: &HeaderMap) -> Result<Option<ClientCert>, &'static str> {
        let mut leaf = headers.get_all(CLIENT_CERT).iter();
        let der = match (leaf.next(), leaf.next()) {
            (None, _) => return Ok(None),
            (Some(value), None) => byte_sequence(value.as_bytes().trim_ascii())?,
            (Some(_), Some(_)) => return Err("Client-Cert sent twice"),
        };
        let mut chain = Vec::new();
        let mut fields = headers.get_all(CLIENT_CERT_CHAIN).iter();
        if let Some(value) = fields.next() {
            if fields.next().is_some() {
                return Err("Client-Cert-Chain sent twice");
            }
            for item in value.as_bytes().split(|&b| b == b',') {
                chain.push(byte_sequence(item.trim_ascii())?);
                if chain.len() > MAX_CHAIN {
                    return Err("Client-Cert-Chain too long");
                }
            }
        }
        // A proxy trusted to pass certificates on checked its chain. The
        // certificate is the whole field: bytes after it would make another
        // thumbprint of the same certificate.
        match x509_parser::parse_x509_certificate(&der) {
            Ok(([], _)) => {}
            Ok(_) => return Err("Client-Cert holds more than a certificate"),
            Err(_) => return Err("Client-Cert is no X.509 certificate"),
        }
        Ok(Some(ClientCert::new(der, chain, true)))
    }

    /// Its `Client-Cert` field (RFC 9440 §2.2).
    pub fn field(&self) -> HeaderValue {
        HeaderValue::try_from(format!(":{}:", STANDARD.encode(&self.der)))
            .expect("base64 is header text")
    }

    /// Its `Client-Cert-Chain` field (RFC 9440 §2.3); `None` without a chain.
    pub fn chain_field(&self) -> Option<HeaderValue> {
        if self.chain.is_empty() {
            return None;
        }
        let items: Vec<String> = self
            .chain
            .iter()
            .map(|der| format!(":{}:", STANDARD.encode(der)))
            .collect();
        HeaderValue::try_from(items.join(", ")).ok()
    }
}

/// An RFC 8941 Byte Sequence: `:` base64 `:`, decoded; a certificate's
/// size at most.
fn byte_sequence(item: &[u8]) -> Result<Vec<u8>, &'static str> {
    let inner = item
        .strip_prefix(b":")
        .and_then(|rest| rest.strip_suffix(b":"))
        .ok_or("not a Byte Sequence")?;
    if inner.len() > MAX_DER * 4 / 3 + 4 {
        return Err("certificate too long");
    }
    let der = STANDARD.decode(inner).map_err(|_| "not base64")?;
    if der.is_empty() {
        return Err("empty certificate");
    }
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_carry_the_certificate_and_its_chain() {
        let der = rcgen::generate_simple_self_signed(["client.example".to_string()])
            .unwrap()
            .cert
            .der()
            .to_vec();
        let cert = ClientCert::new(der.clone(), vec![b"ca1".to_vec(), b"ca2".to_vec()], true);
        let mut headers = HeaderMap::new();
        headers.insert(CLIENT_CERT, cert.field());
        headers.insert(CLIENT_CERT_CHAIN, cert.chain_field().unwrap());
        let read = ClientCert::from_fields(&headers).unwrap().unwrap();
        assert_eq!(read.der, der);
        assert_eq!(read.chain, [b"ca1".to_vec(), b"ca2".to_vec()]);
        assert_eq!(read.thumbprint, cert.thumbprint);
        assert!(matches!(
            ClientCert::from_fields(&HeaderMap::new()),
            Ok(None)
        ));
        for bad in ["bGVhZg==", ":bGVhZg==", "::", ":!!:", ":bGVhZg==:"] {
            let mut h = HeaderMap::new();
            h.insert(CLIENT_CERT, HeaderValue::from_static(bad));
            assert!(ClientCert::from_fields(&h).is_err(), "{bad}");
        }
        let mut twice = HeaderMap::new();
        twice.append(CLIENT_CERT, cert.field());
        twice.append(CLIENT_CERT, cert.field());
        assert!(ClientCert::from_fields(&twice).is_err());
        // The certificate and bytes after it: another thumbprint of it.
        let mut trailing = der.clone();
        trailing.extend_from_slice(b"\0junk");
        let mut h = HeaderMap::new();
        h.insert(
            CLIENT_CERT,
            ClientCert::new(trailing, Vec::new(), true).field(),
        );
        assert!(ClientCert::from_fields(&h).is_err());
    }
}
