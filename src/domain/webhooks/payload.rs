//! Message bodies: a CloudEvents 1.0 event, a Slack message or a Microsoft
//! Teams message, for one alert change or for a daily digest.
//!
//! The CloudEvents `data` is the alert in protobuf's canonical JSON mapping
//! of `spoc.v1.Alert` (camelCase names, enum value names, RFC 3339 times,
//! 64-bit integers as strings), written here by hand because the domain
//! knows no generated type; `tests/it/webhooks.rs` parses it back with the
//! descriptor set, so the two cannot drift apart. Chat messages are short
//! texts for people: kind, severity, learner, program, cohort, reason.

use serde_json::{Map, Value, json};

use super::super::alerts::Alert;
use super::super::learner::Micros;
use super::{DIGEST_EVENT_TYPE, Format, event_type};

/// CloudEvents `source` of every event.
pub const EVENT_SOURCE: &str = "/spoc.v1.AlertService";

/// Most alerts listed in a chat digest; the rest are counted.
pub const CHAT_DIGEST_LINES: usize = 50;

/// Most alerts in a CloudEvents digest; the rest are counted (`total`).
pub const EVENT_DIGEST_ALERTS: usize = 1000;

/// A rendered body and its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// `content-type` header.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

/// The body of the message carrying one alert change.
pub fn change(format: Format, message_id: &str, alert: &Alert, now: Micros) -> Rendered {
    match format {
        Format::CloudEvents => cloud_event(
            message_id,
            event_type(alert),
            &alert.id,
            now,
            alert_json(alert),
        ),
        Format::Slack => json_body(slack_change(alert)),
        Format::Teams => json_body(teams(vec![
            text_block(&headline(alert), true),
            text_block(&alert.reason, false),
            json!({"type": "FactSet", "facts": facts(alert)}),
        ])),
    }
}

/// The body of a daily digest of `alerts` (their latest states, changed
/// between `from` and `to`).
pub fn digest(
    format: Format,
    message_id: &str,
    alerts: &[Alert],
    from: Micros,
    to: Micros,
    now: Micros,
) -> Rendered {
    let title = format!(
        "Alert digest: {} alert{} changed since {}",
        alerts.len(),
        if alerts.len() == 1 { "" } else { "s" },
        time(from)
    );
    let more = alerts.len().saturating_sub(CHAT_DIGEST_LINES);
    match format {
        Format::CloudEvents => {
            let data = json!({
                "from": time(from),
                "to": time(to),
                "total": alerts.len(),
                "alerts": alerts.iter().take(EVENT_DIGEST_ALERTS).map(alert_json).collect::<Vec<_>>(),
            });
            cloud_event(message_id, DIGEST_EVENT_TYPE, "", now, data)
        }
        Format::Slack => {
            let mut lines: Vec<String> = alerts
                .iter()
                .take(CHAT_DIGEST_LINES)
                .map(|a| format!("• {}", slack_escape(&line(a))))
                .collect();
            if more > 0 {
                lines.push(format!("…and {more} more"));
            }
            json_body(json!({
                "text": title,
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": title}},
                    {"type": "section", "text": {"type": "mrkdwn", "text": lines.join("\n")}},
                ],
            }))
        }
        Format::Teams => {
            let mut body = vec![text_block(&title, true)];
            body.extend(
                alerts
                    .iter()
                    .take(CHAT_DIGEST_LINES)
                    .map(|a| text_block(&format!("- {}", line(a)), false)),
            );
            if more > 0 {
                body.push(text_block(&format!("…and {more} more"), false));
            }
            json_body(teams(body))
        }
    }
}

