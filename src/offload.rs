//! Long work off the async runtime's workers.
//!
//! The runtime has one worker per core (two here) and serves every gRPC
//! and HTTP call. A call that computes for milliseconds between two awaits
//! (a batch of a thousand attempts, a POST of xAPI statements) holds back
//! every call queued behind it on its worker: health-check p99 went to
//! 50 ms beside xAPI posters. Such work runs on tokio's blocking pool
//! instead, whose threads the kernel schedules next to the workers.

use std::future::Future;
use std::sync::{Arc, LazyLock};

use tokio::sync::Semaphore;

/// Cores of this machine (2 if unknown).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Runs `work` to completion on a blocking-pool thread (its awaits are
/// driven there) and returns its output; `Err` if it panicked. At most
/// four such jobs per core run at once: they also wait (for the log's
/// sync), so a few more than the cores keep them busy, and a bound keeps
/// the threads and the memory of parsed requests bounded. The turn goes
/// with the job: a caller that gives up (a deadline, a disconnect) frees
/// it only when the job, which cannot be stopped, ends.
pub async fn offload<F>(work: F) -> Result<F::Output, tokio::task::JoinError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    static TURNS: LazyLock<Arc<Semaphore>> =
        LazyLock::new(|| Arc::new(Semaphore::new(4 * cores())));
    let turn = TURNS.clone().acquire_owned().await.expect("never closed");
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        runtime.block_on(work)
    })
    .await
}

/// Runs `work`, pure CPU (no waiting on a disk or a lock held for long), on
/// the blocking pool, at most one such job per core at a time: more would
/// only preempt each other, possibly while holding the engine's locks,
/// whereas a batch waiting for its turn is a future and costs no thread.
/// The turn goes with the job, as in [`offload`].
pub async fn offload_cpu<T, F>(work: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    static TURNS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(cores())));
    let turn = TURNS.clone().acquire_owned().await.expect("never closed");
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        work()
    })
    .await
}
