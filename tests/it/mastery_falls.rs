//! Mastery that can fall again: after a run of right answers long enough
//! to round P(mastered) to 1.0 as one number, wrong answers still bring it
//! down through gRPC, and the alert carries the fall.

use crate::common::*;
use spoc_engine::api::pb;

/// 30 right answers on `a`, then 30 wrong ones: P(mastered) reads 1.0
/// after the first run, falls with every wrong answer, ends far below the
/// threshold, and the learner's alert names the skill and carries the fall.
#[tokio::test]
async fn wrong_answers_after_a_long_run_of_right_ones_bring_mastery_down() {
    let server = TestServer::start().await;
    seed_cohort_program(&server, "p", None, &[learner("ann", "acme")]).await;
    let mut mastery = server.mastery().await;
    let send = |range: std::ops::Range<usize>, correct: bool| {
        let attempts = range
            .map(|k| attempt(&format!("t{k}"), "ann", &["a"], correct, t0() + k as i64))
            .collect();
        pb::RecordAttemptsRequest { attempts }
    };
    let p_of = |reply: pb::RecordAttemptsResponse| reply.mastery[0].p_mastered;

    let high = p_of(
        mastery
            .record_attempts(send(0..30, true))
            .await
            .unwrap()
            .into_inner(),
    );
    assert!(high > 0.999_999, "{high}");
    let mut previous = high;
    for k in 30..60 {
        let reply = mastery
            .record_attempts(send(k..k + 1, false))
            .await
            .unwrap();
        let p = p_of(reply.into_inner());
        assert!(p <= previous, "answer {k}: {p} > {previous}");
        previous = p;
    }
    let got = mastery_of(&mut mastery, "ann", &["a"]).await;
    let now = got.skills[0].p_mastered;
    // Wrong answers pull it to where learning balances them (0.17 here).
    assert!(now < 0.2, "{now}");
    assert!(!got.skills[0].mastered);

    // One alert per learner: the run of 30 wrong answers raised a
    // blocking point on the skill first, and its figures carry the fall.
    let carries_the_fall = |a: &pb::Alert| {
        a.status == pb::AlertStatus::Open as i32
            && a.signals.get("mastery_drop").is_some_and(|d| *d > 0.8)
    };
    let request = pb::ListAlertsRequest {
        learner_id: "ann".into(),
        ..Default::default()
    };
    let listed = server
        .alerts_when(request, |l| l.iter().any(carries_the_fall))
        .await;
    let alert = listed.into_iter().find(carries_the_fall).unwrap();
    assert_eq!(alert.skill_id, "a", "{alert:?}");
    assert!(
        [pb::AlertKind::BlockingPoint, pb::AlertKind::MasteryDrop]
            .map(|k| k as i32)
            .contains(&alert.kind),
        "{alert:?}"
    );
}
