//! A client authenticated by the certificate of its mutual-TLS request
//! (RFC 8705 §2): `tls_client_auth`, a certificate the listener verified
//! against its roots (or a trusted proxy passed on) with the one name the
//! client is registered by; `self_signed_tls_client_auth`, one of the
//! client's own certificates, by its SHA-256.

use std::net::IpAddr;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::client_cert::ClientCert;
use crate::config::{CertificateName, TlsClient};

/// Whether `cert` is the one `rule` asks for.
pub fn matches(cert: &ClientCert, rule: &TlsClient) -> bool {
    match rule {
        TlsClient::Registered(thumbprints) => thumbprints.iter().any(|t| **t == *cert.thumbprint),
        // A name counts only in a certificate of trusted roots: anyone
        // can make a self-signed one with any name.
        TlsClient::Named(_) if !cert.verified => false,
        TlsClient::Named(name) => match X509Certificate::from_der(&cert.der) {
            Ok((_, parsed)) => names(&parsed, name),
            Err(_) => false,
        },
    }
}

fn names(cert: &X509Certificate<'_>, name: &CertificateName) -> bool {
    if let CertificateName::SubjectDn(dn) = name {
        return subject_dn(cert).is_some_and(|subject| subject == normal_dn(dn));
    }
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    san.value
        .general_names
        .iter()
        .any(|general| match (general, name) {
            (GeneralName::DNSName(dns), CertificateName::Dns(want)) => {
                dns.eq_ignore_ascii_case(want)
            }
            (GeneralName::URI(uri), CertificateName::Uri(want)) => uri == want,
            (GeneralName::RFC822Name(email), CertificateName::Email(want)) => email == want,
            (GeneralName::IPAddress(bytes), CertificateName::Ip(want)) => {
                ip_of(bytes) == Some(*want)
            }
            _ => false,
        })
}

fn ip_of(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

/// An RDN sequence: each RDN's attributes, each its type (upper case) and
/// value (unescaped), the last RDN first as RFC 4514 writes them.
type Dn = Vec<Vec<(String, String)>>;

/// The certificate's subject, as [`Dn`].
fn subject_dn(cert: &X509Certificate<'_>) -> Option<Dn> {
    let registry = x509_parser::objects::oid_registry();
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        let mut attributes = Vec::new();
        for attribute in rdn.iter() {
            let oid = attribute.attr_type();
            let name = x509_parser::objects::oid2abbrev(oid, registry)
                .map(str::to_ascii_uppercase)
                .unwrap_or_else(|_| oid.to_id_string());
            attributes.push((name, attribute.as_str().ok()?.to_string()));
        }
        rdns.push(attributes);
    }
    rdns.reverse();
    Some(rdns)
}

/// A subject DN as RFC 4514 writes it (`CN=app,O=Example`), as [`Dn`]:
/// RDNs split at unescaped commas, attributes at unescaped `+`, escapes
/// (`\,`, `\+`, `\2C`) read, white space around each part dropped.
fn normal_dn(dn: &str) -> Dn {
    let mut rdns = Vec::new();
    let (mut rdn, mut part, mut escaped) = (Vec::new(), Vec::<u8>::new(), false);
    let end_attribute = |rdn: &mut Vec<(String, String)>, part: &mut Vec<u8>| {
        let text = String::from_utf8_lossy(part).into_owned();
        let (t, v) = text.split_once('=').unwrap_or((&text, ""));
        rdn.push((t.trim().to_ascii_uppercase(), v.trim().to_string()));
        part.clear();
    };
    let bytes = dn.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        if escaped {
            escaped = false;
            let hex = dn
                .get(i - 1..i + 1)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(byte) if b.is_ascii_hexdigit() => {
                    part.push(byte);
                    i += 1;
                }
                _ => part.push(b),
            }
            continue;
        }
        match b {
            b'\\' => escaped = true,
            b'+' => end_attribute(&mut rdn, &mut part),
            b',' => {
                end_attribute(&mut rdn, &mut part);
                rdns.push(std::mem::take(&mut rdn));
            }
            _ => part.push(b),
        }
    }
    end_attribute(&mut rdn, &mut part);
    rdns.push(rdn);
    rdns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(subject: &str, sans: Vec<rcgen::SanType>) -> ClientCert {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for part in subject.split(',') {
            let (t, v) = part.split_once('=').unwrap();
            let kind = match t {
                "CN" => rcgen::DnType::CommonName,
                "O" => rcgen::DnType::OrganizationName,
                _ => rcgen::DnType::CountryName,
            };
            params.distinguished_name.push(kind, v);
        }
        params.subject_alt_names = sans;
        let key = rcgen::KeyPair::generate().unwrap();
        let made = params.self_signed(&key).unwrap();
        ClientCert::new(made.der().to_vec(), Vec::new(), true)
    }

    #[test]
    fn a_certificate_names_its_client_as_rfc_8705_says() {
        let c = cert(
            "C=US,O=Example,CN=billing",
            vec![
                rcgen::SanType::DnsName("billing.example".try_into().unwrap()),
                rcgen::SanType::URI("spiffe://example/billing".try_into().unwrap()),
                rcgen::SanType::IpAddress("10.0.0.7".parse().unwrap()),
                rcgen::SanType::Rfc822Name("ops@example.com".try_into().unwrap()),
            ],
        );
        let named = |name| matches(&c, &TlsClient::Named(name));
        assert!(named(CertificateName::SubjectDn(
            "CN=billing, O=Example, C=US".into()
        )));
        assert!(named(CertificateName::SubjectDn(
            "cn=billing,o=Example,c=US".into()
        )));
        assert!(!named(CertificateName::SubjectDn(
            "CN=billing,O=Example".into()
        )));
        assert!(!named(CertificateName::SubjectDn(
            "C=US,O=Example,CN=billing".into()
        )));
        assert!(named(CertificateName::Dns("BILLING.example".into())));
        assert!(!named(CertificateName::Dns("example".into())));
        assert!(named(CertificateName::Uri(
            "spiffe://example/billing".into()
        )));
        assert!(!named(CertificateName::Uri(
            "spiffe://example/other".into()
        )));
        assert!(named(CertificateName::Ip("10.0.0.7".parse().unwrap())));
        assert!(!named(CertificateName::Ip("10.0.0.8".parse().unwrap())));
        assert!(named(CertificateName::Email("ops@example.com".into())));
        let registered = TlsClient::Registered(vec![c.thumbprint.to_string()]);
        assert!(matches(&c, &registered));
        let other = cert("CN=billing", vec![]);
        assert!(!matches(&other, &registered));
        let garbage = ClientCert::new(b"not DER".to_vec(), Vec::new(), true);
        // The same certificate, taken unverified: its names say nothing.
        let unverified = ClientCert::new(c.der.clone(), Vec::new(), false);
        let by_dns = TlsClient::Named(CertificateName::Dns("billing.example".into()));
        assert!(matches(&c, &by_dns) && !matches(&unverified, &by_dns));
        assert!(
            matches(&unverified, &registered),
            "a registered certificate is itself"
        );
        assert!(!matches(
            &garbage,
            &TlsClient::Named(CertificateName::Dns("x".into()))
        ));
    }
}
