//! Loading `gateway.toml`: the file layer ([`file`]), the checks
//! ([`check`]) and the validated model the gateway runs on ([`model`],
//! re-exported here); which of its keys a reload cannot apply ([`restart`]).
//!
//! Every problem is reported with the file, line and key it comes from, and
//! loading collects all of them instead of stopping at the first.

mod check;
mod file;
mod key_paths;
mod model;
mod restart;
mod set_aside;
mod units;

use std::path::Path;

use set_aside::Kind;

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
    #[error("{}", render_parse_error(path, *line, message))]
    Parse {
        path: String,
        line: Option<usize>,
        message: String,
    },
    #[error("{}", render_problems(path, problems))]
    Invalid {
        path: String,
        problems: Vec<Problem>,
    },
}

/// Keys and messages may quote the file (an unknown key's name): their
/// control characters are escaped, so no line of the file can pass for
/// another problem, or reach a terminal as an escape sequence.
fn render_problems(path: &str, problems: &[Problem]) -> String {
    let mut out = format!("{path}: {} problem(s)", problems.len());
    for p in problems {
        let (key, message) = (visible(&p.key), visible(&p.message));
        match p.line {
            Some(line) => out.push_str(&format!("\n  {path}:{line}: {key}: {message}")),
            None => out.push_str(&format!("\n  {path}: {key}: {message}")),
        }
    }
    out
}

/// Text that is not TOML: where the parser stopped and why, never the
/// line itself (it may hold a secret).
fn render_parse_error(path: &str, line: Option<usize>, message: &str) -> String {
    let message = message.replace('\n', "; ");
    match line {
        Some(line) => format!("{path}:{line}: {}", visible(&message)),
        None => format!("{path}: {}", visible(&message)),
    }
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`).
fn visible(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| match c.is_control() {
            true => c.escape_debug().to_string(),
            false => c.to_string(),
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// Past this many problems set aside, the rest of the file is not read:
/// each costs a parse of the whole file.
const MAX_SET_ASIDE: usize = 50;

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
/// its table takes) and a value of the wrong type with what its key takes,
/// each set aside ([`set_aside`]) so that the rest is checked too.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let shown = path.display().to_string();
    let parse_error = |e: toml::de::Error| ConfigError::Parse {
        path: shown.clone(),
        line: e
            .span()
            .map(|span| text[..span.start].matches('\n').count() + 1),
        message: match e.message().trim_end() {
            "" => "not valid TOML here".to_string(),
            message => message.to_string(),
        },
    };
    toml::from_str::<toml::Table>(text).map_err(parse_error)?;
    let invalid = |mut problems: Vec<Problem>| {
        problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        ConfigError::Invalid {
            path: shown.clone(),
            problems,
        }
    };
    // What serde stopped at, the values replaced by stand-ins, and the
    // tables set aside whole.
    let (mut found, mut stand_ins, mut tables) = (Vec::new(), Vec::new(), Vec::new());
    let (mut emptied, mut renumbered) = (Vec::new(), set_aside::Renumbered::default());
    let mut remaining = text.to_string();
    let file: file::FileConfig = loop {
        if found.len() + stand_ins.len() >= MAX_SET_ASIDE {
            found.extend(stand_ins);
            found.push(Problem {
                line: None,
                key: "(file)".to_string(),
                message: format!("{MAX_SET_ASIDE} problems and not read further: fix these first"),
            });
            return Err(invalid(found));
        }
        match file::read(&remaining) {
            Ok(file) => break file,
            Err(e) => match set_aside::set_aside(&mut remaining, &e, &mut emptied, &mut renumbered)
            {
                Some(set) => {
                    if said_already(&set.problem, &found, &tables) {
                        if let Kind::Table(key) = set.kind {
                            tables.push(key);
                        }
                        continue;
                    }
                    if let Kind::Table(key) = &set.kind {
                        tables.push(key.clone());
                    }
                    match set.kind {
                        Kind::StandIn => stand_ins.push(set.problem),
                        Kind::Blanked | Kind::Table(_) => found.push(set.problem),
                    }
                }
                None if found.is_empty() && stand_ins.is_empty() => {
                    return Err(invalid(vec![set_aside::stopped_at(text, &e)]))
                }
                // One that cannot be set aside: reported with those found so far.
                None => {
                    let mut stopped = set_aside::stopped_at(&remaining, &e);
                    stopped.key = renumbered.original(&stopped.key);
                    found.push(stopped);
                    found.extend(stand_ins);
                    return Err(invalid(found));
                }
            },
        }
    };
    // The stand-ins keep every line where it was, so lines are counted in them.
    let (config, mut problems) = check::check(&remaining, file, path);
    for p in &mut problems {
        p.key = renumbered.original(&p.key);
    }
    problems.retain(|p| {
        !stand_ins.iter().any(|s| s.line == p.line || s.key == p.key)
            && !tables.iter().any(|t| is_under(&p.key, t))
    });
    if found.is_empty() && stand_ins.is_empty() && problems.is_empty() {
        return Ok(config);
    }
    problems.extend(found);
    problems.extend(stand_ins);
    Err(invalid(problems))
}

/// Whether `problem` was said already, in other words: the same problem
/// again (a table emptied, then blanked out whole), or a key missing from
/// a table where that key was set aside as a table, or an unknown key
/// near its name was (`upstrem` for `upstream`).
fn said_already(problem: &Problem, found: &[Problem], tables: &[String]) -> bool {
    let again = |p: &Problem| {
        (p.line, &p.key, &p.message) == (problem.line, &problem.key, &problem.message)
    };
    if found.iter().any(again) {
        return true;
    }
    let Some(missing) = problem
        .message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name)
    else {
        return false;
    };
    let suggested = format!("did you mean `{missing}`?");
    let misspelled = |p: &Problem| {
        p.line == problem.line
            || (is_under(&p.key, &problem.key) && p.message.ends_with(&suggested))
    };
    let set_aside = format!("{}.{missing}", problem.key);
    found.iter().any(misspelled) || tables.contains(&set_aside)
}

/// Whether `key` is `table` or a key below it.
fn is_under(key: &str, table: &str) -> bool {
    key.strip_prefix(table)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
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
