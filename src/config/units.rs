//! The units `gateway.toml` writes values in: durations, sizes, UTC offsets.

use std::time::Duration;

/// `Z`, `UTC`, `+02:00`, `-05:00`.
pub(super) fn parse_offset(s: &str) -> Result<chrono::FixedOffset, String> {
    if s == "Z" || s.eq_ignore_ascii_case("utc") {
        return Ok(chrono::FixedOffset::east_opt(0).expect("zero offset"));
    }
    let err = || format!("{s:?} is not an offset like \"+02:00\" or \"UTC\"");
    let (sign, rest) = match s.split_at_checked(1).ok_or_else(err)? {
        ("+", r) => (1, r),
        ("-", r) => (-1, r),
        _ => return Err(err()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(err)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?);
    chrono::FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(err)
}

pub(super) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Parses `500ms`, `30s`, `15m`, `24h`, `7d`, `2w`, `2y` (a year is 365 days).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} needs a unit (ms, s, m, h, d, w, y)"))?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s, 15m, 24h, 2y"))?;
    let unit_secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (ms, s, m, h, d, w, y)"
            ))
        }
    };
    n.checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// Parses `65536`, `64KiB`, `1MiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 64KiB"))?;
    let mult = match unit {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (B, KiB, MiB)")),
    };
    Ok(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(
            parse_duration("2y").unwrap(),
            Duration::from_secs(2 * 365 * 86_400)
        );
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("3 fortnights").is_err());
        assert_eq!(parse_size("64KiB").unwrap(), 65_536);
        assert!(parse_size("64KB").is_err());
    }
}
