//! The delivery worker: due messages posted to their receivers, signed,
//! retried with backoff, given up after the retry window.
//!
//! It reads the outbox in due order and keeps up to [`MAX_IN_FLIGHT`]
//! deliveries going ([`PER_SUBSCRIPTION`] per receiver). A 2xx reply
//! removes the message; anything else (a status, a timeout, a refused
//! connection, a target refused by the forgery guard) moves it to its next
//! due time, or to the dead letters once the window is over. The first
//! success after failures brings the subscription's waiting messages
//! forward: a receiver back after an outage gets its backlog at once
//! instead of at each message's next retry.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use parking_lot::Mutex;
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use tokio::sync::{Notify, watch};

use super::resolve::{self, Guarded};
use super::{Engine, WebhookOptions, seconds};
use crate::domain::learner::Micros;
use crate::domain::webhooks::retry::{AfterFailure, retry_after};
use crate::domain::webhooks::{DeadLetter, Message, Subscription, signature};
use crate::engine::now_micros;
use crate::error::{Error, Result};
use crate::offload;
use crate::store::outbox::OutboxRow;

/// Deliveries in flight over every receiver.
pub const MAX_IN_FLIGHT: usize = 32;

/// Deliveries in flight to one subscription's receiver.
pub const PER_SUBSCRIPTION: usize = 8;

/// Bytes of a reply body read at most (the reply is not used; reading a
/// little lets the connection be reused).
const REPLY_BYTES: usize = 64 * 1024;

/// The `user-agent` of every delivery.
const USER_AGENT: &str = concat!("spoc-engine-webhooks/", env!("CARGO_PKG_VERSION"));

/// The HTTP client of deliveries: the guarded resolver, no proxy, no
/// redirect, https only unless private targets are allowed, rustls with
/// the Mozilla roots.
pub(super) fn client(options: &WebhookOptions) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(Guarded {
            resolver: options.resolver.clone(),
            allow_private: options.allow_private,
        }))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .https_only(!options.allow_private)
        .timeout(options.request_timeout)
        .connect_timeout(options.request_timeout.min(Duration::from_secs(5)))
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| Error::Storage(format!("cannot build the webhook HTTP client: {e}")))
}

/// Deliveries in flight (or reserved by [`take_due`] for their start):
/// their messages, as their outbox keys without the due time (which a
/// re-keying changes, see [`message_of`]), and a count per subscription.
#[derive(Default)]
struct InFlight {
    messages: HashSet<Vec<u8>>,
    per_subscription: HashMap<String, usize>,
}

impl InFlight {
    /// Counts the message at `key`, of `subscription`, in flight.
    fn enter(&mut self, key: &[u8], subscription: &str) {
        self.messages.insert(message_of(key).to_vec());
        *self
            .per_subscription
            .entry(subscription.to_string())
            .or_default() += 1;
    }

    /// The message at `key`, of `subscription`, is no longer in flight.
    fn leave(&mut self, key: &[u8], subscription: &str) {
        self.messages.remove(message_of(key));
        if let Some(n) = self.per_subscription.get_mut(subscription) {
            *n -= 1;
            if *n == 0 {
                self.per_subscription.remove(subscription);
            }
        }
    }
}

/// A message's identity in its outbox key: the subscription and the id,
/// without the due time in front (see `store/outbox.rs`).
fn message_of(key: &[u8]) -> &[u8] {
    key.get(8..).unwrap_or_default()
}

