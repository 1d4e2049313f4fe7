//! Alerts worth a trainer's time, through gRPC: declared pauses silence
//! inactivity, a withdrawal and a completion resolve every alert, history
//! raises nothing of its own, a bulk load is evaluated once at its end,
//! the budget keeps the most urgent open and the rest in the digest, and
//! the retired PREDICTED_DROPOUT filter finds the model alerts that replace
//! it.

use std::time::Duration;

use crate::common::*;
use spoc_engine::api::pb;
use tonic::Code;

const DAY: i64 = 86_400;

fn at(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Every alert of `learner` (any status).
async fn alerts_of(server: &TestServer, learner: &str) -> Vec<pb::Alert> {
    server
        .list_alerts(pb::ListAlertsRequest {
            learner_id: learner.into(),
            ..Default::default()
        })
        .await
}

/// The alerts of `learner` once `done` holds of them.
async fn wait_for(
    server: &TestServer,
    learner: &str,
    done: impl Fn(&[pb::Alert]) -> bool,
) -> Vec<pb::Alert> {
    let request = pb::ListAlertsRequest {
        learner_id: learner.into(),
        ..Default::default()
    };
    server.alerts_when(request, done).await
}

/// Waits until the engine has evaluated everything it was given, then for
/// `passes` more full passes (the pass interval being short).
async fn settle(server: &TestServer, passes: u64) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let engine = &server.engine;
    eventually("idle alert evaluation", async || {
        engine.alerts_idle().then_some(())
    })
    .await;
    let from = engine.alert_evaluations();
    eventually("more evaluation passes", async || {
        (engine.alert_evaluations() >= from + passes).then_some(())
    })
    .await;
}

fn open(alerts: &[pb::Alert], kind: pb::AlertKind) -> Vec<&pb::Alert> {
    alerts
        .iter()
        .filter(|a| a.kind == kind as i32 && a.status != pb::AlertStatus::Resolved as i32)
        .collect()
}

/// Learners `ids` of `acme`, enrolled in `excel` at `enrolled_at`.
async fn join_excel(server: &TestServer, ids: &[String], enrolled_at: i64) {
    for id in ids {
        server
            .learners()
            .await
            .upsert_learner(pb::UpsertLearnerRequest {
                learner: Some(learner(id, "acme")),
            })
            .await
            .unwrap();
        enrol(server, id, "excel", enrolled_at).await;
    }
}

/// Three failed answers of each of `ids` on skill `a`, from `from` on.
async fn fail_three(server: &TestServer, ids: &[String], from: i64) {
    let mut mastery = server.mastery().await;
    for id in ids {
        let fails = (0..3)
            .map(|k| attempt(&format!("{id}-f{k}"), id, &["a"], false, from + k))
            .collect();
        mastery
            .record_attempts(pb::RecordAttemptsRequest { attempts: fails })
            .await
            .unwrap();
    }
}

async fn enrol(server: &TestServer, learner: &str, program: &str, enrolled_at: i64) {
    server
        .learners()
        .await
        .enroll_learner(pb::EnrollLearnerRequest {
            learner_id: learner.into(),
            program_id: program.into(),
            enrolled_at: at(enrolled_at),
        })
        .await
        .expect("enrol");
}

