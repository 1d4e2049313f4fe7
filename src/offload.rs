//! Work off the async runtime's workers: the one way to leave them.
//!
//! The runtime has one worker per core and serves every gRPC and HTTP call.
//! A call that computes for milliseconds between two awaits (a batch of a
//! thousand attempts, a POST of xAPI statements), or that blocks its thread
//! (a formation holding a program's lock, a report reading every answer in
//! scope, a file read), holds back every call queued behind it on its
//! worker: health-check p99 went to 50 ms beside xAPI posters. Such work
//! runs on tokio's blocking pool instead, through one of two entry points:
//!
//! - [`cpu`]: pure computation, at most one job per core;
//! - [`blocking`]: work that waits (on the disk, a lock, the log's sync),
//!   at most four jobs per core.
//!
//! Nothing else in the crate calls `spawn_blocking`. Both bound the jobs
//! running at once: a job waiting for its turn is a future and costs no
//! thread. The turn goes with the job: a caller that gives up (a deadline,
//! a disconnect) frees it only when the job, which cannot be stopped, ends.
//! A job that panics is a [`Panicked`] error, which each edge answers as
//! an internal error (`api/status.rs`, `http/error.rs`); in the engine it
//! becomes the crate's [`Error::Storage`], like any failed write.

use std::future::Future;
use std::sync::{Arc, LazyLock};

use tokio::sync::Semaphore;

use crate::error::Error;

/// A job run off the runtime panicked (a bug): the edges answer INTERNAL
/// (gRPC, Connect) or 500 (xAPI).
#[derive(Debug, thiserror::Error)]
#[error("a task off the runtime failed: {0}")]
pub struct Panicked(String);

/// The engine's own offloaded jobs (alert watches, webhook deliveries)
/// return the crate's error: a panic there is a failed storage step.
impl From<Panicked> for Error {
    fn from(err: Panicked) -> Self {
        Error::Storage(err.to_string())
    }
}

/// Cores of this machine (2 if unknown).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Runs `work`, pure CPU (no waiting on a disk or a lock held for long), on
/// the blocking pool, at most one such job per core at a time: more would
/// only preempt each other, possibly while holding the engine's locks.
pub async fn cpu<T, F>(work: F) -> Result<T, Panicked>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    static TURNS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(cores())));
    run(&TURNS, work).await
}

/// Runs `work` to completion on a blocking-pool thread and returns its
/// output. Its synchronous parts may block that thread (an engine call
/// that takes a lock or reads the store); its awaits (a durable write, the
/// log's sync) are driven there. At most four such jobs per core run at
/// once: they also wait, so a few more than the cores keep them busy, and
/// the bound keeps the threads and the memory of parsed requests bounded.
pub async fn blocking<F>(work: F) -> Result<F::Output, Panicked>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    static TURNS: LazyLock<Arc<Semaphore>> =
        LazyLock::new(|| Arc::new(Semaphore::new(4 * cores())));
    let runtime = tokio::runtime::Handle::current();
    run(&TURNS, move || runtime.block_on(work)).await
}

/// Runs `work` on the blocking pool once `turns` grants a turn.
async fn run<T, F>(turns: &Arc<Semaphore>, work: F) -> Result<T, Panicked>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // The semaphores are statics, never closed: a closed one would only
    // mean running without a turn.
    let turn = turns.clone().acquire_owned().await.ok();
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        work()
    })
    .await
    .map_err(|e| Panicked(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boom() -> u8 {
        panic!("boom")
    }

    #[tokio::test]
    async fn results_and_panics_come_back() {
        assert_eq!(cpu(|| 2 + 2).await.unwrap(), 4);
        assert_eq!(blocking(async { 5 }).await.unwrap(), 5);
        let err = cpu(boom).await.unwrap_err();
        assert!(err.to_string().contains("failed"), "{err}");
        assert!(blocking(async { boom() }).await.is_err());
    }
}
