//! A real HTTP upstream (hyper) that answers with the request it received.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::task::AbortHandle;

/// A real HTTP upstream that answers with the request it received, plus its name.
pub struct Upstream {
    pub addr: SocketAddr,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
    open: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    /// What `GET /healthz` answers, and what every other request does.
    health: Arc<AtomicU16>,
    status: Arc<AtomicU16>,
}

/// Extra headers an upstream adds to every response.
type Extra = &'static [(&'static str, &'static str)];

impl Upstream {
    pub async fn start(name: &'static str) -> Upstream {
        Self::start_with_delay(name, Duration::ZERO).await
    }

    pub async fn start_with_delay(name: &'static str, delay: Duration) -> Upstream {
        Self::start_at(name, delay, "127.0.0.1:0".parse().unwrap()).await
    }

    /// On a given address: a killed upstream started again where it was.
    pub async fn start_at(name: &'static str, delay: Duration, addr: SocketAddr) -> Upstream {
        Self::launch(name, delay, addr, &[]).await
    }

    /// One that adds `headers` to every response (e.g. CORS headers of its own).
    pub async fn start_with_headers(name: &'static str, headers: Extra) -> Upstream {
        Self::launch(
            name,
            Duration::ZERO,
            "127.0.0.1:0".parse().unwrap(),
            headers,
        )
        .await
    }

    async fn launch(
        name: &'static str,
        delay: Duration,
        addr: SocketAddr,
        extra: Extra,
    ) -> Upstream {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let open: Arc<AtomicUsize> = Arc::default();
        let requests: Arc<AtomicUsize> = Arc::default();
        let health = Arc::new(AtomicU16::new(200));
        let status = Arc::new(AtomicU16::new(200));
        let (health_now, status_now) = (health.clone(), status.clone());
        let conns = tasks.clone();
        let counter = open.clone();
        let served = requests.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                let served = served.clone();
                let (health_now, status_now) = (health_now.clone(), status_now.clone());
                counter.fetch_add(1, Ordering::SeqCst);
                let conn = tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let health_check = req.uri().path() == "/healthz";
                        let status = if health_check {
                            health_now.load(Ordering::SeqCst)
                        } else {
                            served.fetch_add(1, Ordering::SeqCst);
                            status_now.load(Ordering::SeqCst)
                        };
                        async move {
                            tokio::time::sleep(delay).await;
                            let (parts, body) = req.into_parts();
                            // Read the whole body, as a real server would.
                            let received = http_body_util::BodyExt::collect(body)
                                .await
                                .map(|b| b.to_bytes().len());
                            let mut body = portero::echo::describe(&parts);
                            body["upstream"] = json!(name);
                            body["body_bytes"] = json!(received.ok());
                            let mut response = Response::builder()
                                .status(status)
                                .header("content-type", "application/json");
                            for (name, value) in extra {
                                response = response.header(*name, *value);
                            }
                            Ok::<_, Infallible>(
                                response
                                    .body(Full::new(Bytes::from(body.to_string())))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    counter.fetch_sub(1, Ordering::SeqCst);
                });
                conns.lock().unwrap().push(conn.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        Upstream {
            addr,
            tasks,
            open,
            requests,
            health,
            status,
        }
    }

    /// `GET /healthz` answers `status` from now on.
    pub fn set_health(&self, status: u16) {
        self.health.store(status, Ordering::SeqCst);
    }

    /// Every other request gets `status` from now on.
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Requests this upstream has been sent (health checks aside).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Connections the gateway holds open to this upstream now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Stops listening and drops every open connection, like a killed process.
    pub fn kill(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.kill();
    }
}
