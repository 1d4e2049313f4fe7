//! Webhook delivery of alert changes: subscriptions, the follower that
//! fills the outbox, the delivery worker, daily digests.
//!
//! - `follow.rs` follows the alert changes the way `WatchAlerts` does (the
//!   alert hub's broadcast channel, the alert log to catch up) and fans
//!   each change out to the subscriptions that want it, writing messages
//!   (or digest rows) and its log position in one store transaction
//!   (`store/outbox.rs`): a restart resumes from that position.
//! - `deliver.rs` posts due messages, signed (Standard Webhooks), retries
//!   failures with exponential backoff for 24 hours and then keeps them as
//!   dead letters.
//! - `resolve.rs` checks targets against server-side request forgery, at
//!   creation and at every delivery, after DNS resolution.
//! - `digest.rs` closes daily digests at each subscription's hour.
//!
//! Delivery is at least once: a message is removed only after its receiver
//! answered 2xx, and a crash in between sends it again with the same
//! `webhook-id`.

mod deliver;
mod digest;
mod follow;
pub mod resolve;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, watch};

use super::{Engine, now_micros};
use crate::domain::access::Principal;
use crate::domain::learner::Micros;
use crate::domain::webhooks::retry::RetryPolicy;
use crate::domain::webhooks::{
    DeadLetter, Delivery, Subscription, SubscriptionSpec, schedule, signature,
};
use crate::error::{Error, Result};
use crate::offload;
use crate::store::outbox::Dropped;
use crate::store::{Page, Store};
use resolve::{HostResolver, SystemResolver};

/// Most subscriptions one key may hold.
pub const MAX_SUBSCRIPTIONS_PER_KEY: usize = 100;

/// Most subscriptions in all: every alert change is matched against each.
pub const MAX_SUBSCRIPTIONS: usize = 10_000;

/// Most programs, and most cohorts, one subscription may name.
pub const MAX_FILTER_IDS: usize = 1000;

/// Longest URL accepted.
pub const MAX_URL_BYTES: usize = 2048;

/// Digest hour when a digest subscription names none.
pub const DEFAULT_DIGEST_HOUR: u8 = 8;

/// What the operator decides about webhook delivery (`spoc serve` flags;
/// tests shorten the retry schedule).
#[derive(Clone)]
pub struct WebhookOptions {
    /// Allow targets on private, loopback and other non-public addresses,
    /// and plain http (`--webhook-allow-private`): for a receiver on the
    /// same host or network, and for tests.
    pub allow_private: bool,
    /// The retry schedule.
    pub retry: RetryPolicy,
    /// Longest a delivery attempt may take (connection, TLS, reply).
    pub request_timeout: Duration,
    /// How often digest subscriptions are checked for a due digest.
    pub digest_check: Duration,
    /// How target host names are resolved (the system's resolver; tests
    /// substitute their own).
    pub resolver: Arc<dyn HostResolver>,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        Self {
            allow_private: false,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(10),
            digest_check: Duration::from_secs(30),
            resolver: Arc::new(SystemResolver),
        }
    }
}

impl std::fmt::Debug for WebhookOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookOptions")
            .field("allow_private", &self.allow_private)
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .field("digest_check", &self.digest_check)
            .finish_non_exhaustive()
    }
}

/// A subscription with its delivery state, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionView {
    /// The stored subscription (its secret is never shown again).
    pub subscription: Arc<Subscription>,
    /// Whether its key is still active.
    pub active: bool,
    /// Messages waiting.
    pub pending: u64,
    /// Dead letters.
    pub dead_letters: u64,
}

/// Delivery figures for `/metrics` and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Messages delivered since start.
    pub delivered: u64,
    /// Failed attempts that will be retried, since start.
    pub retried: u64,
    /// Messages given up since start.
    pub dead_lettered: u64,
    /// Messages waiting now.
    pub pending: u64,
    /// Dead letters kept now.
    pub dead_letters: u64,
    /// Alert log position fanned out to subscriptions.
    pub cursor: u64,
}

