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
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let shown = path.display().to_string();
    let file: file::FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: shown.clone(),
        message: e.to_string().trim_end().to_string(),
    })?;
    match check::check(text, file, path) {
        (config, problems) if problems.is_empty() => Ok(config),
        (_, problems) => Err(ConfigError::Invalid {
            path: shown,
            problems,
        }),
    }
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

    const MINIMAL: &str = r#"
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
        assert!(err.contains("colour"), "{err}");
        assert!(err.contains("line 7"), "{err}");
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
