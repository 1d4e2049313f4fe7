//! `spoc.v1.AlertService`'s webhook calls: `CreateSubscription`,
//! `ListSubscriptions`, `DeleteSubscription`, `ListDeadLetters`.
//!
//! `alerts.rs` hands these four methods over to the functions here (tonic
//! serves a service from one trait impl). Fields are checked first, each
//! error naming its field; then the caller's scope (programs and cohorts
//! named, `scope.rs`); then the engine checks what needs the store or the
//! network (unknown ids, the target's addresses).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::timestamp;
use super::pb;
use super::validate as check;
use crate::domain::risk::Severity;
use crate::domain::webhooks::{DeadLetter, Delivery, Format, SubscriptionSpec};
use crate::engine::Engine;
use crate::engine::webhooks::{
    DEFAULT_DIGEST_HOUR, MAX_FILTER_IDS, MAX_URL_BYTES, SubscriptionView,
};
use crate::error::{Error, Result};
use crate::offload;

/// The fields of a `CreateSubscriptionRequest`, checked.
pub fn new_subscription(r: &pb::CreateSubscriptionRequest) -> Result<SubscriptionSpec> {
    if r.url.is_empty() {
        return Err(Error::invalid("url", "must not be empty"));
    }
    if r.url.len() > MAX_URL_BYTES {
        return Err(Error::invalid(
            "url",
            format!("must be at most {MAX_URL_BYTES} bytes, got {}", r.url.len()),
        ));
    }
    let program_ids = filter_ids("program_ids", &r.program_ids, |f, v| check::id(f, v))?;
    let cohort_ids = filter_ids("cohort_ids", &r.cohort_ids, super::cohorts::cohort_id)?;
    let mut kinds = Vec::with_capacity(r.kinds.len());
    for (i, value) in r.kinds.iter().enumerate() {
        let at = format!("kinds[{i}]");
        let kind = super::alerts::kind_filter(&at, *value)?
            .ok_or_else(|| Error::invalid(&at, "must be a kind, not ALERT_KIND_UNSPECIFIED"))?;
        let name = kind.as_str().to_string();
        if kinds.contains(&name) {
            return Err(Error::invalid(at, format!("{name} is named twice")));
        }
        kinds.push(name);
    }
    let min_severity = severity("min_severity", r.min_severity)?;
    let delivery = delivery(r)?;
    let format = format(r.format)?;
    Ok(SubscriptionSpec {
        url: r.url.clone(),
        program_ids,
        cohort_ids,
        kinds,
        min_severity,
        delivery,
        format,
        description: check::text("description", &r.description)?,
    })
}

