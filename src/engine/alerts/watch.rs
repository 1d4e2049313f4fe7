//! Live watching: the active alerts or the changes since a position,
//! then every change as published, with catch-up from the log when a
//! watcher lags.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, watch};

use super::super::Engine;
use super::{AlertScope, WATCH_BUFFER, WatchEvent};
use crate::domain::alerts::Alert;
use crate::error::{Error, Result};
use crate::offload;

/// Log entries read per catch-up step.
const CATCH_UP_BATCH: usize = 1000;

impl Engine {
    /// Starts a watch: checks the scope and position, then streams the
    /// active alerts in scope (or every change after `after_sequence`)
    /// followed by live changes, on a bounded channel fed by a task of its
    /// own. A slow reader only slows its own task; ingestion never waits.
    pub fn watch_alerts(
        self: &Arc<Self>,
        scope: AlertScope,
        after_sequence: u64,
    ) -> Result<mpsc::Receiver<Result<WatchEvent>>> {
        for cohort in &scope.cohorts {
            if self.store.cohort(cohort)?.is_none() {
                return Err(Error::not_found("cohort", cohort.clone()));
            }
        }
        if let Some(program) = &scope.program {
            self.program(program)?;
        }
        // Subscribe before reading the state: nothing falls in between.
        let receiver = self.hub().sender.subscribe();
        let latest = self.alert_sequence();
        if after_sequence > latest {
            return Err(Error::invalid(
                "after_sequence",
                format!("is beyond the latest alert sequence {latest}"),
            ));
        }
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let engine = self.clone();
        let stopped = self.hub().stopped.subscribe();
        tokio::spawn(async move {
            if let Err(err) = engine
                .run_watch(scope, after_sequence, receiver, stopped, &tx)
                .await
            {
                let _ = tx.send(Err(err)).await;
            }
        });
        Ok(rx)
    }

    /// The body of one watch; returns when the client is gone, the server
    /// stops, or a read fails.
    async fn run_watch(
        self: Arc<Self>,
        scope: AlertScope,
        after_sequence: u64,
        mut receiver: broadcast::Receiver<Arc<Alert>>,
        mut stopped: watch::Receiver<bool>,
        tx: &mpsc::Sender<Result<WatchEvent>>,
    ) -> Result<()> {
        let send = |alert: Arc<Alert>, snapshot: bool| async move {
            tx.send(Ok(WatchEvent { alert, snapshot })).await.is_ok()
        };
        if *stopped.borrow_and_update() {
            return Ok(());
        }
        let mut last = if after_sequence == 0 {
            // The snapshot and its sequence are read under the sequence
            // lock, so they describe one moment.
            let engine = self.clone();
            let (latest, active) = offload::blocking(async move {
                let mut sequence_state = engine.hub().sequence.lock();
                // Only durable changes may be shown: publish what waits.
                engine.publish(&mut sequence_state)?;
                engine
                    .store
                    .all_active_alerts()
                    .map(|a| (sequence_state.last, a))
            })
            .await??;
            let mut active: Vec<Alert> = active.into_iter().filter(|a| scope.matches(a)).collect();
            active.sort_by_key(|a| a.sequence);
            for alert in active {
                if !send(Arc::new(alert), true).await {
                    return Ok(());
                }
            }
            latest
        } else {
            after_sequence
        };
        // Replay the log from `last`, then follow the channel; a lag sends
        // us back to the log.
        let mut catch_up = after_sequence != 0;
        loop {
            if catch_up {
                loop {
                    let engine = self.clone();
                    let from = last;
                    let batch = offload::blocking(async move {
                        // Read after subscribing (and off the runtime: a
                        // flush may hold the lock): a change past this
                        // bound is published later, so the channel brings it.
                        let through = engine.hub().sequence.lock().durable();
                        engine
                            .store
                            .alert_changes_after(from, through, CATCH_UP_BATCH)
                    })
                    .await??;
                    let done = batch.len() < CATCH_UP_BATCH;
                    for alert in batch {
                        last = alert.sequence;
                        if scope.matches(&alert) && !send(Arc::new(alert), false).await {
                            return Ok(());
                        }
                    }
                    if done {
                        break;
                    }
                }
                catch_up = false;
            }
            tokio::select! {
                received = receiver.recv() => match received {
                    Ok(alert) => {
                        if alert.sequence <= last {
                            continue;
                        }
                        last = alert.sequence;
                        if scope.matches(&alert) && !send(alert, false).await {
                            return Ok(());
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => catch_up = true,
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
                _ = stopped.changed() => return Ok(()),
                _ = tx.closed() => return Ok(()),
            }
        }
    }
}
