//! Loading `gateway.toml`: the file layer ([`file`]), the checks
//! ([`check`]) and the validated model the gateway runs on ([`model`],
//! re-exported here); which of its keys a reload cannot apply ([`restart`]).
//!
//! Every problem is reported with the file, line and key it comes from, and
//! loading collects all of them instead of stopping at the first.

mod check;
mod file;
mod model;
mod restart;
mod units;

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

pub use check::parse::{check_key_url, token_source};
pub use check::secret_hash::{secret_hash, within_limits};
pub use model::*;
pub use restart::restart_required;
pub use units::{parse_duration, parse_size};

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// One problem in a config file, named by file, line and key.
#[derive(Debug, Clone)]
pub struct Problem {
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{}", render_problems(path, problems))]
    Invalid {
        path: String,
        problems: Vec<Problem>,
    },
}

fn render_problems(path: &str, problems: &[Problem]) -> String {
    let mut out = format!("{path}: {} problem(s)", problems.len());
    for p in problems {
        match p.line {
            Some(line) => out.push_str(&format!("\n  {path}:{line}: {}: {}", p.key, p.message)),
            None => out.push_str(&format!("\n  {path}: {}: {}", p.key, p.message)),
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, path)
}

/// Validates config text; `path` is used for messages and to resolve relative files.
///
/// Text that is not TOML has one problem, where the parser stopped. Past
/// that, every problem is collected: an unknown key is named (with the keys
/// its table takes) and set aside, so that the rest is checked too.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let shown = path.display().to_string();
    let parse_error = |e: toml::de::Error| ConfigError::Parse {
        path: shown.clone(),
        message: e.to_string().trim_end().to_string(),
    };
    toml::from_str::<toml::Table>(text).map_err(parse_error)?;
    let mut unknown = Vec::new();
    let mut remaining = text.to_string();
    let file: file::FileConfig = loop {
        match toml::from_str(&remaining) {
            Ok(file) => break file,
            Err(e) => match set_aside_unknown_key(&mut remaining, &e) {
                Some(problem) => unknown.push(problem),
                // Not an unknown key, or one that cannot be set aside alone:
                // reported with those found so far.
                None if unknown.is_empty() => return Err(parse_error(e)),
                None => {
                    return Err(ConfigError::Invalid {
                        path: shown,
                        problems: unknown,
                    })
                }
            },
        }
    };
    let (config, mut problems) = check::check(text, file, path);
    if unknown.is_empty() && problems.is_empty() {
        return Ok(config);
    }
    problems.extend(unknown);
    problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    Err(ConfigError::Invalid {
        path: shown,
        problems,
    })
}

/// The unknown key `e` complains of, as a problem, blanked out of `text`
/// (spaces for its bytes, so every span stays where it was): a line of
/// its own, or its place in an inline table. `None` if `e` is another
/// error or the key cannot be set aside alone.
fn set_aside_unknown_key(text: &mut String, e: &toml::de::Error) -> Option<Problem> {
    let message = e.message();
    let name = message.strip_prefix("unknown field `")?.split('`').next()?;
    let at = e.span()?.start;
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let mut name = name.to_string();
    let blank = if text[start..at].trim().is_empty() {
        start..end
    } else {
        // `rate_limit = { ..., wat = 1 }`: the key is `rate_limit.wat`.
        if let Some((before, _)) = text[start..at].rsplit_once('{') {
            let table = before.trim_end().trim_end_matches('=').trim();
            name = format!("{}.{name}", table.rsplit([',', '{']).next()?.trim());
        }
        in_inline_table(text, at)?
    };
    let mut candidate = text.clone();
    candidate.replace_range(blank.clone(), &" ".repeat(blank.len()));
    toml::from_str::<toml::Table>(&candidate).ok()?;
    let problem = Problem {
        line: Some(text[..start].matches('\n').count() + 1),
        key: table_of(&text[..start]).map_or(name.clone(), |t| format!("{t}.{name}")),
        message: message.to_string(),
    };
    *text = candidate;
    Some(problem)
}

/// The bytes of `key = value` at `at` in an inline table, with the comma
/// that parts it from its neighbours.
fn in_inline_table(text: &str, at: usize) -> Option<std::ops::Range<usize>> {
    let (mut depth, mut quote) = (0, None);
    for (i, c) in text[at..].char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') if depth > 0 => depth -= 1,
            (None, ',') if depth == 0 => return Some(at..at + i + 1),
            // The table's last entry: the comma before it goes.
            (None, '}') => return Some(text[..at].rfind(',')?..at + i),
            (None, '\n') => return None,
            _ => {}
        }
    }
    None
}

/// The table the text before a line leaves open, as keys name it
/// (`routes[2]` for the third `[[routes]]`); `None` at the top level.
fn table_of(before: &str) -> Option<String> {
    let headers: Vec<&str> = before
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| l.starts_with('[') && l.ends_with(']') && !l.contains(['=', '"', '\'']))
        .collect();
    let last = *headers.last()?;
    let array = last.starts_with("[[");
    let name = last.trim_matches(|c| c == '[' || c == ']').trim();
    if !array {
        return Some(name.to_string());
    }
    let index = headers.iter().filter(|h| **h == last).count() - 1;
    Some(format!("{name}[{index}]"))
}

/// The certificates of a PEM file: at least one, or why not.
pub fn pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config with one of everything it needs.
    pub(super) const MINIMAL: &str = r#"
[[listen]]
addr = "127.0.0.1:8080"

[upstreams.echo]
builtin = "echo"

[issuers.demo]
[[issuers.demo.keys]]
kid = "k1"
alg = "HS256"
secret_env = "DEMO_SECRET"

[[routes]]
path = "/"
upstream = "echo"
"#;

    fn check(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("test.toml"))
    }

    #[test]
    fn minimal_config_loads() {
        let c = check(MINIMAL).unwrap();
        assert_eq!(c.routes.len(), 1);
        assert!(matches!(
            c.routes[0].action,
            RouteAction::Proxy {
                policy: Some(_),
                ..
            }
        ));
        assert_eq!(c.issuers[0].iss, "demo");
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let text = MINIMAL.replace(
            "builtin = \"echo\"",
            "builtin = \"echo\"\ncolour = \"blue\"",
        );
        let err = check(&text).unwrap_err().to_string();
        assert!(
            err.contains("test.toml:7: upstreams.echo.colour: unknown field `colour`"),
            "{err}"
        );
    }

    #[test]
    fn missing_upstream_reference_names_line_and_key() {
        let text = MINIMAL.replace("upstream = \"echo\"", "upstream = \"billing\"");
        let err = check(&text).unwrap_err().to_string();
        assert!(
            err.contains("test.toml:16: routes[0].upstream: no upstream named \"billing\""),
            "{err}"
        );
    }

    #[test]
    fn every_problem_is_reported() {
        let text = MINIMAL
            .replace(
                "upstream = \"echo\"",
                "upstream = \"billing\"\ntoken_from = \"carrier-pigeon\"",
            )
            .replace("alg = \"HS256\"", "alg = \"none\"");
        let err = check(&text).unwrap_err().to_string();
        assert!(err.contains("3 problem(s)"), "{err}");
        assert!(err.contains("unsupported algorithm \"none\""), "{err}");
        assert!(err.contains("token_from"), "{err}");
    }
}