/// Runs until `stop` turns true.
pub(super) async fn run(engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
    let in_flight = Arc::new(Mutex::new(InFlight::default()));
    let done = Arc::new(Notify::new());
    // Deliveries in flight, aborted at a stop (their messages stay due).
    let mut attempts = tokio::task::JoinSet::new();
    let mut version = u64::MAX;
    let mut client = None;
    let mut digest_every = Duration::from_secs(30);
    let mut next_digest = tokio::time::Instant::now();
    loop {
        if *stop.borrow_and_update() {
            break;
        }
        // The options in force (they may change while the server runs).
        let now_version = engine.webhooks().options_version.load(Ordering::SeqCst);
        if now_version != version {
            let options = engine.webhooks().options();
            match self::client(&options) {
                Ok(built) => client = Some(built),
                Err(err) => tracing::error!(error = %err, "webhook client unavailable"),
            }
            digest_every = options.digest_check;
            next_digest = next_digest.min(tokio::time::Instant::now() + digest_every);
            version = now_version;
        }
        let Some(client) = client.clone() else {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => break,
            }
            version = u64::MAX;
            continue;
        };
        while attempts.try_join_next().is_some() {}
        if tokio::time::Instant::now() >= next_digest {
            next_digest = tokio::time::Instant::now() + digest_every;
            let e = engine.clone();
            match offload::blocking(async move { e.send_due_digests(now_micros()) }).await {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => tracing::error!(error = %err, "webhook digests failed"),
                Err(err) => tracing::error!(error = %err, "webhook digest task failed"),
            }
        }
        let next_due = match take_due(&engine, &in_flight).await {
            Ok((rows, next_due)) => {
                for (key, message) in rows {
                    start(
                        &mut attempts,
                        &engine,
                        &client,
                        &in_flight,
                        &done,
                        key,
                        message,
                    );
                }
                next_due
            }
            Err(err) => {
                tracing::error!(error = %err, "reading the webhook outbox failed");
                Some(now_micros() + 1_000_000)
            }
        };
        let now = now_micros();
        let idle = in_flight.lock().messages.is_empty();
        let timer = match next_due {
            Some(due) if due > now => Duration::from_micros((due - now) as u64),
            // More due with nothing in flight: the read stopped at dropped
            // messages (deleted subscriptions, revoked keys); read again.
            Some(_) if idle => Duration::ZERO,
            // Due now but not started (limits): a finishing delivery wakes us.
            _ => Duration::from_secs(3600),
        };
        let until_digest = next_digest.saturating_duration_since(tokio::time::Instant::now());
        tokio::select! {
            _ = engine.webhooks().wake.notified() => {}
            _ = done.notified() => {}
            _ = tokio::time::sleep(timer.min(until_digest)) => {}
            _ = stop.changed() => break,
        }
    }
    attempts.abort_all();
    while attempts.join_next().await.is_some() {}
}

/// The due messages that may start now, within the limits, counted in
/// flight; and when the next one is due.
async fn take_due(
    engine: &Arc<Engine>,
    in_flight: &Arc<Mutex<InFlight>>,
) -> Result<(Vec<OutboxRow>, Option<Micros>)> {
    let free = MAX_IN_FLIGHT.saturating_sub(in_flight.lock().messages.len());
    if free == 0 {
        return Ok((Vec::new(), None));
    }
    let e = engine.clone();
    let flying = in_flight.clone();
    offload::blocking(async move {
        let hub = e.webhooks();
        let _picking = hub.picking.lock();
        let now = now_micros();
        // A copy: finishing deliveries must not wait for the scan.
        let (messages, full): (HashSet<Vec<u8>>, HashSet<String>) = {
            let flying = flying.lock();
            let full = flying
                .per_subscription
                .iter()
                .filter(|(_, n)| **n >= PER_SUBSCRIPTION)
                .map(|(s, _)| s.clone())
                .collect();
            (flying.messages.clone(), full)
        };
        let (rows, next_due) = e.store.due_messages(
            now,
            |key| {
                messages.contains(message_of(key))
                    || subscription_of(key).is_some_and(|s| full.contains(s))
            },
            free,
        )?;
        let mut taken = Vec::with_capacity(rows.len());
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (key, message) in rows {
            let Some(subscription) = hub.subscription(&message.subscription_id) else {
                // Its subscription was deleted while it was in flight.
                e.store.remove_message(&key)?;
                continue;
            };
            if !e.key_is_active(&subscription.key_id) {
                // A revoked key's subscription delivers nothing more.
                e.store.remove_message(&key)?;
                continue;
            }
            let flying_now = flying
                .lock()
                .per_subscription
                .get(&message.subscription_id)
                .copied()
                .unwrap_or(0);
            let count = counts.entry(message.subscription_id.clone()).or_default();
            if flying_now + *count >= PER_SUBSCRIPTION {
                continue;
            }
            *count += 1;
            taken.push((key, message));
        }
        // Counted in flight only once nothing above can fail: a message
        // counted and never started would never be delivered.
        let mut flying = flying.lock();
        for (key, message) in &taken {
            flying.enter(key, &message.subscription_id);
        }
        Ok((taken, next_due))
    })
    .await?
}

