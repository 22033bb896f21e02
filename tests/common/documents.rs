//! Client ID metadata documents served over HTTPS on loopback, as an
//! application publishes its own: a test sets what each path answers
//! (status, headers, body, a delay) and reads how often each was fetched
//! and the most fetches ever in flight at once.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::task::AbortHandle;

use super::idp::acceptor;
use super::tls::Ca;

/// What one path answers.
#[derive(Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    /// `200` with `body` as JSON.
    pub fn json(body: String) -> Answer {
        Answer {
            status: 200,
            headers: vec![("content-type", "application/json".into())],
            body,
            delay: Duration::ZERO,
        }
    }
}

#[derive(Default)]
struct State {
    answers: Mutex<HashMap<String, Answer>>,
    fetches: Mutex<HashMap<String, usize>>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

pub struct DocumentServer {
    pub addr: SocketAddr,
    /// The CA its certificate (for `localhost` and `127.0.0.1`) chains to.
    pub ca: Ca,
    state: Arc<State>,
    task: AbortHandle,
}

impl Drop for DocumentServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DocumentServer {
    pub async fn start() -> DocumentServer {
        let ca = Ca::new("documents-ca");
        let leaf = ca.leaf("documents", &["localhost", "127.0.0.1"]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let acceptor = acceptor(&leaf);
        let serving = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (state, acceptor) = (serving.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(state.answer(req.uri().path()).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        })
        .abort_handle();
        DocumentServer {
            addr,
            ca,
            state,
            task,
        }
    }

    /// The URL of `path` on `localhost`.
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    pub fn set(&self, path: &str, answer: Answer) {
        self.state
            .answers
            .lock()
            .unwrap()
            .insert(path.to_string(), answer);
    }

    pub fn fetches(&self, path: &str) -> usize {
        *self.state.fetches.lock().unwrap().get(path).unwrap_or(&0)
    }

    pub fn most_in_flight(&self) -> usize {
        self.state.most_in_flight.load(Ordering::SeqCst)
    }
}

impl State {
    async fn answer(&self, path: &str) -> Response<Full<Bytes>> {
        *self
            .fetches
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default() += 1;
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        let answer = self.answers.lock().unwrap().get(path).cloned();
        let answer = answer.unwrap_or(Answer {
            status: 404,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        });
        tokio::time::sleep(answer.delay).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut response = Response::builder().status(answer.status);
        for (name, value) in &answer.headers {
            response = response.header(*name, value);
        }
        response.body(Full::new(Bytes::from(answer.body))).unwrap()
    }
}
