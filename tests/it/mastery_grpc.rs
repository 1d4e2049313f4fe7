//! The mastery path through gRPC, end to end: catalog, learners,
//! programs, attempts and mastery, a restart, the refusals every RPC
//! shares, and the standard services (health, reflection).

use crate::common::*;
use spoc_engine::api::pb;
use tonic::Code;

/// Catalog objects come back as written, pages cover everything once, and a
/// cycle or an unknown prerequisite is refused without touching the store.
#[tokio::test]
async fn catalog_round_trip_pagination_and_cycle_refusal() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut catalog = server.catalog().await;

    let b = catalog
        .get_skill(pb::GetSkillRequest {
            skill_id: "b".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(b, skill("b", &["a"]));
    let m = catalog
        .get_module(pb::GetModuleRequest {
            module_id: "m-b".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.format, pb::ModuleFormat::Exercise as i32);
    assert_eq!(m.duration_minutes, 20);

    // Pages of 2 over 3 skills.
    let first = catalog
        .list_skills(pb::ListSkillsRequest {
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.skills.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = catalog
        .list_skills(pb::ListSkillsRequest {
            page_size: 2,
            page_token: first.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = first
        .skills
        .iter()
        .chain(&second.skills)
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert!(second.next_page_token.is_empty());

    // a -> c closes the cycle a <- b <- c <- a.
    let err = catalog
        .upsert_skill(pb::UpsertSkillRequest {
            skill: Some(skill("a", &["c"])),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("prerequisite cycle"),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("a -> c -> b -> a"),
        "{}",
        err.message()
    );
    let a = catalog
        .get_skill(pb::GetSkillRequest {
            skill_id: "a".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        a.prerequisite_ids.is_empty(),
        "stored catalog must be unchanged"
    );

    // An import with one bad module stores nothing at all.
    let err = catalog
        .import_catalog(pb::ImportCatalogRequest {
            skills: vec![skill("d", &["c"])],
            modules: vec![module("m-x", &["nope"], pb::ModuleFormat::Video, 5)],
            items: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("modules[0].skill_ids[0]") && err.message().contains("'nope'"));
    let missing = catalog
        .get_skill(pb::GetSkillRequest {
            skill_id: "d".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let unknown_prereq = catalog
        .upsert_skill(pb::UpsertSkillRequest {
            skill: Some(skill("e", &["zz"])),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown_prereq.code(), Code::NotFound);
    assert!(unknown_prereq.message().contains("'zz'"));
    server.stop().await;
}

/// Field errors carry a google.rpc.BadRequest naming the field.
#[tokio::test]
async fn bad_fields_are_named_in_bad_request_details() {
    use tonic_types::StatusExt;
    let server = TestServer::start().await;
    let mut catalog = server.catalog().await;
    let mut bad = module("m", &["a"], pb::ModuleFormat::Unspecified, 10);
    bad.duration_minutes = 0;
    let err = catalog
        .upsert_module(pb::UpsertModuleRequest { module: Some(bad) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let details = err.get_error_details();
    let violations = &details
        .bad_request()
        .expect("BadRequest detail")
        .field_violations;
    assert_eq!(violations[0].field, "module.duration_minutes");
    server.stop().await;
}

/// Mastery after a sequence of answers equals BKT computed by hand.
#[tokio::test]
async fn attempts_update_mastery_like_hand_computed_bkt() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut mastery = server.mastery().await;
    let answers = [false, true, true, true];
    let attempts = answers
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            attempt(
                &format!("t{i}"),
                "alice",
                &["a"],
                c,
                1_700_000_000 + i as i64,
            )
        })
        .collect();
    let reply = mastery
        .record_attempts(pb::RecordAttemptsRequest { attempts })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.recorded, 4);
    assert_eq!(reply.mastery.len(), 1);
    let expected = hand_bkt(&answers);
    assert!((reply.mastery[0].p_mastered - expected).abs() < 1e-9);
    assert_eq!(reply.mastery[0].attempt_count, 4);

    // An item testing two skills updates both.
    let reply = mastery
        .record_attempts(pb::RecordAttemptsRequest {
            attempts: vec![attempt("multi", "alice", &["b", "c"], true, 1_700_000_100)],
        })
        .await
        .unwrap()
        .into_inner();
    let skills: Vec<_> = reply.mastery.iter().map(|m| m.skill_id.as_str()).collect();
    assert_eq!(skills, ["b", "c"]);
    assert!((reply.mastery[1].p_mastered - hand_bkt(&[true])).abs() < 1e-9);

    // GetMastery covers the program's skills, attempted or not.
    let got = mastery_of(&mut mastery, "alice", &[]).await;
    assert_eq!(got.mastery_threshold, 0.95);
    let a = got.skills.iter().find(|m| m.skill_id == "a").unwrap();
    assert!((a.p_mastered - expected).abs() < 1e-9);
    assert!(a.updated_at.is_some());
    assert_eq!(a.mastered, expected >= 0.95);
    server.stop().await;
}

/// The same attempt twice is stored once; the same id with other content is
/// refused; a batch with one bad attempt stores none of it.
#[tokio::test]
async fn duplicate_attempt_ids_and_all_or_nothing_batches() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut mastery = server.mastery().await;
    let one = attempt("dup", "bob", &["a"], true, 1_700_000_000);
    let first = mastery
        .record_attempts(pb::RecordAttemptsRequest {
            attempts: vec![one.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    let again = mastery
        .record_attempts(pb::RecordAttemptsRequest {
            attempts: vec![one.clone(), one.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.recorded, again.duplicates), (0, 2));
    assert_eq!(again.mastery[0].p_mastered, first.mastery[0].p_mastered);
    assert_eq!(again.mastery[0].attempt_count, 1);

    let mut changed = one.clone();
    changed.correct = false;
    let err = mastery
        .record_attempts(pb::RecordAttemptsRequest {
            attempts: vec![changed],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);

    let mut bad = attempt("bad", "bob", &["a"], true, 1_700_000_002);
    bad.score = Some(1.5);
    let err = mastery
        .record_attempts(pb::RecordAttemptsRequest {
            attempts: vec![attempt("good", "bob", &["a"], true, 1_700_000_001), bad],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("attempts[1].score"),
        "{}",
        err.message()
    );
    let state = mastery_of(&mut mastery, "bob", &["a"]).await;
    assert_eq!(
        state.skills[0].attempt_count, 1,
        "the good attempt of a refused batch is not stored"
    );
    server.stop().await;
}

/// Large batches are ingested off the runtime's workers (`offload.rs`):
/// same answers, same errors, all or nothing, as small ones.
#[tokio::test]
async fn large_batches_behave_like_small_ones() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut mastery = server.mastery().await;
    let batch: Vec<pb::Attempt> = (0..40)
        .map(|i| {
            attempt(
                &format!("big-{i}"),
                "bob",
                &["a"],
                i % 3 != 0,
                1_700_000_000 + i,
            )
        })
        .collect();
    let mut bad = batch.clone();
    bad[39].score = Some(1.5);
    let err = mastery
        .record_attempts(pb::RecordAttemptsRequest { attempts: bad })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("attempts[39].score"),
        "{}",
        err.message()
    );

    let first = mastery
        .record_attempts(pb::RecordAttemptsRequest {
            attempts: batch.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((first.recorded, first.duplicates), (40, 0));
    assert_eq!(
        first.mastery[0].attempt_count, 40,
        "nothing of the refused batch was kept"
    );
    // The same 40 one by one (on the worker) answer the same mastery.
    let mut last = None;
    for (i, mut one) in batch.iter().cloned().enumerate() {
        one.attempt_id = format!("small-{i}");
        one.learner_id = "alice".into();
        last = Some(
            mastery
                .record_attempts(pb::RecordAttemptsRequest {
                    attempts: vec![one],
                })
                .await
                .unwrap()
                .into_inner(),
        );
    }
    let last = last.unwrap();
    assert_eq!(last.mastery[0].p_mastered, first.mastery[0].p_mastered);
    let again = mastery
        .record_attempts(pb::RecordAttemptsRequest { attempts: batch })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.recorded, again.duplicates), (0, 40));
    server.stop().await;
}

/// Attempts sent late are folded in occurred_at order.
#[tokio::test]
async fn out_of_order_attempts_give_the_time_ordered_posterior() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut mastery = server.mastery().await;
    // Time order: wrong, wrong, right, right. Sent: the two right ones first.
    for (id, correct, t) in [
        ("r1", true, 30),
        ("r2", true, 40),
        ("w1", false, 10),
        ("w2", false, 20),
    ] {
        mastery
            .record_attempts(pb::RecordAttemptsRequest {
                attempts: vec![attempt(id, "alice", &["a"], correct, 1_700_000_000 + t)],
            })
            .await
            .unwrap();
    }
    let got = mastery_of(&mut mastery, "alice", &["a"]).await;
    let expected = hand_bkt(&[false, false, true, true]);
    assert!((got.skills[0].p_mastered - expected).abs() < 1e-9);
    assert!((got.skills[0].p_mastered - hand_bkt(&[true, true, false, false])).abs() > 1e-3);
    assert_eq!(got.skills[0].attempt_count, 4);
    server.stop().await;
}

/// Everything written survives a stop and a restart on the same folder.
#[tokio::test]
async fn restart_keeps_everything() {
    let server = TestServer::start().await;
    seed(&server).await;
    server
        .learners()
        .await
        .enroll_learner(pb::EnrollLearnerRequest {
            enrolled_at: None,
            learner_id: "alice".into(),
            program_id: "excel".into(),
        })
        .await
        .unwrap();
    let before = server
        .mastery()
        .await
        .record_attempts(pb::RecordAttemptsRequest {
            attempts: vec![attempt("k1", "alice", &["a"], true, 1_700_000_000)],
        })
        .await
        .unwrap()
        .into_inner();
    let dir = server.data_dir.clone();
    let temp = server.stop().await;

    let server = TestServer::start_in(&dir).await;
    let skill = server.stored_skill("c").await;
    assert_eq!(skill.prerequisite_ids, ["b"]);
    let enrolments = server.enrolments("excel").await;
    assert_eq!(enrolments.enrolments.len(), 1);
    let after = mastery_of(&mut server.mastery().await, "alice", &["a"]).await;
    assert_eq!(after.skills[0].p_mastered, before.mastery[0].p_mastered);
    assert_eq!(after.skills[0].attempt_count, 1);
    server.stop().await;
    drop(temp);
}

/// Every RPC refuses an empty id with INVALID_ARGUMENT and an unknown one
/// with NOT_FOUND.
#[tokio::test]
async fn every_rpc_refuses_empty_and_unknown_ids() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut catalog = server.catalog().await;
    let mut learners = server.learners().await;
    let mut programs = server.programs().await;
    let mut mastery = server.mastery().await;

    macro_rules! expect_code {
        ($call:expr, $code:expr) => {{
            let err = $call.await.expect_err(stringify!($call));
            assert_eq!(
                err.code(),
                $code,
                "{}: {}",
                stringify!($call),
                err.message()
            );
            err
        }};
        // The message and the BadRequest detail name the field that held
        // the bad id.
        ($call:expr, $code:expr, $field:expr) => {{
            let err = expect_code!($call, $code);
            assert_field_named(&err, $field);
            assert!(
                err.message().starts_with(&format!("{}: ", $field))
                    || err.message().starts_with(&format!("invalid {}: ", $field)),
                "{}: {}",
                stringify!($call),
                err.message()
            );
        }};
    }
    use Code::{InvalidArgument as Invalid, NotFound};
    expect_code!(
        catalog.get_skill(pb::GetSkillRequest {
            skill_id: "".into()
        }),
        Invalid
    );
    expect_code!(
        catalog.get_skill(pb::GetSkillRequest {
            skill_id: "zz".into()
        }),
        NotFound
    );
    expect_code!(
        catalog.get_module(pb::GetModuleRequest {
            module_id: "".into()
        }),
        Invalid
    );
    expect_code!(
        catalog.get_module(pb::GetModuleRequest {
            module_id: "zz".into()
        }),
        NotFound
    );
    expect_code!(
        catalog.upsert_skill(pb::UpsertSkillRequest {
            skill: Some(skill("", &[]))
        }),
        Invalid
    );
    expect_code!(
        catalog.upsert_module(pb::UpsertModuleRequest {
            module: Some(module("", &["a"], pb::ModuleFormat::Video, 5))
        }),
        Invalid
    );
    expect_code!(
        catalog.upsert_module(pb::UpsertModuleRequest {
            module: Some(module("m", &["zz"], pb::ModuleFormat::Video, 5))
        }),
        NotFound,
        "module.skill_ids[0]"
    );
    expect_code!(
        learners.get_learner(pb::GetLearnerRequest {
            learner_id: "".into()
        }),
        Invalid
    );
    expect_code!(
        learners.get_learner(pb::GetLearnerRequest {
            learner_id: "zz".into()
        }),
        NotFound
    );
    expect_code!(
        learners.upsert_learner(pb::UpsertLearnerRequest {
            learner: Some(learner("", "acme"))
        }),
        Invalid
    );
    expect_code!(
        learners.upsert_learner(pb::UpsertLearnerRequest {
            learner: Some(learner("x", ""))
        }),
        Invalid
    );
    expect_code!(
        learners.enroll_learner(pb::EnrollLearnerRequest {
            enrolled_at: None,
            learner_id: "".into(),
            program_id: "excel".into()
        }),
        Invalid
    );
    expect_code!(
        learners.enroll_learner(pb::EnrollLearnerRequest {
            enrolled_at: None,
            learner_id: "zz".into(),
            program_id: "excel".into()
        }),
        NotFound,
        "learner_id"
    );
    expect_code!(
        learners.enroll_learner(pb::EnrollLearnerRequest {
            enrolled_at: None,
            learner_id: "alice".into(),
            program_id: "zz".into()
        }),
        NotFound,
        "program_id"
    );
    expect_code!(
        learners.list_enrolments(pb::ListEnrolmentsRequest::default()),
        Invalid
    );
    expect_code!(
        learners.list_enrolments(pb::ListEnrolmentsRequest {
            program_id: "zz".into(),
            ..Default::default()
        }),
        NotFound
    );
    expect_code!(
        learners.list_enrolments(pb::ListEnrolmentsRequest {
            learner_id: "zz".into(),
            ..Default::default()
        }),
        NotFound
    );
    expect_code!(
        programs.get_program(pb::GetProgramRequest {
            program_id: "".into()
        }),
        Invalid
    );
    expect_code!(
        programs.get_program(pb::GetProgramRequest {
            program_id: "zz".into()
        }),
        NotFound
    );
    expect_code!(
        programs.upsert_program(pb::UpsertProgramRequest {
            program: Some(pb::Program {
                id: "p".into(),
                name: "P".into(),
                skill_ids: vec!["a".into(), "zz".into()],
                cohort_rules: None,
                ..Default::default()
            })
        }),
        NotFound,
        "program.skill_ids[1]"
    );
    expect_code!(
        mastery.get_mastery(pb::GetMasteryRequest {
            learner_id: "".into(),
            skill_ids: vec![]
        }),
        Invalid
    );
    expect_code!(
        mastery.get_mastery(pb::GetMasteryRequest {
            learner_id: "zz".into(),
            skill_ids: vec![]
        }),
        NotFound
    );
    expect_code!(
        mastery.get_mastery(pb::GetMasteryRequest {
            learner_id: "alice".into(),
            skill_ids: vec!["zz".into()]
        }),
        NotFound,
        "skill_ids[0]"
    );
    expect_code!(
        mastery.record_attempts(pb::RecordAttemptsRequest {
            attempts: vec![attempt("", "alice", &["a"], true, 1_700_000_000)]
        }),
        Invalid
    );
    expect_code!(
        mastery.record_attempts(pb::RecordAttemptsRequest {
            attempts: vec![attempt("x", "", &["a"], true, 1_700_000_000)]
        }),
        Invalid
    );
    expect_code!(
        mastery.record_attempts(pb::RecordAttemptsRequest {
            attempts: vec![
                attempt("x", "alice", &["a"], true, 1_700_000_000),
                attempt("y", "zz", &["a"], true, 1_700_000_000)
            ]
        }),
        NotFound,
        "attempts[1].learner_id"
    );
    expect_code!(
        mastery.record_attempts(pb::RecordAttemptsRequest {
            attempts: vec![
                attempt("w", "alice", &["a"], true, 1_700_000_000),
                attempt("x", "alice", &["a", "zz"], true, 1_700_000_000)
            ]
        }),
        NotFound,
        "attempts[1].skill_ids[1]"
    );
    expect_code!(
        mastery.record_attempts(pb::RecordAttemptsRequest { attempts: vec![] }),
        Invalid
    );
    expect_code!(
        catalog.list_skills(pb::ListSkillsRequest {
            page_size: 1,
            page_token: "not-a-token".into()
        }),
        Invalid
    );
    server.stop().await;
}

/// Health and server reflection (v1 and v1alpha, as grpcurl 1.8 speaks)
/// answer and list every service.
#[tokio::test]
async fn health_and_reflection_list_every_service() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as V1Alpha;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

    // The first answer of the stream that `request` opens on `client`
    // (v1alpha and v1 clients are different types with the same method).
    macro_rules! first_reply {
        ($client:expr, $request:expr) => {
            $client
                .server_reflection_info(tokio_stream::iter(vec![$request]))
                .await
                .unwrap()
                .into_inner()
                .message()
                .await
                .unwrap()
                .expect("a reflection response")
        };
    }

    let server = TestServer::start().await;
    let channel = server.channel().await;
    let health = HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "spoc.v1.MasteryService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        health.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let response = first_reply!(V1Alpha::new(channel.clone()), request);
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for wanted in [
        "spoc.v1.CatalogService",
        "spoc.v1.LearnerService",
        "spoc.v1.ProgramService",
        "spoc.v1.MasteryService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }

    // The v1 protocol resolves a symbol to its file.
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient as V1;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest as V1Request;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse as V1Response;
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(V1Request::FileContainingSymbol(
            "spoc.v1.MasteryService".into(),
        )),
    };
    let response = first_reply!(V1::new(channel), request);
    assert!(
        matches!(response.message_response, Some(V1Response::FileDescriptorResponse(ref f)) if !f.file_descriptor_proto.is_empty())
    );
    server.stop().await;
}

/// An enrolment replayed from an LMS's history keeps its date; a date more
/// than an hour ahead is refused, naming the field; enrolling again keeps
/// the first enrolment.
#[tokio::test]
async fn enrolments_may_be_dated() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut learners = server.learners().await;
    let past = prost_types::Timestamp {
        seconds: 1_700_000_000,
        nanos: 0,
    };
    let enrolment = learners
        .enroll_learner(pb::EnrollLearnerRequest {
            learner_id: "alice".into(),
            program_id: "excel".into(),
            enrolled_at: Some(past),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(enrolment.enrolled_at, Some(past));
    let again = learners
        .enroll_learner(pb::EnrollLearnerRequest {
            learner_id: "alice".into(),
            program_id: "excel".into(),
            enrolled_at: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.enrolled_at, Some(past), "the first enrolment stays");
    let far = prost_types::Timestamp {
        seconds: 4_000_000_000,
        nanos: 0,
    };
    let refused = learners
        .enroll_learner(pb::EnrollLearnerRequest {
            learner_id: "bob".into(),
            program_id: "excel".into(),
            enrolled_at: Some(far),
        })
        .await
        .unwrap_err();
    assert_invalid_field(&refused, "enrolled_at");
    server.stop().await;
}
