//! Long work off the async runtime's workers.
//!
//! The runtime has one worker per core (two here) and serves every gRPC
//! and HTTP call. A call that computes for milliseconds between two awaits
//! (a batch of a thousand attempts, a POST of xAPI statements) holds back
//! every call queued behind it on its worker: health-check p99 went to
//! 50 ms beside xAPI posters. Such work runs on tokio's blocking pool
//! instead, whose threads the kernel schedules next to the workers.

use std::future::Future;
use std::sync::LazyLock;

use tokio::sync::Semaphore;

/// Runs `work` to completion on a blocking-pool thread (its awaits are
/// driven there) and returns its output; `Err` if it panicked.
pub async fn offload<F>(work: F) -> Result<F::Output, tokio::task::JoinError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(work)).await
}

/// Runs `work`, pure CPU (no waiting on a disk or a lock held for long), on
/// the blocking pool, at most one such job per core at a time: more
/// threads than cores would only preempt each other, often while holding
/// the engine's locks (measured: 64 threads at once cost 60% more CPU per
/// batch of 100 attempts). Waiting for a turn costs no thread.
pub async fn offload_cpu<T, F>(work: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    static TURNS: LazyLock<Semaphore> = LazyLock::new(|| {
        Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    });
    let _turn = TURNS.acquire().await.expect("never closed");
    tokio::task::spawn_blocking(work).await
}
