//! The process's signals as what they ask of a running gateway: SIGTERM a
//! drain, SIGINT a stop, SIGHUP a reload.

use tokio::sync::mpsc;

use super::ServerError;

/// How a running gateway is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Report not ready, keep serving for the grace period (so load
    /// balancers notice), then stop accepting and give open requests the
    /// shutdown timeout to finish.
    Drain,
    /// Stop at once, also in the middle of a drain.
    Now,
}

/// What the process's signals ask of a running gateway.
pub struct Signals {
    pub stop: mpsc::UnboundedReceiver<Stop>,
    /// One message per SIGHUP: reload the config (as `POST /admin/reload`).
    pub reload: mpsc::UnboundedReceiver<()>,
}

/// SIGTERM as [`Stop::Drain`], SIGINT as [`Stop::Now`], SIGHUP as a reload,
/// forwarded by a thread of their own; the handlers are in place when this
/// returns (so a SIGHUP during start-up is a reload, not the end).
pub fn handle_signals() -> Result<Signals, ServerError> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = mpsc::unbounded_channel();
    let (reload_tx, reload_rx) = mpsc::unbounded_channel();
    let (registered, result) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("portero-signals".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => return drop(registered.send(Err(e))),
            };
            runtime.block_on(async move {
                let handlers = signal(SignalKind::terminate()).and_then(|t| {
                    Ok((
                        t,
                        signal(SignalKind::interrupt())?,
                        signal(SignalKind::hangup())?,
                    ))
                });
                let (mut terminate, mut interrupt, mut hangup) = match handlers {
                    Ok(h) => h,
                    Err(e) => return drop(registered.send(Err(e))),
                };
                let _ = registered.send(Ok(()));
                loop {
                    let stop = tokio::select! {
                        _ = terminate.recv() => Stop::Drain,
                        _ = interrupt.recv() => Stop::Now,
                        _ = hangup.recv() => {
                            let _ = reload_tx.send(());
                            continue;
                        }
                    };
                    if tx.send(stop).is_err() {
                        return;
                    }
                }
            })
        })
        .map_err(ServerError::Signals)?;
    match result.recv() {
        Ok(Ok(())) => Ok(Signals {
            stop: rx,
            reload: reload_rx,
        }),
        Ok(Err(e)) => Err(ServerError::Signals(e)),
        Err(_) => Err(ServerError::Signals(std::io::Error::other(
            "signal thread ended",
        ))),
    }
}