/// The webhook state of a running engine.
pub struct WebhookHub {
    options: RwLock<WebhookOptions>,
    /// Bumped by every options change: the worker rebuilds its client.
    options_version: AtomicU64,
    /// Every subscription, in id order (read by each fan-out).
    subscriptions: RwLock<Arc<Vec<Arc<Subscription>>>>,
    /// Serializes fan-outs, digests and subscription writes: a fan-out
    /// sees a subscription whole or not at all, and a deletion leaves no
    /// row behind.
    writes: Mutex<()>,
    /// Wakes the delivery worker: new messages.
    wake: Notify,
    /// Subscriptions whose last attempt failed, with the time before which
    /// their receiver asked not to be tried (`Retry-After`; 0 when it did
    /// not): at the next success their backlog is brought forward to now,
    /// or to that time.
    failing: Mutex<HashMap<String, Micros>>,
    /// Held by the delivery worker from reading due messages to counting
    /// them in flight, and by the re-keying of a subscription's waiting
    /// messages when its receiver answers again: a message read due is not
    /// moved to a new key before it is in flight, where a second read would
    /// find it and deliver it twice.
    picking: Mutex<()>,
    delivered: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    /// The alert log position fanned out, mirrored from the store.
    cursor: AtomicU64,
    started: AtomicBool,
    stop: watch::Sender<bool>,
    /// The follower and worker tasks, awaited at shutdown.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl WebhookHub {
    /// Loads the subscriptions; on a store that never fanned out, starts
    /// after the alert log's last change (nothing before is owed).
    pub fn new(store: &Store) -> Result<Self> {
        let cursor = match store.webhook_cursor()? {
            Some(cursor) => cursor,
            None => {
                let last = store.last_alert_sequence()?;
                store.set_webhook_cursor(last)?;
                last
            }
        };
        let subscriptions = store
            .webhook_subscriptions()?
            .into_iter()
            .map(Arc::new)
            .collect();
        Ok(Self {
            options: RwLock::new(WebhookOptions::default()),
            options_version: AtomicU64::new(0),
            subscriptions: RwLock::new(Arc::new(subscriptions)),
            writes: Mutex::new(()),
            wake: Notify::new(),
            failing: Mutex::new(HashMap::new()),
            picking: Mutex::new(()),
            delivered: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            cursor: AtomicU64::new(cursor),
            started: AtomicBool::new(false),
            stop: watch::channel(false).0,
            tasks: Mutex::new(Vec::new()),
        })
    }

    fn options(&self) -> WebhookOptions {
        self.options.read().clone()
    }

    /// When a new message of `subscription` may go: `now`, or later while
    /// its receiver's `Retry-After` runs (a new message must not knock on a
    /// door that asked for quiet).
    fn due_for(&self, subscription: &str, now: Micros) -> Micros {
        self.failing
            .lock()
            .get(subscription)
            .map_or(now, |&not_before| not_before.max(now))
    }

    fn subscriptions(&self) -> Arc<Vec<Arc<Subscription>>> {
        self.subscriptions.read().clone()
    }

    fn subscription(&self, id: &str) -> Option<Arc<Subscription>> {
        let all = self.subscriptions();
        all.binary_search_by(|s| s.id.as_str().cmp(id))
            .ok()
            .map(|i| all[i].clone())
    }

    fn replace_subscriptions(&self, update: impl FnOnce(&mut Vec<Arc<Subscription>>)) {
        let mut guard = self.subscriptions.write();
        let mut all = guard.as_ref().clone();
        update(&mut all);
        all.sort_by(|a, b| a.id.cmp(&b.id));
        *guard = Arc::new(all);
    }
}

/// Whether `who` may see and delete `subscription`: admins and managers
/// every one, a scoped key those it made.
fn owns(who: &Principal, subscription: &Subscription) -> bool {
    !who.is_scoped() || subscription.key_id == who.key_id
}

impl Engine {
    fn webhooks(&self) -> &WebhookHub {
        &self.webhooks
    }

    /// Sets the delivery options; they apply to subscriptions created and
    /// attempts started from now on (the worker rebuilds its client).
    pub fn set_webhook_options(&self, options: WebhookOptions) {
        let hub = self.webhooks();
        *hub.options.write() = options;
        hub.options_version.fetch_add(1, Ordering::SeqCst);
        hub.wake.notify_one();
    }

