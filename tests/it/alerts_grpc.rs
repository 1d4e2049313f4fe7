//! At-risk alerts through gRPC: a blocking point on an open WatchAlerts
//! stream, dedup, trainer actions and episodes, resume after reconnect,
//! filters and paging, per-program thresholds, and refusals naming the
//! field.

use std::time::{Duration, Instant};

use crate::common::*;
use spoc_engine::api::pb;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::codec::Streaming;

/// Records `n` failed answers of `learner` on `skill`, ids `{tag}-{k}`.
async fn fail(server: &TestServer, learner: &str, skill: &str, tag: &str, n: usize) {
    let attempts = (0..n)
        .map(|k| {
            attempt(
                &format!("{tag}-{k}"),
                learner,
                &[skill],
                false,
                t0() + k as i64,
            )
        })
        .collect();
    server.record(attempts).await;
}

fn list_request(learner: &str) -> pb::ListAlertsRequest {
    pb::ListAlertsRequest {
        learner_id: learner.into(),
        ..Default::default()
    }
}

fn blocking(alerts: &[pb::Alert]) -> Vec<&pb::Alert> {
    alerts
        .iter()
        .filter(|a| a.kind == pb::AlertKind::BlockingPoint as i32)
        .collect()
}

async fn next_event(stream: &mut Streaming<pb::AlertEvent>, within: Duration) -> pb::AlertEvent {
    tokio::time::timeout(within, stream.next())
        .await
        .expect("no alert event in time")
        .expect("stream ended")
        .expect("stream error")
}

/// Sixteen learners of five companies enrolled in `program`, one cohort
/// formed; returns the cohort id.
async fn cohort_fixture(server: &TestServer, program: &str) -> String {
    let people: Vec<pb::Learner> = staff("l", 16, "co", 5);
    seed_cohort_program(server, program, None, &people).await;
    server.form_one_cohort(program).await
}

async fn watch(
    server: &TestServer,
    cohort_ids: Vec<String>,
    program_id: &str,
    after_sequence: u64,
) -> Streaming<pb::AlertEvent> {
    server
        .alerts()
        .await
        .watch_alerts(pb::WatchAlertsRequest {
            cohort_ids,
            program_id: program_id.into(),
            after_sequence,
        })
        .await
        .expect("watch alerts")
        .into_inner()
}

#[tokio::test]
async fn blocking_point_is_streamed_updated_not_duplicated_and_resumable() {
    let server = TestServer::start().await;
    let cohort = cohort_fixture(&server, "p").await;
    let mut stream = watch(&server, vec![cohort.clone()], "", 0).await;

    // Three failures on one skill without mastery gain: a blocking point,
    // on the open stream within a second of the reply.
    fail(&server, "l00", "a", "l00-a", 3).await;
    let sent = Instant::now();
    let raised = next_event(&mut stream, Duration::from_secs(1)).await;
    assert!(sent.elapsed() < Duration::from_secs(1));
    assert!(!raised.snapshot);
    let alert = raised.alert.expect("alert");
    assert_eq!(alert.kind, pb::AlertKind::BlockingPoint as i32);
    assert_eq!(alert.learner_id, "l00");
    assert_eq!(alert.program_id, "p");
    assert_eq!(alert.cohort_id, cohort);
    assert_eq!(alert.status, pb::AlertStatus::Open as i32);
    assert_eq!(alert.severity, pb::AlertSeverity::Warning as i32);
    assert_eq!(alert.skill_id, "a");
    assert!(
        alert
            .reason
            .starts_with("3 failed attempts on skill 'Skill a' since"),
        "{}",
        alert.reason
    );
    assert_eq!(alert.signals["streak_failures"], 3.0);
    assert!(alert.created_at.is_some() && alert.updated_at.is_some());

    // A fourth failure updates the same alert.
    fail(&server, "l00", "a", "l00-a4", 1).await;
    let updated = next_event(&mut stream, Duration::from_secs(1))
        .await
        .alert
        .unwrap();
    assert_eq!(updated.id, alert.id);
    assert!(updated.sequence > alert.sequence);
    assert!(
        updated.reason.starts_with("4 failed attempts"),
        "{}",
        updated.reason
    );
    assert_eq!(updated.created_at, alert.created_at);
    let listed = server
        .alerts_when(list_request("l00"), |a| !a.is_empty())
        .await;
    assert_eq!(
        blocking(&listed).len(),
        1,
        "one alert, not two: {listed:#?}"
    );
    let last_seen = updated.sequence;

    // Disconnect; meanwhile a new alert is raised and one acknowledged.
    drop(stream);
    fail(&server, "l01", "b", "l01-b", 3).await;
    server
        .alerts_when(list_request("l01"), |a| !blocking(a).is_empty())
        .await;
    server
        .alerts()
        .await
        .acknowledge_alert(pb::AcknowledgeAlertRequest {
            alert_id: alert.id.clone(),
            by: "trainer-1".into(),
            note: "called her".into(),
        })
        .await
        .expect("acknowledge");

    // Resuming from the last position replays both changes, in order.
    let mut resumed = watch(&server, vec![cohort.clone()], "", last_seen).await;
    let first = next_event(&mut resumed, Duration::from_secs(2)).await;
    let second = next_event(&mut resumed, Duration::from_secs(2)).await;
    assert!(!first.snapshot && !second.snapshot);
    let (first, second) = (first.alert.unwrap(), second.alert.unwrap());
    assert!(last_seen < first.sequence && first.sequence < second.sequence);
    assert_eq!(first.learner_id, "l01");
    assert_eq!(second.id, alert.id);
    assert_eq!(second.status, pb::AlertStatus::Acknowledged as i32);
    assert_eq!(second.status_by, "trainer-1");
    assert_eq!(second.note, "called her");
    // ...and nothing else happened.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), resumed.next())
            .await
            .is_err(),
        "no other change"
    );
    // Live changes follow the replay on the same stream.
    fail(&server, "l02", "a", "l02-a", 3).await;
    let live = next_event(&mut resumed, Duration::from_secs(1)).await;
    assert_eq!(live.alert.unwrap().learner_id, "l02");

    // A fresh watch of the program starts with the active alerts.
    let mut fresh = watch(&server, vec![], "p", 0).await;
    let mut snapshot = Vec::new();
    for _ in 0..3 {
        let event = next_event(&mut fresh, Duration::from_secs(2)).await;
        assert!(event.snapshot);
        snapshot.push(event.alert.unwrap().learner_id);
    }
    snapshot.sort();
    assert_eq!(snapshot, ["l00", "l01", "l02"]);
    server.stop().await;
}

