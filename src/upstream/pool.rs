//! Idle upstream connections, per server: a connection goes back to its
//! server's list when a response has been read to its end, is taken again
//! only if the server has sent nothing since, and is closed when it has
//! idled too long. `client` takes and dials connections; `body` reads
//! responses from them and gives them back.

use std::io::ErrorKind;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::BytesMut;
use socket2::SockRef;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::conn::Conn;

/// A connection to a server with the room it reads responses into, kept
/// from one request to the next: reclaimed once the last response's bytes
/// are gone, where a new buffer would be allocated for every response.
/// Boxed once, when dialled: a response body carries it, and a response
/// is moved several times on its way to the client.
pub struct Kept {
    stream: Conn,
    buf: BytesMut,
}

impl Kept {
    pub fn new(stream: Conn) -> Box<Kept> {
        Box::new(Kept {
            stream,
            buf: BytesMut::new(),
        })
    }
}

/// A connection to one server, returned to that server's idle list when a
/// response has been read to its end; dropped (closed) otherwise. Either way
/// its place among the server's requests in flight is given back.
pub struct Pooled {
    kept: Box<Kept>,
    home: Arc<IdleList>,
    _slot: OwnedSemaphorePermit,
}

impl Pooled {
    /// `kept` to a server whose idle list is `home`, holding `slot`, its
    /// place among the server's requests in flight.
    pub fn new(kept: Box<Kept>, home: Arc<IdleList>, slot: OwnedSemaphorePermit) -> Pooled {
        Pooled {
            kept,
            home,
            _slot: slot,
        }
    }

    pub fn stream(&self) -> &Conn {
        &self.kept.stream
    }

    pub fn stream_mut(&mut self) -> &mut Conn {
        &mut self.kept.stream
    }

    /// The room to read the next response into.
    pub fn take_buf(&mut self) -> BytesMut {
        std::mem::take(&mut self.kept.buf)
    }

    /// Back to the idle list, with `buf` (emptied) as its room.
    pub fn release(mut self, buf: BytesMut) {
        self.kept.buf = buf;
        let home = self.home.clone();
        home.put(self.kept);
    }
}

/// One server's idle connections: the most recently used is taken first,
/// at most `max` are kept, and a sweep closes those idle for `timeout`.
pub struct IdleList {
    conns: Mutex<Vec<Idle>>,
    max: usize,
    timeout: Duration,
    sweeping: AtomicBool,
}

struct Idle {
    kept: Box<Kept>,
    since: Instant,
}

impl IdleList {
    pub fn new(max: usize, timeout: Duration) -> IdleList {
        IdleList {
            conns: Mutex::new(Vec::new()),
            max,
            timeout,
            sweeping: AtomicBool::new(false),
        }
    }

    /// The most recently used connection that is still quiet, if any, at `now`.
    pub fn take(&self, now: Instant) -> Option<Box<Kept>> {
        let mut conns = self.conns.lock().expect("not poisoned");
        while let Some(idle) = conns.pop() {
            let idled = now.saturating_duration_since(idle.since);
            if idled < self.timeout && quiet(&idle.kept.stream) {
                return Some(idle.kept);
            }
        }
        None
    }

    fn put(self: &Arc<Self>, kept: Box<Kept>) {
        {
            let mut conns = self.conns.lock().expect("not poisoned");
            if conns.len() >= self.max {
                return;
            }
            conns.push(Idle {
                kept,
                since: Instant::now(),
            });
        }
        if !self.sweeping.swap(true, Ordering::Relaxed) {
            tokio::spawn(sweep(Arc::downgrade(self)));
        }
    }
}

/// Closes idle connections past their time, until the pool is gone.
async fn sweep(list: Weak<IdleList>) {
    let Some(every) = list
        .upgrade()
        .map(|l| (l.timeout / 2).max(Duration::from_millis(10)))
    else {
        return;
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(list) = list.upgrade() else { return };
        let mut conns = list.conns.lock().expect("not poisoned");
        conns.retain(|idle| idle.since.elapsed() < list.timeout);
    }
}

/// An idle connection may carry a request only if the server has neither
/// closed it nor sent anything unasked: bytes there would be read as the
/// next request's response, handing one client another's answer. Asked of
/// the socket itself (a `MSG_PEEK`), not of tokio's readiness: that lags
/// the socket by a turn of the event loop, milliseconds under load, and
/// bytes that had sat there that long reached other clients. (Over TLS,
/// bytes there are records the response did not need: the connection is
/// dropped, never misread.)
fn quiet(stream: &Conn) -> bool {
    let mut probe = [MaybeUninit::<u8>::uninit(); 1];
    matches!(
        SockRef::from(stream.tcp()).peek(&mut probe),
        Err(e) if e.kind() == ErrorKind::WouldBlock
    )
}
