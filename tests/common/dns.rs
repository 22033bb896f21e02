//! A name server on loopback UDP for the upstream-resolution tests: it
//! answers `A` questions for any name from a list the test changes, with a
//! one-second TTL, or fails every question while told to.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::AbortHandle;

pub struct NameServer {
    pub addr: SocketAddr,
    /// `None`: every question gets `SERVFAIL`.
    answers: Arc<Mutex<Option<Vec<Ipv4Addr>>>>,
    task: AbortHandle,
}

impl NameServer {
    pub async fn start(answers: &[Ipv4Addr]) -> NameServer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let list = Arc::new(Mutex::new(Some(answers.to_vec())));
        let shared = list.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let Ok(question) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let answers = shared.lock().unwrap().clone();
                let reply = answer(&question, answers.as_deref());
                let _ = socket.send_to(&reply.to_vec().unwrap(), from).await;
            }
        });
        NameServer {
            addr,
            answers: list,
            task: task.abort_handle(),
        }
    }

    /// Answers with `addrs` from now on.
    pub fn set(&self, addrs: &[Ipv4Addr]) {
        *self.answers.lock().unwrap() = Some(addrs.to_vec());
    }

    /// Fails every question from now on.
    pub fn fail(&self) {
        *self.answers.lock().unwrap() = None;
    }
}

impl Drop for NameServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(question: &Message, addrs: Option<&[Ipv4Addr]>) -> Message {
    let mut reply = Message::new();
    reply
        .set_id(question.id())
        .set_message_type(MessageType::Response)
        .set_op_code(question.op_code())
        .set_recursion_desired(question.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    for q in question.queries() {
        reply.add_query(q.clone());
    }
    let Some(addrs) = addrs else {
        reply.set_response_code(ResponseCode::ServFail);
        return reply;
    };
    for q in question.queries() {
        if q.query_type() == RecordType::A {
            for ip in addrs {
                reply.add_answer(Record::from_rdata(q.name().clone(), 1, RData::A(A(*ip))));
            }
        }
    }
    reply
}
