//! The executor hyper's HTTP/2, server and client, spawns its tasks on:
//! each future boxed. hyper hands over whole futures (the server a task
//! for each stream, holding its request's; the client one for each
//! response and one for each request body still to send); tokio's spawn
//! would copy such a future at each of its steps, where a box moves a
//! pointer (BENCHMARKS.md). HTTP/1.1 keeps each request's future in its
//! connection's task, unmoved.

use std::future::Future;

#[derive(Clone, Copy)]
pub struct BoxingExecutor;

impl<F> hyper::rt::Executor<F> for BoxingExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        tokio::spawn(Box::pin(future));
    }
}
