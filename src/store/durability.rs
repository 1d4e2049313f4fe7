//! Group commit: many writers, one `flush` for all of them.
//!
//! An acknowledged write must survive SIGKILL, so a call may only reply once
//! its writes are flushed. Flushing per call caps throughput at the disk's
//! sync rate; instead every writer takes a ticket after writing, and one
//! background thread flushes whatever has been written so far and publishes
//! the highest ticket it covered. A writer waits until its ticket is
//! covered. Concurrent callers thus share flushes, and the blocking `flush`
//! never runs on the async runtime (sled's `flush_async` deadlocks under
//! concurrency in 0.34).

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use crate::error::{Error, Result};

/// Shared between writers and the flusher thread.
struct Shared {
    /// Highest ticket handed out.
    requested: AtomicU64,
    /// Set when the store shuts down, so the thread exits.
    closed: Mutex<bool>,
    /// Wakes the flusher when a new ticket is taken.
    wake: Condvar,
}

/// Handle that writers use to wait until their writes are on disk.
pub struct GroupCommit {
    shared: Arc<Shared>,
    /// Highest ticket flushed, or the error of the last failed flush.
    flushed: watch::Receiver<Result<u64, String>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GroupCommit {
    /// Starts the flusher thread for `db`.
    pub fn start(db: sled::Db) -> Self {
        let shared = Arc::new(Shared {
            requested: AtomicU64::new(0),
            closed: Mutex::new(false),
            wake: Condvar::new(),
        });
        let (tx, rx) = watch::channel(Ok(0));
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("spoc-flusher".into())
            .spawn(move || flush_loop(db, thread_shared, tx))
            .expect("spawn flusher thread");
        Self {
            shared,
            flushed: rx,
            thread: Some(thread),
        }
    }

    /// Waits until everything written before this call is on disk.
    pub async fn durable(&self) -> Result<()> {
        let ticket = self.shared.requested.fetch_add(1, Ordering::SeqCst) + 1;
        {
            // Take the lock so the notification cannot slip between the
            // flusher's check and its wait.
            let _guard = self.shared.closed.lock();
            self.shared.wake.notify_one();
        }
        let mut rx = self.flushed.clone();
        let outcome = rx
            .wait_for(|state| match state {
                Ok(done) => *done >= ticket,
                Err(_) => true,
            })
            .await
            .map_err(|_| Error::Unavailable("store is shutting down".into()))?;
        match &*outcome {
            Ok(_) => Ok(()),
            Err(reason) => Err(Error::Storage(format!("flush failed: {reason}"))),
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        *self.shared.closed.lock() = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn flush_loop(db: sled::Db, shared: Arc<Shared>, tx: watch::Sender<Result<u64, String>>) {
    let mut done = 0;
    loop {
        {
            let mut closed = shared.closed.lock();
            while !*closed && shared.requested.load(Ordering::SeqCst) <= done {
                shared.wake.wait(&mut closed);
            }
            if *closed && shared.requested.load(Ordering::SeqCst) <= done {
                return;
            }
        }
        // Every write made before a ticket was taken is covered by a flush
        // that starts after the ticket was read.
        let target = shared.requested.load(Ordering::SeqCst);
        match db.flush() {
            Ok(_) => {
                done = target;
                let _ = tx.send(Ok(done));
            }
            Err(err) => {
                // Sticky, as in the write-ahead log: after a failed flush no
                // later success proves earlier writes on disk.
                tracing::error!(error = %err, "store flush failed; writes stop until restart");
                let _ = tx.send(Err(err.to_string()));
                return;
            }
        }
    }
}