/// The subscription id inside an outbox key (see `store/outbox.rs`).
fn subscription_of(key: &[u8]) -> Option<&str> {
    let rest = key.get(8..)?;
    let end = rest.iter().position(|b| *b == 0)?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// Starts one delivery in its own task.
fn start(
    attempts: &mut tokio::task::JoinSet<()>,
    engine: &Arc<Engine>,
    client: &reqwest::Client,
    in_flight: &Arc<Mutex<InFlight>>,
    done: &Arc<Notify>,
    key: Vec<u8>,
    message: Message,
) {
    // Counted in flight by `take_due`.
    let Some(subscription) = engine.webhooks().subscription(&message.subscription_id) else {
        in_flight.lock().leave(&key, &message.subscription_id);
        return;
    };
    let (engine, client, in_flight, done) = (
        engine.clone(),
        client.clone(),
        in_flight.clone(),
        done.clone(),
    );
    attempts.spawn(async move {
        let sub_id = message.subscription_id.clone();
        let outcome = attempt(
            &engine,
            &client,
            &subscription,
            &in_flight,
            key.clone(),
            message,
        )
        .await;
        if let Err(err) = outcome {
            tracing::error!(error = %err, subscription = %sub_id, "recording a webhook attempt failed");
        }
        in_flight.lock().leave(&key, &sub_id);
        done.notify_one();
    });
}

/// One attempt and what it leaves in the store.
async fn attempt(
    engine: &Arc<Engine>,
    client: &reqwest::Client,
    subscription: &Subscription,
    in_flight: &Arc<Mutex<InFlight>>,
    key: Vec<u8>,
    mut message: Message,
) -> Result<()> {
    let hub = engine.webhooks();
    let options = hub.options();
    let started = now_micros();
    message.attempts += 1;
    message.first_attempt_at.get_or_insert(started);
    let outcome = post(client, subscription, &message, options.allow_private).await;
    let now = now_micros();
    let e = engine.clone();
    let sub_id = subscription.id.clone();
    let url = subscription.spec.url.clone();
    match outcome {
        Ok(()) => {
            hub.delivered.fetch_add(1, Ordering::Relaxed);
            let was_failing = hub.failing.lock().remove(&sub_id);
            let in_flight = in_flight.clone();
            let moved = offload::blocking(async move {
                e.store.remove_message(&key)?;
                // Not before what the receiver asked of a refused one.
                if let Some(not_before) = was_failing {
                    // Not the ones in flight, nor any the worker is taking
                    // (`picking`): moved, they would be taken again.
                    let _picking = e.webhooks().picking.lock();
                    let flying = in_flight.lock().messages.clone();
                    return e
                        .store
                        .expedite_messages(&sub_id, now.max(not_before), |k| {
                            flying.contains(message_of(k))
                        });
                }
                Ok(0)
            })
            .await??;
            if moved > 0 {
                tracing::info!(
                    subscription = %subscription.id,
                    messages = moved,
                    "webhook receiver answers again: its waiting messages go now"
                );
                hub.wake.notify_one();
            }
        }
        Err(Failed { reason, asked }) => {
            let not_before = asked.map_or(0, |wait| {
                let wait = wait.min(options.retry.max_delay);
                now.saturating_add(i64::try_from(wait.as_micros()).unwrap_or(i64::MAX))
            });
            {
                let mut failing = hub.failing.lock();
                let entry = failing.entry(sub_id.clone()).or_insert(0);
                *entry = (*entry).max(not_before);
            }
            tracing::debug!(
                subscription = %sub_id,
                message = %message.id,
                attempts = message.attempts,
                error = %reason,
                "webhook delivery failed"
            );
            message.last_error = reason;
            let jitter: f64 = rand::random();
            match options.retry.after_failure(
                message.created_at,
                message.attempts,
                now,
                jitter,
                asked,
            ) {
                AfterFailure::RetryAt(due) => {
                    message.due_at = due;
                    hub.retried.fetch_add(1, Ordering::Relaxed);
                    offload::blocking(async move { e.store.retry_message(&key, &message) })
                        .await??;
                }
                AfterFailure::GiveUp => {
                    tracing::warn!(
                        subscription = %sub_id,
                        message = %message.id,
                        attempts = message.attempts,
                        error = %message.last_error,
                        "webhook message given up after the retry window: kept as a dead letter"
                    );
                    hub.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    let dead = DeadLetter {
                        message,
                        url,
                        dead_at: now,
                    };
                    offload::blocking(async move { e.store.bury_message(&key, &dead) }).await??;
                }
            }
        }
    }
    Ok(())
}

/// Why an attempt did not land, and the wait the receiver asked for.
struct Failed {
    /// "HTTP 503", "connection refused", a refused target...
    reason: String,
    /// `Retry-After` of a 429 or 503 answer.
    asked: Option<std::time::Duration>,
}

impl From<String> for Failed {
    fn from(reason: String) -> Self {
        Self {
            reason,
            asked: None,
        }
    }
}

/// Posts a message, signed for this attempt; `Err` says why it did not
/// land.
async fn post(
    client: &reqwest::Client,
    subscription: &Subscription,
    message: &Message,
    allow_private: bool,
) -> Result<(), Failed> {
    let url = Url::parse(&subscription.spec.url).map_err(|e| format!("bad URL: {e}"))?;
    // The client resolves names through the guard; a literal address it
    // connects to as it is, so it is checked here.
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        _ => None,
    };
    if let Some(ip) = literal
        && let Some(refused) = resolve::refuse(&ip.to_string(), ip, allow_private)
    {
        return Err(refused.0.into());
    }
    let timestamp = seconds(now_micros());
    let signature = signature::sign(&subscription.secret, &message.id, timestamp, &message.body);
    let content_type = HeaderValue::from_str(&message.content_type)
        .unwrap_or(HeaderValue::from_static("application/json"));
    let mut reply = client
        .post(url)
        .header(signature::ID_HEADER, &message.id)
        .header(signature::TIMESTAMP_HEADER, timestamp.to_string())
        .header(signature::SIGNATURE_HEADER, signature)
        .header(CONTENT_TYPE, content_type)
        .body(message.body.clone())
        .send()
        .await
        .map_err(describe)?;
    let status = reply.status();
    let asked = match status.as_u16() {
        429 | 503 => reply
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, now_micros())),
        _ => None,
    };
    let mut read = 0;
    while read < REPLY_BYTES {
        match reply.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            _ => break,
        }
    }
    if status.is_success() {
        Ok(())
    } else {
        Err(Failed {
            reason: format!("HTTP {}", status.as_u16()),
            asked,
        })
    }
}

/// A failed request in a few words: the innermost cause (a refused target,
/// "Connection refused (os error 111)", ...), or the timeout.
fn describe(err: reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out".into();
    }
    let mut cause: &dyn std::error::Error = &err;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    if err.is_connect() && !cause.to_string().contains("refused:") {
        format!("cannot connect: {cause}")
    } else {
        cause.to_string()
    }
}
