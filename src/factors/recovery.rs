//! Recovery codes: ten single-use codes shown once when a person enrols a
//! second factor, each 80 random bits written as four groups of four
//! Crockford base32 characters; the store keeps only their SHA-256 (80
//! bits leave nothing to guess from a hash). A typed code is read the
//! way people mistype it: any case, dashes and spaces, O for 0, I or L for 1.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const COUNT: usize = 10;
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Ten new codes, as shown to the person, with the hashes to keep.
pub fn new_codes() -> (Vec<String>, Vec<String>) {
    let codes: Vec<String> = (0..COUNT).map(|_| new_code()).collect();
    let hashes = codes
        .iter()
        .map(|c| hash(&normalized(c).expect("ours")))
        .collect();
    (codes, hashes)
}

fn new_code() -> String {
    let mut bytes = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut bytes);
    let mut bits: u128 = 0;
    for b in bytes {
        bits = (bits << 8) | u128::from(b);
    }
    let chars: Vec<u8> = (0..16)
        .map(|i| ALPHABET[((bits >> (75 - 5 * i)) & 31) as usize])
        .collect();
    chars
        .chunks(4)
        .map(|g| std::str::from_utf8(g).expect("ascii"))
        .collect::<Vec<_>>()
        .join("-")
}

/// A typed code in its one spelling, or `None` if it cannot be one.
fn normalized(typed: &str) -> Option<String> {
    let mut out = String::with_capacity(16);
    for c in typed.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c if ALPHABET.contains(&(c as u8)) && c.is_ascii() => c,
            _ => return None,
        };
        out.push(c);
    }
    (out.len() == 16).then_some(out)
}

fn hash(code: &str) -> String {
    let digest = Sha256::digest(code.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Which of `held` (hashes) `typed` is, if any: every one compared in
/// constant time.
pub fn position(held: &[String], typed: &str) -> Option<usize> {
    let typed = hash(&normalized(typed)?);
    let mut found = None;
    for (i, h) in held.iter().enumerate() {
        if bool::from(h.as_bytes().ct_eq(typed.as_bytes())) && found.is_none() {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_found_however_it_is_typed_and_only_once_held() {
        let (codes, hashes) = new_codes();
        assert_eq!((codes.len(), hashes.len()), (COUNT, COUNT));
        let code = &codes[3];
        assert_eq!(code.len(), 19);
        assert_eq!(position(&hashes, code), Some(3));
        let sloppy = code
            .to_lowercase()
            .replace('-', " ")
            .replace('0', "o")
            .replace('1', "l");
        assert_eq!(position(&hashes, &sloppy), Some(3));
        assert_eq!(position(&hashes[4..], code), None);
        for bad in ["", "0000-0000-0000-000", "UUUU-UUUU-UUUU-UUUU", "é"] {
            assert_eq!(position(&hashes, bad), None, "{bad}");
        }
        // Ten codes, ten hashes: no two alike.
        let mut unique = hashes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), COUNT);
    }
}
