//! Remediation through gRPC: recommendations, their reasons, activity.

use crate::common::*;
use spoc_engine::api::pb;
use tonic::Code;

fn activity(id: &str, module: &str, kind: pb::ActivityKind, seconds: i64) -> pb::ModuleActivity {
    pb::ModuleActivity {
        event_id: id.into(),
        learner_id: "alice".into(),
        module_id: module.into(),
        program_id: "excel".into(),
        kind: kind as i32,
        occurred_at: Some(prost_types::Timestamp { seconds, nanos: 0 }),
        time_spent: Some(prost_types::Duration {
            seconds: 600,
            nanos: 0,
        }),
    }
}

/// The common seed, with alice enrolled in `excel` (RecommendNext serves
/// enrolled learners only).
async fn seed_enrolled(server: &TestServer) {
    seed(server).await;
    server
        .learners()
        .await
        .enroll_learner(pb::EnrollLearnerRequest {
            learner_id: "alice".into(),
            program_id: "excel".into(),
            enrolled_at: None,
        })
        .await
        .expect("enrol alice");
}

/// A request for `count` recommendations to `learner` in `program`,
/// excluding nothing.
fn recommend(learner: &str, program: &str, count: i32) -> pb::RecommendNextRequest {
    pb::RecommendNextRequest {
        learner_id: learner.into(),
        program_id: program.into(),
        count,
        exclude_module_ids: vec![],
    }
}

/// A beginner is sent to the root skill's module with a reason in words;
/// once a and b are mastered, the missing content for c is said, not hidden.
#[tokio::test]
async fn recommends_the_ready_skill_and_reports_missing_content() {
    let server = TestServer::start().await;
    seed_enrolled(&server).await;
    let mut remediation = server.remediation().await;
    let ask = recommend("alice", "excel", 3);
    let first = remediation
        .recommend_next(ask.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.status, pb::RecommendationStatus::Recommending as i32);
    let top = &first.recommendations[0];
    assert_eq!(
        (top.module_id.as_str(), top.skill_id.as_str()),
        ("m-a", "a")
    );
    assert!((top.p_mastered - 0.2).abs() < 1e-9, "prior of a");
    assert!(top.expected_gain > 0.0);
    assert!(top.reason.contains("0.95"), "reason: {}", top.reason);
    assert!(
        first.recommendations.iter().all(|r| r.skill_id == "a"),
        "b is not ready before a is mastered: {:?}",
        first.recommendations
    );

    // Same state, same answer.
    let again = remediation
        .recommend_next(ask.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, first);

    // Master a and b with many right answers.
    let attempts = (0..20)
        .flat_map(|i| {
            [
                attempt(&format!("a{i}"), "alice", &["a"], true, 1_700_000_000 + i),
                attempt(&format!("b{i}"), "alice", &["b"], true, 1_700_000_000 + i),
            ]
        })
        .collect();
    server.record(attempts).await;
    let later = remediation.recommend_next(ask).await.unwrap().into_inner();
    assert_eq!(later.status, pb::RecommendationStatus::NoContent as i32);
    assert!(later.recommendations.is_empty());
    assert!(
        later.shortfall.contains('c'),
        "shortfall: {}",
        later.shortfall
    );
    server.stop().await;
}