    /// Creates a subscription for `who`: checks the programs and cohorts
    /// it names, the target (scheme, address after DNS resolution), the
    /// limits; returns it with its secret's text form, shown this once.
    pub async fn create_subscription(
        self: &Arc<Self>,
        who: &Principal,
        mut spec: SubscriptionSpec,
    ) -> Result<(Subscription, String)> {
        for (i, program) in spec.program_ids.iter().enumerate() {
            if self.store.program(program)?.is_none() {
                return Err(Error::not_found_at(
                    format!("program_ids[{i}]"),
                    "program",
                    program,
                ));
            }
        }
        for (i, cohort) in spec.cohort_ids.iter().enumerate() {
            if self.store.cohort(cohort)?.is_none() {
                return Err(Error::not_found_at(
                    format!("cohort_ids[{i}]"),
                    "cohort",
                    cohort,
                ));
            }
        }
        let options = self.webhooks().options();
        spec.url =
            resolve::check_target(&spec.url, options.allow_private, options.resolver.as_ref())
                .await
                .map_err(|reason| Error::invalid("url", reason))?
                .to_string();
        let now = now_micros();
        let digest_from = match &spec.delivery {
            Delivery::Immediate => None,
            Delivery::DailyDigest { hour, time_zone } => {
                Some(schedule::last_slot(now, *hour, time_zone)?)
            }
        };
        let mut secret = vec![0u8; signature::SECRET_BYTES];
        fill_random(&mut secret)?;
        let mut id = [0u8; 8];
        fill_random(&mut id)?;
        let engine = self.clone();
        let who = who.clone();
        let subscription = offload::blocking(async move {
            let hub = engine.webhooks();
            let _writes = hub.writes.lock();
            let all = hub.subscriptions();
            if all.len() >= MAX_SUBSCRIPTIONS {
                return Err(Error::FailedPrecondition(format!(
                    "the server holds {MAX_SUBSCRIPTIONS} subscriptions already; delete one first"
                )));
            }
            if all.iter().filter(|s| s.key_id == who.key_id).count() >= MAX_SUBSCRIPTIONS_PER_KEY {
                return Err(Error::FailedPrecondition(format!(
                    "this API key holds {MAX_SUBSCRIPTIONS_PER_KEY} subscriptions already; \
                     delete one first"
                )));
            }
            let subscription = Subscription {
                id: format!("sub_{}", hex(&id)),
                spec,
                created_at: now,
                key_id: who.key_id.clone(),
                key_name: who.name.clone(),
                role: who.role,
                scope: who.scope.clone(),
                // Read under the fan-out lock: every later change is
                // fanned out after this subscription is in the list.
                from_sequence: engine.alert_sequence(),
                secret,
            };
            engine
                .store
                .create_subscription(&subscription, digest_from)?;
            let stored = Arc::new(subscription.clone());
            hub.replace_subscriptions(|all| all.push(stored));
            Ok(subscription)
        })
        .await??;
        self.store.durable().await?;
        tracing::info!(
            subscription = %subscription.id,
            key = %subscription.key_id,
            "webhook subscription created"
        );
        let secret = signature::encode_secret(&subscription.secret);
        Ok((subscription, secret))
    }

    /// A page of the subscriptions `who` may see, in id order, after the
    /// id `after`.
    pub fn list_subscriptions(
        &self,
        who: &Principal,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<SubscriptionView>, Option<String>)> {
        let all = self.webhooks().subscriptions();
        let mut visible = all
            .iter()
            .filter(|s| after.is_none_or(|a| s.id.as_str() > a) && owns(who, s));
        let page: Vec<Arc<Subscription>> = visible.by_ref().take(limit).cloned().collect();
        let next = match visible.next() {
            Some(_) => page.last().map(|s| s.id.clone()),
            None => None,
        };
        let pending = self.store.pending_messages()?;
        let dead = self.store.dead_letter_counts()?;
        let views = page
            .into_iter()
            .map(|s| SubscriptionView {
                active: self.key_is_active(&s.key_id),
                pending: pending.get(&s.id).copied().unwrap_or(0),
                dead_letters: dead.get(&s.id).copied().unwrap_or(0),
                subscription: s,
            })
            .collect();
        Ok((views, next))
    }

    /// Deletes a subscription `who` may see, with its waiting messages,
    /// dead letters and digest rows, and returns once that is on disk;
    /// NOT_FOUND otherwise. Blocking: call it off the async workers.
    pub async fn delete_subscription(&self, who: &Principal, id: &str) -> Result<Dropped> {
        let dropped = self.delete_subscription_locked(who, id)?;
        self.store.durable().await?;
        Ok(dropped)
    }

    /// [`Engine::delete_subscription`] under the writes' lock, before the
    /// wait for the disk.
    fn delete_subscription_locked(&self, who: &Principal, id: &str) -> Result<Dropped> {
        let hub = self.webhooks();
        let _writes = hub.writes.lock();
        match hub.subscription(id) {
            Some(s) if owns(who, &s) => {}
            _ => return Err(Error::not_found("subscription", id)),
        }
        hub.replace_subscriptions(|all| all.retain(|s| s.id != id));
        let dropped = self.store.delete_subscription(id)?.unwrap_or_default();
        hub.failing.lock().remove(id);
        tracing::info!(subscription = %id, "webhook subscription deleted");
        Ok(dropped)
    }