/// A filter's ids, each checked by `one` and named once, at most
/// [`MAX_FILTER_IDS`].
fn filter_ids(
    field: &str,
    values: &[String],
    one: fn(&str, &str) -> Result<String>,
) -> Result<Vec<String>> {
    if values.len() > MAX_FILTER_IDS {
        return Err(Error::invalid(
            field,
            format!(
                "must name at most {MAX_FILTER_IDS} ids, got {}",
                values.len()
            ),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let value = one(&at, value)?;
        if out.contains(&value) {
            return Err(Error::invalid(at, format!("'{value}' is named twice")));
        }
        out.push(value);
    }
    Ok(out)
}

/// The delivery asked for, with the digest's hour and time zone (only for
/// daily digests).
fn delivery(r: &pb::CreateSubscriptionRequest) -> Result<Delivery> {
    match pb::SubscriptionDelivery::try_from(r.delivery) {
        Ok(pb::SubscriptionDelivery::Immediate) => {
            if r.digest_hour.is_some() {
                return Err(Error::invalid("digest_hour", "only for daily digests"));
            }
            if !r.digest_time_zone.is_empty() {
                return Err(Error::invalid("digest_time_zone", "only for daily digests"));
            }
            Ok(Delivery::Immediate)
        }
        Ok(pb::SubscriptionDelivery::DailyDigest) => {
            let hour = r.digest_hour.unwrap_or(DEFAULT_DIGEST_HOUR as u32);
            if hour > 23 {
                return Err(Error::invalid(
                    "digest_hour",
                    format!("must be an hour from 0 to 23, got {hour}"),
                ));
            }
            let zone = check::time_zone("digest_time_zone", &r.digest_time_zone)?;
            Ok(Delivery::DailyDigest {
                hour: hour as u8,
                time_zone: if zone.is_empty() { "UTC".into() } else { zone },
            })
        }
        Ok(pb::SubscriptionDelivery::Unspecified) => Err(Error::invalid(
            "delivery",
            "is required: SUBSCRIPTION_DELIVERY_IMMEDIATE or SUBSCRIPTION_DELIVERY_DAILY_DIGEST",
        )),
        Err(_) => Err(Error::invalid(
            "delivery",
            format!("unknown delivery {}", r.delivery),
        )),
    }
}

/// The body format asked for.
fn format(value: i32) -> Result<Format> {
    match pb::SubscriptionFormat::try_from(value) {
        Ok(pb::SubscriptionFormat::Cloudevents) => Ok(Format::CloudEvents),
        Ok(pb::SubscriptionFormat::Slack) => Ok(Format::Slack),
        Ok(pb::SubscriptionFormat::Teams) => Ok(Format::Teams),
        Ok(pb::SubscriptionFormat::Unspecified) => Err(Error::invalid(
            "format",
            "is required: SUBSCRIPTION_FORMAT_CLOUDEVENTS, SUBSCRIPTION_FORMAT_SLACK or \
             SUBSCRIPTION_FORMAT_TEAMS",
        )),
        Err(_) => Err(Error::invalid("format", format!("unknown format {value}"))),
    }
}

/// A minimum severity: unspecified means any; unknown values are refused.
fn severity(field: &str, value: i32) -> Result<Option<Severity>> {
    match pb::AlertSeverity::try_from(value) {
        Ok(pb::AlertSeverity::Unspecified) => Ok(None),
        Ok(pb::AlertSeverity::Info) => Ok(Some(Severity::Info)),
        Ok(pb::AlertSeverity::Warning) => Ok(Some(Severity::Warning)),
        Ok(pb::AlertSeverity::Critical) => Ok(Some(Severity::Critical)),
        Err(_) => Err(Error::invalid(
            field,
            format!("unknown alert severity {value}"),
        )),
    }
}

impl From<SubscriptionView> for pb::Subscription {
    fn from(view: SubscriptionView) -> Self {
        let s = view.subscription;
        let spec = &s.spec;
        let (digest_hour, digest_time_zone) = match &spec.delivery {
            Delivery::Immediate => (None, String::new()),
            Delivery::DailyDigest { hour, time_zone } => (Some(*hour as u32), time_zone.clone()),
        };
        Self {
            id: s.id.clone(),
            url: spec.url.clone(),
            program_ids: spec.program_ids.clone(),
            cohort_ids: spec.cohort_ids.clone(),
            kinds: spec
                .kinds
                .iter()
                .filter_map(|name| {
                    crate::domain::risk::AlertKind::ALL
                        .into_iter()
                        .find(|k| k.as_str() == name)
                })
                .map(|k| pb::AlertKind::from(k) as i32)
                .collect(),
            min_severity: spec
                .min_severity
                .map_or(pb::AlertSeverity::Unspecified, pb::AlertSeverity::from)
                as i32,
            delivery: match spec.delivery {
                Delivery::Immediate => pb::SubscriptionDelivery::Immediate,
                Delivery::DailyDigest { .. } => pb::SubscriptionDelivery::DailyDigest,
            } as i32,
            format: match spec.format {
                Format::CloudEvents => pb::SubscriptionFormat::Cloudevents,
                Format::Slack => pb::SubscriptionFormat::Slack,
                Format::Teams => pb::SubscriptionFormat::Teams,
            } as i32,
            digest_hour,
            digest_time_zone,
            description: spec.description.clone(),
            created_at: Some(timestamp(s.created_at)),
            created_by_key_id: s.key_id.clone(),
            active: view.active,
            pending: view.pending,
            dead_letters: view.dead_letters,
        }
    }
}

impl From<DeadLetter> for pb::DeadLetter {
    fn from(d: DeadLetter) -> Self {
        let m = d.message;
        Self {
            message_id: m.id,
            subscription_id: m.subscription_id,
            url: d.url,
            event_type: m.event_type,
            alert_id: m.alert_id,
            attempts: m.attempts,
            first_attempt_at: m.first_attempt_at.map(timestamp),
            dead_at: Some(timestamp(d.dead_at)),
            last_error: m.last_error,
        }
    }
}

/// `CreateSubscription`.
pub async fn create(
    engine: &Arc<Engine>,
    request: Request<pb::CreateSubscriptionRequest>,
) -> Result<Response<pb::CreateSubscriptionResponse>, Status> {
    let new = new_subscription(request.get_ref())?;
    let who = super::scope::authorize(engine, &request)?;
    let (subscription, secret) = engine.create_subscription(&who, new).await?;
    let view = SubscriptionView {
        subscription: Arc::new(subscription),
        active: true,
        pending: 0,
        dead_letters: 0,
    };
    Ok(Response::new(pb::CreateSubscriptionResponse {
        subscription: Some(view.into()),
        secret,
    }))
}

/// `ListSubscriptions`.
pub async fn list(
    engine: &Arc<Engine>,
    request: Request<pb::ListSubscriptionsRequest>,
) -> Result<Response<pb::ListSubscriptionsResponse>, Status> {
    let r = request.get_ref();
    let limit = check::page_size("page_size", r.page_size)?;
    let scope = "ListSubscriptions";
    let after = check::page_token("page_token", &r.page_token, scope)?
        .map(|key| String::from_utf8_lossy(&key).into_owned());
    let who = super::scope::authorize(engine, &request)?;
    let (views, next) = super::off_runtime(engine, move |e| {
        e.list_subscriptions(&who, after.as_deref(), limit)
    })
    .await?;
    Ok(Response::new(pb::ListSubscriptionsResponse {
        subscriptions: views.into_iter().map(Into::into).collect(),
        next_page_token: check::next_page_token(next.map(String::into_bytes), scope),
    }))
}

/// `DeleteSubscription`.
pub async fn delete(
    engine: &Arc<Engine>,
    request: Request<pb::DeleteSubscriptionRequest>,
) -> Result<Response<pb::DeleteSubscriptionResponse>, Status> {
    let id = check::id("subscription_id", &request.get_ref().subscription_id)?;
    let who = super::scope::authorize(engine, &request)?;
    let engine = engine.clone();
    let dropped =
        offload::blocking(async move { engine.delete_subscription(&who, &id).await }).await??;
    Ok(Response::new(pb::DeleteSubscriptionResponse {
        dropped_pending: dropped.pending,
        dropped_dead_letters: dropped.dead,
    }))
}

/// `RedeliverDeadLetters`.
pub async fn redeliver(
    engine: &Arc<Engine>,
    request: Request<pb::RedeliverDeadLettersRequest>,
) -> Result<Response<pb::RedeliverDeadLettersResponse>, Status> {
    let r = request.get_ref();
    let id = check::id("subscription_id", &r.subscription_id)?;
    let ids = check::id_list("message_ids", &r.message_ids)?;
    let who = super::scope::authorize(engine, &request)?;
    let engine = engine.clone();
    let requeued =
        offload::blocking(async move { engine.redeliver_dead_letters(&who, &id, &ids).await })
            .await??;
    Ok(Response::new(pb::RedeliverDeadLettersResponse { requeued }))
}

/// `ListDeadLetters`.
pub async fn dead_letters(
    engine: &Arc<Engine>,
    request: Request<pb::ListDeadLettersRequest>,
) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
    let r = request.get_ref();
    let subscription = check::optional_id("subscription_id", &r.subscription_id)?;
    let limit = check::page_size("page_size", r.page_size)?;
    let scope = format!("ListDeadLetters\0{subscription}");
    let after = check::page_token("page_token", &r.page_token, &scope)?;
    let who = super::scope::authorize(engine, &request)?;
    let (letters, next) = super::off_runtime(engine, move |e| {
        let subscription = (!subscription.is_empty()).then_some(subscription.as_str());
        e.list_dead_letters(&who, subscription, after.as_deref(), limit)
    })
    .await?;
    Ok(Response::new(pb::ListDeadLettersResponse {
        dead_letters: letters.into_iter().map(Into::into).collect(),
        next_page_token: check::next_page_token(next, &scope),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> pb::CreateSubscriptionRequest {
        pb::CreateSubscriptionRequest {
            url: "https://hooks.example.com/spoc".into(),
            delivery: pb::SubscriptionDelivery::Immediate as i32,
            format: pb::SubscriptionFormat::Cloudevents as i32,
            ..Default::default()
        }
    }

    /// One change making a request bad.
    type Change = Box<dyn Fn(&mut pb::CreateSubscriptionRequest)>;

    fn field_of(r: pb::CreateSubscriptionRequest) -> String {
        match new_subscription(&r) {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn every_bad_field_is_named() {
        assert!(new_subscription(&request()).is_ok());
        let cases: Vec<(&str, Change)> = vec![
            ("url", Box::new(|r| r.url.clear())),
            (
                "url",
                Box::new(|r| r.url = format!("https://x/{}", "a".repeat(3000))),
            ),
            (
                "program_ids[1]",
                Box::new(|r| r.program_ids = vec!["p".into(), "".into()]),
            ),
            (
                "program_ids[1]",
                Box::new(|r| r.program_ids = vec!["p".into(), "p".into()]),
            ),
            (
                "cohort_ids[0]",
                Box::new(|r| r.cohort_ids = vec!["".into()]),
            ),
            ("kinds[0]", Box::new(|r| r.kinds = vec![0])),
            ("kinds[1]", Box::new(|r| r.kinds = vec![1, 99])),
            ("kinds[1]", Box::new(|r| r.kinds = vec![1, 1])),
            ("min_severity", Box::new(|r| r.min_severity = 42)),
            ("delivery", Box::new(|r| r.delivery = 0)),
            ("delivery", Box::new(|r| r.delivery = 9)),
            ("format", Box::new(|r| r.format = 0)),
            ("format", Box::new(|r| r.format = 9)),
            ("digest_hour", Box::new(|r| r.digest_hour = Some(8))),
            (
                "digest_time_zone",
                Box::new(|r| r.digest_time_zone = "UTC".into()),
            ),
            (
                "digest_hour",
                Box::new(|r| {
                    r.delivery = pb::SubscriptionDelivery::DailyDigest as i32;
                    r.digest_hour = Some(24);
                }),
            ),
            (
                "digest_time_zone",
                Box::new(|r| {
                    r.delivery = pb::SubscriptionDelivery::DailyDigest as i32;
                    r.digest_time_zone = "Mars/Olympus".into();
                }),
            ),
            ("description", Box::new(|r| r.description = "x".repeat(600))),
        ];
        for (field, change) in cases {
            let mut r = request();
            change(&mut r);
            assert_eq!(field_of(r.clone()), field, "{r:?}");
        }
    }

    #[test]
    fn a_digest_defaults_to_eight_utc() {
        let mut r = request();
        r.delivery = pb::SubscriptionDelivery::DailyDigest as i32;
        let new = new_subscription(&r).unwrap();
        assert_eq!(
            new.delivery,
            Delivery::DailyDigest {
                hour: 8,
                time_zone: "UTC".into()
            }
        );
        r.digest_time_zone = "europe/paris".into();
        r.digest_hour = Some(0);
        let new = new_subscription(&r).unwrap();
        assert_eq!(
            new.delivery,
            Delivery::DailyDigest {
                hour: 0,
                time_zone: "Europe/Paris".into()
            }
        );
    }
}