/// An alert in protobuf's JSON mapping of `spoc.v1.Alert`.
pub fn alert_json(a: &Alert) -> Value {
    let mut out = Map::new();
    let mut put = |key: &str, value: Value| {
        out.insert(key.to_string(), value);
    };
    put("id", json!(a.id));
    put("learnerId", json!(a.learner_id));
    put("programId", json!(a.program_id));
    put("cohortId", json!(a.cohort_id));
    put(
        "kind",
        json!(format!("ALERT_KIND_{}", a.kind.as_str().to_uppercase())),
    );
    put(
        "severity",
        json!(format!(
            "ALERT_SEVERITY_{}",
            screaming(&format!("{:?}", a.severity))
        )),
    );
    put("reason", json!(a.reason));
    put("skillId", json!(a.skill_id.clone().unwrap_or_default()));
    put(
        "signals",
        Value::Object(
            a.signals
                .iter()
                .filter(|(_, v)| v.is_finite())
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect(),
        ),
    );
    put("createdAt", json!(time(a.created_at)));
    put("updatedAt", json!(time(a.updated_at)));
    put(
        "status",
        json!(format!(
            "ALERT_STATUS_{}",
            screaming(&format!("{:?}", a.status))
        )),
    );
    put("statusBy", json!(a.status_by));
    put("note", json!(a.note));
    if let Some(at) = a.resolved_at {
        put("resolvedAt", json!(time(at)));
    }
    put("sequence", json!(a.sequence.to_string()));
    Value::Object(out)
}

/// A structured-mode CloudEvents 1.0 event.
fn cloud_event(id: &str, kind: &str, subject: &str, now: Micros, data: Value) -> Rendered {
    let mut event = json!({
        "specversion": "1.0",
        "id": id,
        "source": EVENT_SOURCE,
        "type": kind,
        "time": time(now),
        "datacontenttype": "application/json",
        "data": data,
    });
    if !subject.is_empty() {
        event["subject"] = json!(subject);
    }
    Rendered {
        content_type: "application/cloudevents+json; charset=utf-8",
        body: serde_json::to_vec(&event).expect("JSON of plain values"),
    }
}

fn json_body(value: Value) -> Rendered {
    Rendered {
        content_type: "application/json",
        body: serde_json::to_vec(&value).expect("JSON of plain values"),
    }
}

fn slack_change(a: &Alert) -> Value {
    let text = format!("{}: {}", headline(a), a.reason);
    json!({
        "text": slack_escape(&text),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!(
                "*{}*\n{}", slack_escape(&headline(a)), slack_escape(&a.reason))}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": slack_escape(&format!(
                "{} · program {}{} · {}",
                a.learner_id,
                a.program_id,
                if a.cohort_id.is_empty() { String::new() } else { format!(" · cohort {}", a.cohort_id) },
                a.id,
            ))}]},
        ],
    })
}

/// A Teams message carrying one Adaptive Card with `body`.
fn teams(body: Vec<Value>) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            },
        }],
    })
}

fn text_block(text: &str, bold: bool) -> Value {
    let mut block = json!({"type": "TextBlock", "text": text, "wrap": true});
    if bold {
        block["weight"] = json!("Bolder");
        block["size"] = json!("Medium");
    }
    block
}

fn facts(a: &Alert) -> Vec<Value> {
    let mut facts = vec![
        json!({"title": "Learner", "value": a.learner_id}),
        json!({"title": "Program", "value": a.program_id}),
    ];
    if !a.cohort_id.is_empty() {
        facts.push(json!({"title": "Cohort", "value": a.cohort_id}));
    }
    facts.push(json!({"title": "Alert", "value": a.id}));
    facts
}

/// "Blocking point (warning), raised: alice".
fn headline(a: &Alert) -> String {
    format!(
        "{} ({}), {}: {}",
        kind_label(a),
        format!("{:?}", a.severity).to_lowercase(),
        change_word(a),
        a.learner_id
    )
}

/// One digest line: "Blocking point (warning, open): alice in excel: reason".
fn line(a: &Alert) -> String {
    format!(
        "{} ({}, {}): {} in {}: {}",
        kind_label(a),
        format!("{:?}", a.severity).to_lowercase(),
        format!("{:?}", a.status).to_lowercase(),
        a.learner_id,
        if a.cohort_id.is_empty() {
            &a.program_id
        } else {
            &a.cohort_id
        },
        a.reason
    )
}

