//! Time-based one-time codes (RFC 6238 over RFC 4226's HOTP): HMAC-SHA-1,
//! six digits, 30-second steps, what every authenticator app reads from
//! an `otpauth://` URI. A code is taken at its own step or one either side
//! (clock skew), and only at a step later than the last one taken, which
//! the caller keeps: no code is taken twice (RFC 6238 §5.2).

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;
use subtle::ConstantTimeEq;

pub const STEP_SECONDS: i64 = 30;
pub const DIGITS: usize = 6;
/// 160 bits, as RFC 4226 §4 recommends for SHA-1.
pub const SECRET_BYTES: usize = 20;

pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::thread_rng().fill_bytes(&mut secret);
    secret
}

/// The time step `now` falls in.
pub fn step_of(now: i64) -> i64 {
    now.div_euclid(STEP_SECONDS)
}

/// The code for `step` (RFC 4226 §5.3: dynamic truncation).
pub fn code_at(secret: &[u8], step: i64) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("any key length");
    mac.update(&(step as u64).to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let bits = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!(
        "{:0width$}",
        bits % 10u32.pow(DIGITS as u32),
        width = DIGITS
    )
}

/// The step `typed` is the code of, among `now`'s and the one either side,
/// later than `last_step`; spaces the user typed are ignored. Every
/// candidate is compared in constant time.
pub fn matching_step(secret: &[u8], typed: &str, now: i64, last_step: i64) -> Option<i64> {
    let typed: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    if typed.len() != DIGITS || !typed.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = step_of(now);
    let mut found = None;
    for step in current - 1..=current + 1 {
        let same = code_at(secret, step).as_bytes().ct_eq(typed.as_bytes());
        if bool::from(same) && step > last_step && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The secret as authenticator apps take it typed: base32, no padding.
pub fn secret_text(secret: &[u8]) -> String {
    BASE32_NOPAD.encode(secret)
}

/// The `otpauth://` URI (Key URI Format) naming `account` at `issuer`.
pub fn uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let label = |s: &str| -> String {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        label(issuer),
        label(account),
        secret_text(secret),
        label(issuer),
    )
}

/// `uri` as a QR code, an SVG image to put in a page as it is; `None`
/// where it is too long for one (a very long name and login): the page
/// then gives the key alone.
pub fn qr_svg(uri: &str) -> Option<String> {
    let code =
        qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    Some(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 (the last six digits of its eight).
    #[test]
    fn codes_match_rfc_6238_appendix_b() {
        let secret = b"12345678901234567890";
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(code_at(secret, step_of(time)), code, "at {time}");
        }
    }

    #[test]
    fn a_code_is_taken_at_its_step_or_one_either_side_and_never_again() {
        let secret = new_secret();
        let now = 1_700_000_015;
        let step = step_of(now);
        let code = code_at(&secret, step);
        assert_eq!(matching_step(&secret, &code, now, 0), Some(step));
        assert_eq!(
            matching_step(&secret, &format!("{} {}", &code[..3], &code[3..]), now, 0),
            Some(step)
        );
        // Taken once: the last step is now its own.
        assert_eq!(matching_step(&secret, &code, now, step), None);
        // The previous and the next step's codes: skew of one step.
        let before = code_at(&secret, step - 1);
        assert_eq!(matching_step(&secret, &before, now, 0), Some(step - 1));
        assert_eq!(
            matching_step(&secret, &code_at(&secret, step + 1), now, 0),
            Some(step + 1)
        );
        assert_eq!(
            matching_step(&secret, &code_at(&secret, step - 2), now, 0),
            None
        );
        assert_eq!(
            matching_step(&secret, &code_at(&secret, step + 2), now, 0),
            None
        );
        for bad in ["", "12345", "1234567", "abcdef", "１２３４５６"] {
            assert_eq!(matching_step(&secret, bad, now, 0), None, "{bad}");
        }
    }

    #[test]
    fn the_uri_names_the_issuer_and_account_and_carries_the_secret() {
        let uri = uri("Acme Corp", "ada@example.com", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/Acme%20Corp:ada%40example%2Ecom?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Acme%20Corp&algorithm=SHA1&digits=6&period=30"
        );
        assert!(qr_svg(&uri).unwrap().starts_with("<?xml"));
        // Past what a QR code holds: no code, and no panic.
        let long = super::uri(&"é".repeat(150), &"ü".repeat(250), &new_secret());
        assert!(qr_svg(&long).is_none());
    }
}