    /// Puts the dead letters of `subscription` (all, or those of `ids`)
    /// back in the outbox, due now with a fresh retry window (the receiver
    /// was mended); NOT_FOUND if the subscription is unknown or not
    /// `who`'s. Returns how many went back, once on disk.
    pub async fn redeliver_dead_letters(
        &self,
        who: &Principal,
        subscription: &str,
        ids: &[String],
    ) -> Result<u64> {
        let hub = self.webhooks();
        match hub.subscription(subscription) {
            Some(s) if owns(who, &s) => {
                // Its messages would be dropped unsent: keep them listed.
                if !self.key_is_active(&s.key_id) {
                    return Err(Error::FailedPrecondition(format!(
                        "subscription_id: subscription '{subscription}' was created by a revoked \
                         key and delivers nothing; create it again with an active key"
                    )));
                }
            }
            _ => return Err(Error::not_found("subscription", subscription)),
        }
        let requeued = self
            .store
            .requeue_dead_letters(subscription, ids, now_micros())?;
        self.store.durable().await?;
        if requeued > 0 {
            tracing::info!(subscription = %subscription, messages = requeued, "dead letters put back in the outbox");
            hub.wake.notify_one();
        }
        Ok(requeued)
    }

    /// A page of the dead letters of `subscription` (or of every one `who`
    /// may see), after the store key `after`.
    pub fn list_dead_letters(
        &self,
        who: &Principal,
        subscription: Option<&str>,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<DeadLetter>> {
        let hub = self.webhooks();
        if let Some(id) = subscription {
            match hub.subscription(id) {
                Some(s) if owns(who, &s) => {}
                _ => return Err(Error::not_found("subscription", id)),
            }
        }
        let mine: Option<HashSet<String>> = who.is_scoped().then(|| {
            hub.subscriptions()
                .iter()
                .filter(|s| owns(who, s))
                .map(|s| s.id.clone())
                .collect()
        });
        self.store.dead_letters(
            subscription,
            |letter| {
                mine.as_ref()
                    .is_none_or(|m| m.contains(&letter.message.subscription_id))
            },
            after,
            limit,
        )
    }

    /// Starts the follower and the delivery worker on the current tokio
    /// runtime. Idempotent.
    pub fn start_webhooks(self: &Arc<Self>) -> Result<()> {
        let hub = self.webhooks();
        if hub.started.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        hub.stop.send_replace(false);
        let mut tasks = hub.tasks.lock();
        tasks.push(tokio::spawn(follow::run(
            self.clone(),
            hub.stop.subscribe(),
        )));
        tasks.push(tokio::spawn(deliver::run(
            self.clone(),
            hub.stop.subscribe(),
        )));
        Ok(())
    }

    /// Tells the follower and the worker to stop, without waiting (called
    /// when shutdown starts). Deliveries in flight are abandoned: their
    /// messages stay in the outbox and go again after a restart.
    pub fn stop_webhooks(&self) {
        self.webhooks().stop.send_replace(true);
    }

    /// [`Engine::stop_webhooks`], then waits until the follower and the
    /// worker have ended (and dropped their hold on the engine).
    pub async fn webhooks_stopped(&self) {
        let hub = self.webhooks();
        self.stop_webhooks();
        let tasks = std::mem::take(&mut *hub.tasks.lock());
        for task in tasks {
            let _ = task.await;
        }
        hub.started.store(false, Ordering::SeqCst);
    }

    /// Removes the waiting messages, dead letters and digest rows that name
    /// an erased learner (GDPR); fan-outs are held off meanwhile, and skip
    /// learners the store no longer holds.
    pub(crate) fn erase_webhook_rows(&self, learner: &str) -> Result<u64> {
        let _writes = self.webhooks().writes.lock();
        self.store.erase_webhook_rows(learner)
    }

    /// Delivery figures: counters since start, and the outbox now.
    pub fn webhook_stats(&self) -> Result<WebhookStats> {
        let hub = self.webhooks();
        let (pending, dead_letters) = self.store.outbox_sizes()?;
        Ok(WebhookStats {
            delivered: hub.delivered.load(Ordering::Relaxed),
            retried: hub.retried.load(Ordering::Relaxed),
            dead_lettered: hub.dead_lettered.load(Ordering::Relaxed),
            pending,
            dead_letters,
            cursor: hub.cursor.load(Ordering::SeqCst),
        })
    }
}

fn fill_random(buf: &mut [u8]) -> Result<()> {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(buf)
        .map_err(|_| Error::Storage("the system random generator failed".into()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Micros as whole seconds (the `webhook-timestamp` unit).
fn seconds(micros: Micros) -> i64 {
    micros.div_euclid(1_000_000)
}