/// "raised", "updated", "acknowledged" or "resolved".
fn change_word(a: &Alert) -> &'static str {
    let kind = event_type(a);
    kind.rsplit('.').next().unwrap_or(kind)
}

/// `blocking_point` as "Blocking point".
fn kind_label(a: &Alert) -> String {
    let words = a.kind.as_str().replace('_', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => words,
    }
}

/// `CamelCase` as `CAMEL_CASE` (enum value names of the protobuf mapping).
fn screaming(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_uppercase());
    }
    out
}

/// Slack's three control characters in message text.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// RFC 3339 in UTC, as the protobuf JSON mapping writes timestamps.
fn time(micros: Micros) -> String {
    jiff::Timestamp::from_microsecond(micros)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::alert;
    use super::*;
    use crate::domain::alerts::AlertStatus;

    fn parse(r: &Rendered) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn a_cloud_event_carries_the_alert_in_the_protobuf_mapping() {
        let mut a = alert(7);
        a.signals.insert("failure_streak".into(), 4.0);
        let r = change(Format::CloudEvents, "msg_x_7", &a, 1_700_000_001_000_000);
        assert!(r.content_type.starts_with("application/cloudevents+json"));
        let v = parse(&r);
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["id"], "msg_x_7");
        assert_eq!(v["type"], "spoc.alert.raised");
        assert_eq!(v["subject"], a.id);
        assert_eq!(v["time"], "2023-11-14T22:13:21Z");
        let d = &v["data"];
        assert_eq!(d["learnerId"], "alice");
        assert_eq!(d["kind"], "ALERT_KIND_BLOCKING_POINT");
        assert_eq!(d["severity"], "ALERT_SEVERITY_WARNING");
        assert_eq!(d["status"], "ALERT_STATUS_OPEN");
        assert_eq!(d["sequence"], "7");
        assert_eq!(d["signals"]["failure_streak"], 4.0);
        assert!(d.get("resolvedAt").is_none());
    }

    #[test]
    fn chat_messages_say_what_happened_in_words() {
        let mut a = alert(7);
        a.reason = "3 failures on <SQL & joins>".into();
        let slack = parse(&change(Format::Slack, "m", &a, 0));
        let text = slack["text"].as_str().unwrap();
        assert!(
            text.contains("Blocking point (warning), raised: alice"),
            "{text}"
        );
        assert!(text.contains("&lt;SQL &amp; joins&gt;"), "{text}");
        a.status = AlertStatus::Resolved;
        a.sequence = 9;
        let teams = parse(&change(Format::Teams, "m", &a, 0));
        let card = &teams["attachments"][0]["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert!(
            card["body"][0]["text"]
                .as_str()
                .unwrap()
                .contains("resolved")
        );
        assert_eq!(card["body"][2]["facts"][2]["value"], "excel/v1/c001");
    }

    #[test]
    fn digests_list_every_alert_or_count_the_rest() {
        let alerts: Vec<Alert> = (1..=60).map(alert).collect();
        let v = parse(&digest(
            Format::CloudEvents,
            "d",
            &alerts,
            0,
            1_000_000,
            1_000_000,
        ));
        assert_eq!(v["type"], DIGEST_EVENT_TYPE);
        assert_eq!(v["data"]["total"], 60);
        assert_eq!(v["data"]["alerts"].as_array().unwrap().len(), 60);
        let slack = parse(&digest(Format::Slack, "d", &alerts, 0, 1, 1));
        let list = slack["blocks"][1]["text"]["text"].as_str().unwrap();
        assert_eq!(list.lines().count(), CHAT_DIGEST_LINES + 1);
        assert!(list.ends_with("…and 10 more"));
        let teams = parse(&digest(Format::Teams, "d", &alerts[..2], 0, 1, 1));
        assert_eq!(
            teams["attachments"][0]["content"]["body"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
    }
}
