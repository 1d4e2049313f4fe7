//! Cost classes: expensive calls (reports, cohort formation, fits,
//! exports, backups) get their own small admission limit, so that a crowd
//! of them cannot exhaust memory or starve cheap calls.
//!
//! Each of these calls reads a whole program, the whole store or every
//! attempt of a skill, and holds its result in memory while it answers.
//! At most [`EXPENSIVE_AT_ONCE`] run at a time per process; up to
//! [`EXPENSIVE_QUEUE`] more wait for a turn; any further one is refused at
//! once with RESOURCE_EXHAUSTED (no work done, no memory taken), which a
//! client retries with backoff. Cheap calls never wait here.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

/// Expensive calls running at once, per process.
pub const EXPENSIVE_AT_ONCE: usize = 2;
/// Expensive calls waiting for a turn before new ones are refused.
pub const EXPENSIVE_QUEUE: usize = 4;

/// The methods of the expensive class.
pub const EXPENSIVE: [&str; 7] = [
    "/spoc.v1.ReportService/GetCohortReport",
    "/spoc.v1.ReportService/GetProgramReport",
    "/spoc.v1.CohortService/FormCohorts",
    "/spoc.v1.MasteryService/FitModel",
    "/spoc.v1.LearnerService/ExportLearner",
    "/spoc.v1.BackupService/CreateBackup",
    "/spoc.v1.CohortService/AssignLateEnrolment",
];

/// Whether `method` (a gRPC path) is of the expensive class.
pub fn is_expensive(method: &str) -> bool {
    EXPENSIVE.contains(&method)
}

/// The admission of expensive calls, shared by both listeners.
#[derive(Debug, Clone)]
pub struct Admission {
    running: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
}

impl Default for Admission {
    fn default() -> Self {
        Self {
            running: Arc::new(Semaphore::new(EXPENSIVE_AT_ONCE)),
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Admission {
    /// A turn for an expensive call: at once if one is free, after the
    /// calls ahead if the queue has room, RESOURCE_EXHAUSTED otherwise.
    pub async fn enter(&self, method: &str) -> Result<OwnedSemaphorePermit, Status> {
        if let Ok(permit) = self.running.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let queued = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = Leave(&self.waiting);
        if queued >= EXPENSIVE_QUEUE {
            return Err(Status::resource_exhausted(format!(
                "{method} is an expensive call and {EXPENSIVE_AT_ONCE} run while \
                 {EXPENSIVE_QUEUE} wait: retry with backoff"
            )));
        }
        self.running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("server shutting down"))
    }
}

/// Leaves the queue when dropped (a turn came, or the caller went away).
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beyond_the_running_and_waiting_calls_refuses_at_once() {
        let admission = Admission::default();
        let running: Vec<_> = futures_like_join(&admission, EXPENSIVE_AT_ONCE).await;
        let waiting: Vec<_> = (0..EXPENSIVE_QUEUE)
            .map(|_| {
                let a = admission.clone();
                tokio::spawn(async move { a.enter("m").await.map(drop) })
            })
            .collect();
        while admission.waiting.load(Ordering::SeqCst) < EXPENSIVE_QUEUE {
            tokio::task::yield_now().await;
        }
        let refused = admission.enter("m").await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        drop(running);
        for w in waiting {
            w.await.unwrap().unwrap();
        }
        assert!(admission.enter("m").await.is_ok());
    }

    async fn futures_like_join(admission: &Admission, n: usize) -> Vec<OwnedSemaphorePermit> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(admission.enter("m").await.unwrap());
        }
        out
    }
}
