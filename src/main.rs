//! The `portero` command: run the gateway, check a config, mint a token, or
//! import principals.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use portero::{access_log, config, server};
use tracing_appender::non_blocking::WorkerGuard;

mod allocator;

#[global_allocator]
static ALLOCATOR: allocator::MiMalloc = allocator::MiMalloc;

#[derive(Parser)]
#[command(version, about = "A reverse-proxy authentication gateway")]
struct Cli {
    /// The config file.
    #[arg(long, global = true, default_value = "gateway.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run,
    /// Validate the config and exit: 0 if it is good, 1 with every problem named.
    Check,
    /// Print a hash of a secret read from stdin, for a principal's `secret_hash`.
    HashSecret {
        /// The fast keyed hash, for high-entropy client secrets (default: argon2id).
        #[arg(long)]
        fast: bool,
    },
    /// Mint a token with an issuer's signing key (for operators and the demo).
    Token {
        /// The issuer, by its name in the config.
        #[arg(long)]
        issuer: String,
        /// The `sub` claim.
        #[arg(long)]
        sub: String,
        /// Lifetime, e.g. 15m, 24h (default: the issuer's token_ttl).
        #[arg(long)]
        ttl: Option<String>,
        /// Extra claims as NAME=VALUE (repeatable); VALUE is parsed as JSON when it can be.
        #[arg(long = "claim", value_name = "NAME=VALUE")]
        claims: Vec<String>,
    },
    /// Import principals into the store, for an issuer's logins: a CSV file
    /// with a header row of principal keys, JSON lines, or a Keycloak realm
    /// export. Rows replace what their logins had; a file with a bad row
    /// imports nothing without --partial.
    Import {
        /// The issuer, by its name in the config.
        #[arg(long)]
        issuer: String,
        /// The file's format (default: by its extension: .csv, .jsonl, .json).
        #[arg(long, value_enum)]
        format: Option<portero::import::Format>,
        /// Import the good rows of a file that has bad ones.
        #[arg(long)]
        partial: bool,
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Hashing needs no config.
    if let Some(Command::HashSecret { fast }) = cli.command {
        return match portero::credentials::hash_secret_from_stdin(fast) {
            Ok(hash) => {
                println!("{hash}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("portero hash-secret: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let _flush_log_at_exit = init_log(config.server.log_format);
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Check => {
            println!("{}: ok", cli.config.display());
            Ok(())
        }
        Command::Run => run(config),
        Command::Token {
            issuer,
            sub,
            ttl,
            claims,
        } => mint(&config, &issuer, &sub, ttl.as_deref(), &claims),
        Command::Import {
            issuer,
            format,
            partial,
            file,
        } => import(&config, &issuer, &file, format, partial),
        Command::HashSecret { .. } => unreachable!("handled before loading the config"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portero: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Lines are written by a background thread, so a request never waits on
/// stderr; if it falls 128k lines behind, new lines are dropped, never the
/// requests (the guard flushes what is queued at exit). Buffered: a busy
/// batch of lines costs one write, not one per line. The access log has a
/// writer of its own (`access_log`), unless `PORTERO_LOG` turns
/// `portero::access` off.
fn init_log(format: config::LogFormat) -> (WorkerGuard, Option<access_log::Flush>) {
    let stderr = std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr());
    let (log_writer, flush_at_exit) = tracing_appender::non_blocking(stderr);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PORTERO_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(log_writer);
    match format {
        config::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // Fields at the top level beside timestamp, level, target and message.
        config::LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    let access = tracing::enabled!(target: "portero::access", tracing::Level::INFO)
        .then(|| access_log::start(format));
    (flush_at_exit, access)
}

/// Signals first (a SIGTERM during start-up still drains), then the
/// listeners, so a port in use fails the start before any work.
fn run(config: config::Config) -> anyhow::Result<()> {
    let signals = server::handle_signals()?;
    let listeners = server::Listeners::bind(&config)?;
    server::run(config, listeners, signals)?;
    Ok(())
}

fn mint(
    config: &config::Config,
    issuer: &str,
    sub: &str,
    ttl: Option<&str>,
    extra: &[String],
) -> anyhow::Result<()> {
    let (runtime, store) = open_store(config, "use its token endpoints instead")?;
    let keys = runtime.block_on(portero::key_loading::load(config, store.as_ref(), |_| None))?;
    let index = keys
        .issuer_index(issuer)
        .ok_or_else(|| anyhow::anyhow!("no issuer named {issuer:?}"))?;
    let ttl = match ttl {
        Some(t) => config::parse_duration(t).map_err(anyhow::Error::msg)?,
        None => config.issuers[index].token_ttl,
    };
    let now = portero::clock::unix_now() as u64;
    let mut claims = serde_json::json!({
        "iss": keys.issuers[index].iss,
        "sub": sub,
        "iat": now,
        "exp": now + ttl.as_secs(),
        "jti": uuid_like(),
    });
    for c in extra {
        let (k, v) = c
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--claim {c:?}: expected NAME=VALUE"))?;
        let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.into()));
        claims[k] = value;
    }
    println!("{}", keys.sign(index, &claims, None)?);
    Ok(())
}

/// The config's store, with a runtime to use it on. The embedded store is
/// locked while a gateway runs on it (`otherwise` says what to do then);
/// Redis is shared.
fn open_store(
    config: &config::Config,
    otherwise: &str,
) -> anyhow::Result<(tokio::runtime::Runtime, Arc<dyn portero::store::Store>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let metrics = portero::metrics::StoreMetrics::detached();
    let store = runtime
        .block_on(portero::store::open(config, metrics))
        .map_err(|e| {
            anyhow::anyhow!(
                "{e} (is a gateway running on {}? {otherwise})",
                config.server.data_dir.display()
            )
        })?;
    Ok((runtime, store))
}

fn import(
    config: &config::Config,
    issuer: &str,
    file: &Path,
    format: Option<portero::import::Format>,
    partial: bool,
) -> anyhow::Result<()> {
    let (runtime, store) = open_store(config, "stop it to import")?;
    let report = runtime.block_on(portero::import::import(
        config,
        store.as_ref(),
        issuer,
        file,
        format,
        partial,
    ))?;
    for refused in &report.refused {
        eprintln!("refused {refused}");
    }
    for shadowed in &report.shadowed {
        eprintln!("warning {shadowed} is also a principal in the config, which wins at login");
    }
    if !report.written {
        anyhow::bail!(
            "nothing imported: {} of {} rows refused (fix them, or import the rest with --partial)",
            report.refused.len(),
            report.rows
        );
    }
    println!(
        "{}: {} rows for issuer {issuer:?}: {} added, {} changed, {} unchanged, {} refused",
        file.display(),
        report.rows,
        report.upserted.added,
        report.upserted.changed,
        report.unchanged(),
        report.refused.len()
    );
    Ok(())
}

/// 128 random bits, hex encoded: a token id nobody can guess.
fn uuid_like() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
