//! Learner fields say exactly what they mean: legacy time-zone names are
//! stored as their zone, language and time zone are required, and a second
//! enrolment with another date is refused, naming the field.

use crate::common::*;
use spoc_engine::api::pb;
use tonic::Code;

/// `US/Eastern` is stored as `America/New_York` (as `europe/paris` is as
/// `Europe/Paris`); an empty language or time zone is refused by name.
#[tokio::test]
async fn legacy_zones_are_canonical_and_empty_fields_are_refused() {
    let server = TestServer::start().await;
    let mut learners = server.learners().await;
    for (sent, stored) in [
        ("US/Eastern", "America/New_York"),
        ("us/pacific", "America/Los_Angeles"),
        ("GB", "Europe/London"),
        ("Asia/Calcutta", "Asia/Kolkata"),
        ("europe/paris", "Europe/Paris"),
    ] {
        let got = learners
            .upsert_learner(pb::UpsertLearnerRequest {
                learner: Some(learner_in("ann", "acme", "en", sent)),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.time_zone, stored, "{sent}");
    }
    for (language, zone, field) in [
        ("", "Europe/Paris", "learner.language"),
        ("fr", "", "learner.time_zone"),
    ] {
        let err = learners
            .upsert_learner(pb::UpsertLearnerRequest {
                learner: Some(learner_in("bea", "acme", language, zone)),
            })
            .await
            .unwrap_err();
        assert_invalid_field(&err, field);
    }
    server.stop().await;
}

/// Enrolling again with no date or the same date returns the enrolment;
/// another date is ALREADY_EXISTS naming `enrolled_at`, and the stored
/// date is unchanged.
#[tokio::test]
async fn a_second_enrolment_with_another_date_is_refused() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut learners = server.learners().await;
    let at = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
    let enrol = |enrolled_at| pb::EnrollLearnerRequest {
        learner_id: "alice".into(),
        program_id: "excel".into(),
        enrolled_at,
    };
    let first = learners
        .enroll_learner(enrol(at(1_700_000_000)))
        .await
        .unwrap()
        .into_inner();
    for again in [at(1_700_000_000), None] {
        let got = learners.enroll_learner(enrol(again)).await.unwrap();
        assert_eq!(got.into_inner(), first);
    }
    let err = learners
        .enroll_learner(enrol(at(1_700_086_400)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{}", err.message());
    assert!(err.message().contains("enrolled_at"), "{}", err.message());
    let listed = learners
        .list_enrolments(pb::ListEnrolmentsRequest {
            learner_id: "alice".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.enrolments, vec![first]);
    server.stop().await;
}