#[tokio::test]
async fn trainers_acknowledge_and_resolve_and_the_engine_resolves_cleared_conditions() {
    let server = TestServer::start().await;
    seed(&server).await;
    server.enroll(&["alice", "bob"], "excel").await;
    let mut client = server.alerts().await;

    fail(&server, "alice", "a", "al", 3).await;
    let alert = blocking(
        &server
            .alerts_when(list_request("alice"), |a| !blocking(a).is_empty())
            .await,
    )[0]
    .clone();

    let acked = client
        .acknowledge_alert(pb::AcknowledgeAlertRequest {
            alert_id: alert.id.clone(),
            by: "trainer-1".into(),
            note: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acked.status, pb::AlertStatus::Acknowledged as i32);
    assert!(acked.sequence > alert.sequence);
    // Acknowledging again changes nothing.
    let again = client
        .acknowledge_alert(pb::AcknowledgeAlertRequest {
            alert_id: alert.id.clone(),
            by: "trainer-2".into(),
            note: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, acked);

    let resolved = client
        .resolve_alert(pb::ResolveAlertRequest {
            alert_id: alert.id.clone(),
            by: "trainer-1".into(),
            note: "pair session booked".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.status, pb::AlertStatus::Resolved as i32);
    assert!(resolved.resolved_at.is_some());
    assert_eq!(resolved.note, "pair session booked");
    let refused = client
        .acknowledge_alert(pb::AcknowledgeAlertRequest {
            alert_id: alert.id.clone(),
            by: "trainer-1".into(),
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        client
            .get_alert(pb::GetAlertRequest {
                alert_id: alert.id.clone()
            })
            .await
            .unwrap()
            .into_inner(),
        resolved,
        "a refused call changes nothing"
    );

    // Still blocked, but the trainer closed this episode: the next failure
    // raises nothing. A right answer ends the episode (there is nothing
    // to resolve), and a new run of failures is a new episode.
    fail(&server, "alice", "a", "al4", 1).await;
    let answer = |id: &str, correct: bool, at: i64| attempt(id, "alice", &["a"], correct, at);
    server
        .mastery()
        .await
        .record_attempts(pb::RecordAttemptsRequest {
            attempts: vec![answer("al-ok", true, t0() + 100)],
        })
        .await
        .unwrap();
    server
        .mastery()
        .await
        .record_attempts(pb::RecordAttemptsRequest {
            attempts: (0..3)
                .map(|k| answer(&format!("al-again-{k}"), false, t0() + 200 + k))
                .collect(),
        })
        .await
        .unwrap();
    let alerts = server
        .alerts_when(list_request("alice"), |a| blocking(a).len() == 2)
        .await;
    let new = blocking(&alerts)
        .into_iter()
        .find(|a| a.id != alert.id)
        .unwrap()
        .clone();
    assert_eq!(new.status, pb::AlertStatus::Open as i32);
    assert!(
        new.reason.starts_with("3 failed"),
        "no alert for the closed episode's fourth failure: {}",
        new.reason
    );

    // A right answer ends the streak: the engine resolves the alert.
    server
        .mastery()
        .await
        .record_attempts(pb::RecordAttemptsRequest {
            attempts: vec![answer("al-ok2", true, t0() + 300)],
        })
        .await
        .unwrap();
    let alerts = server
        .alerts_when(list_request("alice"), |a| {
            a.iter()
                .any(|x| x.id == new.id && x.status == pb::AlertStatus::Resolved as i32)
        })
        .await;
    let cleared = alerts.iter().find(|a| a.id == new.id).unwrap();
    assert_eq!(cleared.status_by, "engine");
    assert_eq!(cleared.note, "condition cleared");
    assert_eq!(blocking(&alerts).len(), 2, "{alerts:#?}");
    server.stop().await;
}

#[tokio::test]
async fn filters_and_pages() {
    let server = TestServer::start().await;
    // Filters and pages, not the budget: every alert may be open.
    server.engine.set_alert_budget(0);
    seed(&server).await;
    let mut learners = server.learners().await;
    for id in ["carol", "dave"] {
        learners
            .upsert_learner(pb::UpsertLearnerRequest {
                learner: Some(learner(id, "initech")),
            })
            .await
            .unwrap();
    }
    server
        .programs()
        .await
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(pb::Program {
                id: "sql".into(),
                name: "SQL".into(),
                skill_ids: vec!["a".into()],
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    for (learner_id, program_id) in [
        ("alice", "excel"),
        ("bob", "excel"),
        ("carol", "excel"),
        ("dave", "excel"),
        ("alice", "sql"),
    ] {
        learners
            .enroll_learner(pb::EnrollLearnerRequest {
                enrolled_at: None,
                learner_id: learner_id.into(),
                program_id: program_id.into(),
            })
            .await
            .unwrap();
    }
    for id in ["alice", "bob", "carol"] {
        fail(&server, id, "a", id, 3).await;
    }
    let all = server
        .alerts_when(pb::ListAlertsRequest::default(), |a| blocking(a).len() == 4)
        .await;
    let mut client = server.alerts().await;

    // Pages of two cover everything once, in creation order.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_alerts(pb::ListAlertsRequest {
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.alerts.len() <= 2);
        paged.extend(page.alerts);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, all);
    assert!(paged.windows(2).all(|w| w[0].id < w[1].id));

    let count = |request: pb::ListAlertsRequest| {
        let mut client = client.clone();
        async move {
            client
                .list_alerts(request)
                .await
                .unwrap()
                .into_inner()
                .alerts
                .len()
        }
    };
    let sql_only = pb::ListAlertsRequest {
        program_id: "sql".into(),
        ..Default::default()
    };
    assert_eq!(count(sql_only).await, 1);
    assert_eq!(count(list_request("alice")).await, 2);
    assert_eq!(
        count(pb::ListAlertsRequest {
            program_id: "excel".into(),
            learner_id: "bob".into(),
            kind: pb::AlertKind::BlockingPoint as i32,
            status: pb::AlertStatus::Open as i32,
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        count(pb::ListAlertsRequest {
            kind: pb::AlertKind::Inactivity as i32,
            ..Default::default()
        })
        .await,
        0
    );
    assert_eq!(
        count(pb::ListAlertsRequest {
            status: pb::AlertStatus::Resolved as i32,
            ..Default::default()
        })
        .await,
        0
    );
    assert_eq!(count(list_request("dave")).await, 0);
    server.stop().await;
}

#[tokio::test]
async fn program_thresholds_are_applied_and_checked() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut programs = server.programs().await;
    let program = |rules: pb::RiskRules, start: i64, end: i64| pb::Program {
        external_ids: Vec::new(),
        id: "excel".into(),
        name: "Excel".into(),
        skill_ids: vec!["a".into(), "b".into()],
        cohort_rules: None,
        start_date: Some(prost_types::Timestamp {
            seconds: start,
            nanos: 0,
        }),
        end_date: Some(prost_types::Timestamp {
            seconds: end,
            nanos: 0,
        }),
        risk_rules: Some(rules),
    };
    let five = pb::RiskRules {
        blocking_failures: Some(5),
        inactivity_days: Some(30.0),
        mastery_drop: None,
    };
    let stored = programs
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(program(five, t0(), t0() + 86_400 * 56)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.risk_rules.unwrap().blocking_failures, Some(5));

    // Refusals name the field and leave the stored program unchanged.
    for (bad, field) in [
        (
            program(
                pb::RiskRules {
                    blocking_failures: Some(0),
                    ..Default::default()
                },
                t0(),
                t0() + 10,
            ),
            "program.risk_rules.blocking_failures",
        ),
        (
            program(
                pb::RiskRules {
                    inactivity_days: Some(-1.0),
                    ..Default::default()
                },
                t0(),
                t0() + 10,
            ),
            "program.risk_rules.inactivity_days",
        ),
        (
            program(
                pb::RiskRules {
                    mastery_drop: Some(1.5),
                    ..Default::default()
                },
                t0(),
                t0() + 10,
            ),
            "program.risk_rules.mastery_drop",
        ),
        (
            program(pb::RiskRules::default(), t0(), t0()),
            "program.end_date",
        ),
    ] {
        let status = programs
            .upsert_program(pb::UpsertProgramRequest { program: Some(bad) })
            .await
            .unwrap_err();
        assert_invalid_field(&status, field);
    }
    let now = programs
        .get_program(pb::GetProgramRequest {
            program_id: "excel".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now, stored);

    server.enroll(&["alice", "bob"], "excel").await;
    // Three failures are not a blocking point for this program; five are.
    fail(&server, "alice", "a", "al", 3).await;
    fail(&server, "bob", "a", "bo", 5).await;
    let bob = server
        .alerts_when(list_request("bob"), |a| !blocking(a).is_empty())
        .await;
    assert!(blocking(&bob)[0].reason.starts_with("5 failed"));
    let alice = server.list_alerts(list_request("alice")).await;
    assert!(blocking(&alice).is_empty(), "{alice:#?}");
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_name_the_field_and_unknown_ids_are_not_found() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut client = server.alerts().await;

    let status = client
        .get_alert(pb::GetAlertRequest::default())
        .await
        .unwrap_err();
    assert_invalid_field(&status, "alert_id");
    let status = client
        .get_alert(pb::GetAlertRequest {
            alert_id: "alert-0000000000000042".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .resolve_alert(pb::ResolveAlertRequest {
            alert_id: "alert-0000000000000042".into(),
            by: "t".into(),
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .acknowledge_alert(pb::AcknowledgeAlertRequest {
            alert_id: "alert-1".into(),
            by: String::new(),
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_invalid_field(&status, "by");

    for (request, field) in [
        (
            pb::ListAlertsRequest {
                kind: 99,
                ..Default::default()
            },
            "kind",
        ),
        (
            pb::ListAlertsRequest {
                status: 42,
                ..Default::default()
            },
            "status",
        ),
        (
            pb::ListAlertsRequest {
                page_size: -1,
                ..Default::default()
            },
            "page_size",
        ),
        (
            pb::ListAlertsRequest {
                page_token: "zz".into(),
                ..Default::default()
            },
            "page_token",
        ),
    ] {
        let status = client.list_alerts(request).await.unwrap_err();
        assert_invalid_field(&status, field);
    }
    for request in [
        pb::ListAlertsRequest {
            program_id: "nope".into(),
            ..Default::default()
        },
        pb::ListAlertsRequest {
            learner_id: "nobody".into(),
            ..Default::default()
        },
        pb::ListAlertsRequest {
            cohort_id: "nope/v1/c001".into(),
            ..Default::default()
        },
    ] {
        let status = client.list_alerts(request).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }

    let watch = |request: pb::WatchAlertsRequest| {
        let mut client = client.clone();
        async move { client.watch_alerts(request).await.map(|_| ()) }
    };
    let status = watch(pb::WatchAlertsRequest::default()).await.unwrap_err();
    assert_invalid_field(&status, "cohort_ids");
    let status = watch(pb::WatchAlertsRequest {
        cohort_ids: vec![String::new()],
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_invalid_field(&status, "cohort_ids[0]");
    let status = watch(pb::WatchAlertsRequest {
        program_id: "excel".into(),
        after_sequence: 1_000_000,
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_invalid_field(&status, "after_sequence");
    for request in [
        pb::WatchAlertsRequest {
            cohort_ids: vec!["nope/v1/c001".into()],
            ..Default::default()
        },
        pb::WatchAlertsRequest {
            program_id: "nope".into(),
            ..Default::default()
        },
    ] {
        let status = watch(request).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    server.stop().await;
}