/// A learner enrolled ten days ago who never came: "check in". A declared
/// pause resolves it and keeps it silent; once the pause ends it is back;
/// a withdrawal resolves it for good. Bad declarations name the field.
#[tokio::test]
async fn a_declared_pause_silences_inactivity_and_a_withdrawal_resolves_it() {
    let server = TestServer::start().await;
    server
        .engine
        .set_alert_pass_interval(Duration::from_millis(200));
    seed(&server).await;
    enrol(&server, "alice", "excel", now() - 10 * DAY).await;
    let alerts = wait_for(&server, "alice", |a| {
        !open(a, pb::AlertKind::Inactivity).is_empty()
    })
    .await;
    let first = open(&alerts, pb::AlertKind::Inactivity)[0].clone();
    assert_eq!(first.severity, pb::AlertSeverity::Warning as i32);
    assert!(
        first
            .reason
            .starts_with("check in: no activity since enrolment"),
        "{}",
        first.reason
    );

    let mut client = server.alerts().await;
    let pause = client
        .declare_pause(pb::DeclarePauseRequest {
            learner_id: "alice".into(),
            program_id: "excel".into(),
            starts_at: None,
            ends_at: at(now() + 7 * DAY),
            note: "holidays".into(),
            by: "lms".into(),
        })
        .await
        .expect("declare pause")
        .into_inner();
    assert!(pause.pause_id.starts_with("pause-"));
    // Resolved by the declaration itself, saying why.
    let resolved = alerts_of(&server, "alice")
        .await
        .into_iter()
        .find(|a| a.id == first.id)
        .unwrap();
    assert_eq!(resolved.status, pb::AlertStatus::Resolved as i32);
    assert_eq!(resolved.note, "learner on a declared pause");
    // Passes come and go: nothing while the pause lasts.
    settle(&server, 3).await;
    let during = alerts_of(&server, "alice").await;
    assert!(
        open(&during, pb::AlertKind::Inactivity).is_empty()
            && open(&during, pb::AlertKind::Stopping).is_empty(),
        "{during:#?}"
    );
    let listed = client
        .list_pauses(pb::ListPausesRequest {
            program_id: "excel".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .pauses;
    assert_eq!(listed, vec![pause.clone()]);

    // Back early: the pause ends now, and the check-in comes back.
    let ended = client
        .end_pause(pb::EndPauseRequest {
            learner_id: "alice".into(),
            pause_id: pause.pause_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ended.ends_at.unwrap().seconds <= now());
    let back = wait_for(&server, "alice", |a| {
        !open(a, pb::AlertKind::Inactivity).is_empty()
    })
    .await;
    let again = open(&back, pb::AlertKind::Inactivity)[0].clone();
    assert_ne!(again.id, first.id);

    // Withdrawn: resolved, and nothing more.
    let withdrawal = client
        .withdraw_learner(pb::WithdrawLearnerRequest {
            learner_id: "alice".into(),
            program_id: "excel".into(),
            withdrawn_at: None,
            note: "left the company".into(),
            by: "lms".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(withdrawal.program_id, "excel");
    let after = alerts_of(&server, "alice").await;
    let closed = after.iter().find(|a| a.id == again.id).unwrap();
    assert_eq!(closed.note, "learner withdrawn from the program");
    settle(&server, 3).await;
    let later = alerts_of(&server, "alice").await;
    assert!(
        later
            .iter()
            .all(|a| a.status == pb::AlertStatus::Resolved as i32),
        "{later:#?}"
    );

    // Refusals name the field; unknown objects are NOT_FOUND.
    let declare = |learner: &str, program: &str, ends: Option<prost_types::Timestamp>| {
        pb::DeclarePauseRequest {
            learner_id: learner.into(),
            program_id: program.into(),
            starts_at: at(now()),
            ends_at: ends,
            note: String::new(),
            by: "lms".into(),
        }
    };
    for (request, field) in [
        (declare("bob", "", None), "ends_at"),
        (declare("bob", "", at(now() - DAY)), "ends_at"),
        (declare("bob", "", at(now() + 400 * DAY)), "ends_at"),
        (declare("", "", at(now() + DAY)), "learner_id"),
    ] {
        let status = client.declare_pause(request).await.unwrap_err();
        assert_invalid_field(&status, field);
    }
    let status = client
        .declare_pause(declare("nobody", "", at(now() + DAY)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .declare_pause(declare("bob", "excel", at(now() + DAY)))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "bob is not enrolled"
    );
    server.stop().await;
}

/// Three failures make a blocking point; completing the program (both
/// modules) resolves it, and old failures (three weeks ago) raise nothing.
#[tokio::test]
async fn completion_resolves_every_alert_and_history_raises_none() {
    let server = TestServer::start().await;
    // Two learners would share one seat: the budget is another test's.
    server.engine.set_alert_budget(0);
    seed(&server).await;
    enrol(&server, "alice", "excel", t0()).await;
    enrol(&server, "bob", "excel", now() - 30 * DAY).await;
    let mut mastery = server.mastery().await;
    let fails = |who: &str, base: i64| pb::RecordAttemptsRequest {
        attempts: (0..3)
            .map(|k| attempt(&format!("{who}-{k}"), who, &["a"], false, base + k))
            .collect(),
    };
    mastery.record_attempts(fails("alice", t0())).await.unwrap();
    // Bob's failures are three weeks old: history, not news.
    mastery
        .record_attempts(fails("bob", now() - 21 * DAY))
        .await
        .unwrap();
    let alerts = wait_for(&server, "alice", |a| {
        !open(a, pb::AlertKind::BlockingPoint).is_empty()
    })
    .await;
    let blocking = open(&alerts, pb::AlertKind::BlockingPoint)[0].clone();
    // Bob's old failures were a bulk load: evaluated once it ended.
    settle(&server, 0).await;
    assert!(
        open(
            &alerts_of(&server, "bob").await,
            pb::AlertKind::BlockingPoint
        )
        .is_empty(),
        "old failures raised a blocking point"
    );

    server
        .remediation()
        .await
        .record_activity(pb::RecordActivityRequest {
            activities: vec![
                activity("al-m-a", "alice", "m-a", true, t0() + 10, 10),
                activity("al-m-b", "alice", "m-b", true, t0() + 20, 10),
            ],
        })
        .await
        .unwrap();
    let alerts = wait_for(&server, "alice", |a| {
        a.iter()
            .any(|x| x.id == blocking.id && x.status == pb::AlertStatus::Resolved as i32)
    })
    .await;
    let done = alerts.iter().find(|a| a.id == blocking.id).unwrap();
    assert_eq!(done.note, "learner completed the program");
    assert_eq!(done.status_by, "engine");
    server.stop().await;
}

/// A bulk load (events an hour or two old) is evaluated once, when it has
/// ended: failures followed, in a later call, by right answers raise
/// nothing and resolve nothing, where evaluating each call would have
/// raised a blocking point and resolved it.
#[tokio::test]
async fn a_bulk_load_is_evaluated_once_at_its_end() {
    let server = TestServer::start().await;
    // The load's batches below are half a second apart; a quiet time well
    // above the default keeps a stalled test machine from ending the load
    // between them (the feature, not the machine, is under test).
    server.engine.set_load_settle(Duration::from_secs(12));
    seed(&server).await;
    let learners: Vec<String> = (0..10).map(|i| format!("h{i}")).collect();
    join_excel(&server, &learners, now() - 2 * DAY).await;
    let two_hours_ago = now() - 7200;
    fail_three(&server, &learners, two_hours_ago).await;
    let mut mastery = server.mastery().await;
    // Time for the evaluation thread to see the first calls.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in &learners {
        let right = (0..2)
            .map(|k| {
                attempt(
                    &format!("{id}-r{k}"),
                    id,
                    &["a"],
                    true,
                    two_hours_ago + 600 + k,
                )
            })
            .collect();
        mastery
            .record_attempts(pb::RecordAttemptsRequest { attempts: right })
            .await
            .unwrap();
    }
    settle(&server, 0).await;
    let all = server.list_alerts(pb::ListAlertsRequest::default()).await;
    assert!(
        all.iter()
            .all(|a| a.kind != pb::AlertKind::BlockingPoint as i32),
        "{all:#?}"
    );
    assert!(
        all.iter()
            .all(|a| a.status != pb::AlertStatus::Resolved as i32),
        "alerts raised and resolved within the load: {all:#?}"
    );
    server.stop().await;
}

/// Ten learners without a cohort share a budget of 2 open alerts: five
/// blocking points make 2 alerts and 3 digest entries; acknowledging one
/// makes room for the next.
#[tokio::test]
async fn the_budget_keeps_a_handful_open_and_the_rest_in_the_digest() {
    let server = TestServer::start().await;
    server
        .engine
        .set_alert_pass_interval(Duration::from_millis(200));
    seed(&server).await;
    let learners: Vec<String> = (0..10).map(|i| format!("b{i}")).collect();
    join_excel(&server, &learners, t0()).await;
    fail_three(&server, &learners[..5], t0()).await;
    settle(&server, 2).await;
    let mut client = server.alerts().await;
    let listed = |client: &mut pb::alert_service_client::AlertServiceClient<AuthChannel>| {
        let mut client = client.clone();
        async move {
            client
                .list_alerts(pb::ListAlertsRequest {
                    status: pb::AlertStatus::Open as i32,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .alerts
        }
    };
    let open_now = listed(&mut client).await;
    assert_eq!(open_now.len(), 2, "{open_now:#?}");
    let digest = client
        .get_alert_digest(pb::GetAlertDigestRequest {
            program_id: "excel".into(),
            cohort_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((digest.open, digest.budget), (2, 2));
    assert_eq!(digest.entries.len(), 3, "{digest:#?}");
    assert!(
        digest
            .entries
            .iter()
            .all(|e| e.kind == pb::AlertKind::BlockingPoint as i32)
    );
    client
        .acknowledge_alert(pb::AcknowledgeAlertRequest {
            alert_id: open_now[0].id.clone(),
            by: "trainer-1".into(),
            note: String::new(),
        })
        .await
        .unwrap();
    eventually("room made for a second alert", async || {
        (listed(&mut client).await.len() == 2).then_some(())
    })
    .await;
    server.stop().await;
}

/// A program with a calendar: a learner who works but has covered nothing
/// at half time is behind schedule; a ListAlerts filter on the retired
/// PREDICTED_DROPOUT finds that alert (the kind it was replaced by).
#[tokio::test]
async fn behind_schedule_replaces_predicted_dropout_for_existing_filters() {
    let server = TestServer::start().await;
    seed(&server).await;
    server
        .programs()
        .await
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(pb::Program {
                start_date: at(now() - 30 * DAY),
                end_date: at(now() + 10 * DAY),
                ..excel_program()
            }),
        })
        .await
        .unwrap();
    enrol(&server, "alice", "excel", now() - 30 * DAY).await;
    server
        .remediation()
        .await
        .record_activity(pb::RecordActivityRequest {
            activities: vec![activity("al-start", "alice", "m-a", false, t0(), 20)],
        })
        .await
        .unwrap();
    let alerts = wait_for(&server, "alice", |a| {
        !open(a, pb::AlertKind::BehindSchedule).is_empty()
    })
    .await;
    let behind = open(&alerts, pb::AlertKind::BehindSchedule)[0].clone();
    assert!(
        behind
            .reason
            .starts_with("behind schedule: 0 of 2 units done at 75% of the program"),
        "{}",
        behind.reason
    );
    assert!(behind.signals["behind_schedule_risk"] >= 0.9);
    let by_old_kind = server
        .alerts()
        .await
        .list_alerts(pb::ListAlertsRequest {
            kind: pb::AlertKind::PredictedDropout as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert_eq!(
        by_old_kind.iter().map(|a| &a.id).collect::<Vec<_>>(),
        [&behind.id]
    );
    server.stop().await;
}