/// Unknown learner or program is NOT_FOUND; bad counts are INVALID_ARGUMENT.
#[tokio::test]
async fn unknown_ids_and_bad_counts_are_refused() {
    let server = TestServer::start().await;
    seed_enrolled(&server).await;
    let mut remediation = server.remediation().await;
    for (req, code) in [
        (recommend("zz", "excel", 1), Code::NotFound),
        (recommend("alice", "zz", 1), Code::NotFound),
        (recommend("", "excel", 1), Code::InvalidArgument),
        (recommend("alice", "", 1), Code::InvalidArgument),
        (recommend("alice", "excel", -1), Code::InvalidArgument),
        (recommend("alice", "excel", 51), Code::InvalidArgument),
    ] {
        let err = remediation.recommend_next(req.clone()).await.unwrap_err();
        assert_eq!(err.code(), code, "{req:?}: {}", err.message());
    }
    // One rule for "not enrolled" (AIP-193: the state forbids it):
    // RecommendNext and GetCertification agree.
    let err = remediation
        .recommend_next(recommend("bob", "excel", 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    assert!(err.message().contains("not enrolled"), "{}", err.message());
    let cert = server
        .reports()
        .await
        .get_certification(pb::GetCertificationRequest {
            learner_id: "bob".into(),
            program_id: "excel".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(cert.code(), err.code(), "{}", cert.message());
    // An unknown program named by an activity is NOT_FOUND, at its index.
    let mut events = vec![activity(
        "ok",
        "m-a",
        pb::ActivityKind::Started,
        1_700_000_000,
    )];
    let mut bad = activity("bad", "m-a", pb::ActivityKind::Started, 1_700_000_001);
    bad.program_id = "nope".into();
    events.push(bad);
    let err = remediation
        .record_activity(pb::RecordActivityRequest { activities: events })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());
    assert_field_named(&err, "activities[1].program_id");
    // Time spent: up to a week (the longest module), as over xAPI.
    let week = 7 * 24 * 3600;
    let mut long = activity("week", "m-a", pb::ActivityKind::Started, 1_700_000_002);
    long.time_spent = Some(prost_types::Duration {
        seconds: week,
        nanos: 0,
    });
    remediation
        .record_activity(pb::RecordActivityRequest {
            activities: vec![long.clone()],
        })
        .await
        .unwrap();
    long.event_id = "longer".into();
    long.time_spent = Some(prost_types::Duration {
        seconds: week,
        nanos: 1_000_000,
    });
    let err = remediation
        .record_activity(pb::RecordActivityRequest {
            activities: vec![long],
        })
        .await
        .unwrap_err();
    assert_invalid_field(&err, "activities[0].time_spent");
    server.stop().await;
}

/// Activity is idempotent per event id, refuses unknown modules, and a
/// module that failed to move mastery is not offered again first.
#[tokio::test]
async fn activity_is_idempotent_and_steers_the_policy() {
    let server = TestServer::start().await;
    seed_enrolled(&server).await;
    // A second module for skill a, in another format.
    server
        .catalog()
        .await
        .upsert_module(pb::UpsertModuleRequest {
            module: Some(module("m-a2", &["a"], pb::ModuleFormat::SeriousGame, 10)),
        })
        .await
        .unwrap();
    let mut remediation = server.remediation().await;
    let ask = recommend("alice", "excel", 2);
    let before = remediation
        .recommend_next(ask.clone())
        .await
        .unwrap()
        .into_inner();
    let first_choice = before.recommendations[0].module_id.clone();

    let done = activity(
        "e1",
        &first_choice,
        pb::ActivityKind::Completed,
        1_700_000_000,
    );
    // Recorded once, then a duplicate.
    for expected in [(1, 0), (0, 1)] {
        let reply = remediation
            .record_activity(pb::RecordActivityRequest {
                activities: vec![done.clone()],
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((reply.recorded, reply.duplicates), expected);
    }
    let mut changed = done;
    changed.kind = pb::ActivityKind::Started as i32;
    let err = remediation
        .record_activity(pb::RecordActivityRequest {
            activities: vec![changed],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let err = remediation
        .record_activity(pb::RecordActivityRequest {
            activities: vec![activity(
                "e2",
                "zz",
                pb::ActivityKind::Started,
                1_700_000_000,
            )],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message().starts_with("activities[0].module_id: "),
        "{}",
        err.message()
    );

    // The quiz after the module is wrong: mastery did not move.
    server
        .mastery()
        .await
        .record_attempts(pb::RecordAttemptsRequest {
            attempts: vec![attempt("q1", "alice", &["a"], false, 1_700_000_100)],
        })
        .await
        .unwrap();
    let after = remediation.recommend_next(ask).await.unwrap().into_inner();
    assert_ne!(
        after.recommendations[0].module_id, first_choice,
        "a module that just failed is not recommended first again"
    );
    server.stop().await;
}

/// What RecommendNext served is remembered, so the at-risk signal "share of
/// recommended modules started" counts the ones the learner then opened.
#[tokio::test]
async fn recommended_modules_feed_the_started_share_signal() {
    use spoc_engine::clock::now_micros;
    use spoc_engine::domain::activity::{Activity, ActivityKind};
    use spoc_engine::domain::catalog::{Format, Module, Skill};

    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = crate::common::engine_in(dir.path());
    let skill = Skill {
        id: "a".into(),
        name: "A".into(),
        prerequisite_ids: vec![],
    };
    let modules = ["m1", "m2", "m3"].map(|id| Module {
        external_ids: Vec::new(),
        id: id.into(),
        title: id.into(),
        skill_ids: vec!["a".into()],
        format: Format::Video,
        duration_minutes: 10,
        language: "fr".into(),
    });
    engine
        .import_catalog(vec![skill], modules.to_vec())
        .await
        .unwrap();
    engine
        .upsert_learner(crate::common::engine_learner("l", "fr"))
        .await
        .unwrap();
    let program = engine
        .upsert_program(crate::common::engine_program("p", vec!["a".into()]))
        .await
        .unwrap();
    let enrolment = engine.enroll("l", "p").await.unwrap();
    let served = engine
        .recommend_next("l", "p", 2, &Default::default())
        .unwrap();
    assert_eq!(served.items.len(), 2);
    engine
        .record_activity(vec![Activity {
            event_id: "e1".into(),
            learner_id: "l".into(),
            module_id: served.items[0].module_id.clone(),
            program_id: "p".into(),
            kind: ActivityKind::Started,
            occurred_at: now_micros(),
            time_spent_ms: 0,
        }])
        .await
        .unwrap();
    let input = engine
        .signal_input(&program, &enrolment, now_micros() + 1, 0)
        .unwrap();
    assert_eq!(
        (input.recommended_modules, input.recommended_started),
        (2, 1)
    );
}

/// A learner whose every skill looks mastered is not certified on answers
/// older than the latest module: RecommendNext asks diagnostic items from
/// the bank (VERIFYING), and answering them certifies (ALL_MASTERED, no
/// recommendation).
#[tokio::test]
async fn certification_asks_diagnostic_items_then_certifies() {
    let server = TestServer::start().await;
    seed_enrolled(&server).await;
    add_items(&server, &["a", "b", "c"]).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let start = now - 3_600;
    // Eight right answers on each skill, then module m-a completed.
    let mut answers = Vec::new();
    for (k, skill) in ["a", "b", "c"].iter().enumerate() {
        for i in 0..8 {
            let id = format!("{skill}{i}");
            answers.push(attempt(
                &id,
                "alice",
                &[skill],
                true,
                start + (k * 10 + i) as i64,
            ));
        }
    }
    let mut mastery = pb::mastery_service_client::MasteryServiceClient::new(server.channel().await);
    mastery
        .record_attempts(pb::RecordAttemptsRequest { attempts: answers })
        .await
        .expect("record answers");
    let mut remediation = server.remediation().await;
    remediation
        .record_activity(pb::RecordActivityRequest {
            activities: vec![activity(
                "done-a",
                "m-a",
                pb::ActivityKind::Completed,
                start + 100,
            )],
        })
        .await
        .expect("record activity");
    let ask = recommend("alice", "excel", 5);
    let answer = remediation
        .recommend_next(ask.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.status,
        pb::RecommendationStatus::Verifying as i32,
        "{answer:?}"
    );
    assert_eq!(answer.recommendations.len(), 3, "{answer:?}");
    for r in &answer.recommendations {
        assert_eq!(r.kind, pb::RecommendationKind::Diagnostic as i32);
        assert_eq!(
            r.target,
            pb::RecommendationTarget::CertificationEvidence as i32
        );
        assert!(r.module_id.is_empty() && !r.item_ids.is_empty(), "{r:?}");
        assert_eq!(r.format, pb::ModuleFormat::Quiz as i32);
        assert_eq!(r.duration_minutes as usize, r.item_ids.len());
        assert!(
            r.item_ids
                .iter()
                .all(|i| i.starts_with(&format!("{}-q", r.skill_id))),
            "items of the bank on the skill: {r:?}"
        );
        assert!(
            r.reason.contains("before the program is certified"),
            "{}",
            r.reason
        );
    }
    // The learner answers every item asked, right.
    let mut asked = Vec::new();
    for (n, r) in answer.recommendations.iter().enumerate() {
        for (k, item) in r.item_ids.iter().enumerate() {
            asked.push(pb::Attempt {
                item_id: item.clone(),
                ..attempt(
                    &format!("check-{n}-{k}"),
                    "alice",
                    &[&r.skill_id],
                    true,
                    start + 200 + (n * 10 + k) as i64,
                )
            });
        }
    }
    mastery
        .record_attempts(pb::RecordAttemptsRequest { attempts: asked })
        .await
        .expect("record checks");
    let done = remediation.recommend_next(ask).await.unwrap().into_inner();
    assert_eq!(
        done.status,
        pb::RecommendationStatus::AllMastered as i32,
        "{done:?}"
    );
    assert!(done.recommendations.is_empty());
}
