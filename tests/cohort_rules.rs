//! Cohort rules hold on what is stored: regional language tags are grouped
//! by the language modules are matched on, and a hand move into a locked
//! cohort is allowed and kept by later formations (documented choice).

mod common;

use common::*;
use spoc_engine::api::pb;

fn form(program: &str, seed: u64) -> pb::FormCohortsRequest {
    pb::FormCohortsRequest {
        program_id: program.into(),
        objective: pb::CohortObjective::Balanced as i32,
        seed,
        dry_run: false,
    }
}

/// 30 `fr` learners and one `fr-BE`: the `fr-BE` learner is served `fr`
/// modules, so shares their cohorts (before: formation failed, "language
/// fr-BE has 1 learners").
#[tokio::test]
async fn regional_tags_share_cohorts_with_their_language() {
    let server = TestServer::start().await;
    let mut staff: Vec<pb::Learner> = (0..30)
        .map(|i| {
            learner_in(
                &format!("l{i:02}"),
                &format!("co{}", i % 5),
                "fr",
                "Europe/Paris",
            )
        })
        .collect();
    staff.push(learner_in("belgian", "co9", "fr-BE", "Europe/Brussels"));
    seed_cohort_program(&server, "p", None, &staff).await;
    let formed = server
        .cohorts()
        .await
        .form_cohorts(form("p", 1))
        .await
        .expect("fr-BE joins the fr learners")
        .into_inner();
    assert!(!formed.cohorts.is_empty());
    assert!(formed.cohorts.iter().all(|c| c.language == "fr"));
    assert!(
        formed
            .cohorts
            .iter()
            .any(|c| c.learner_ids.contains(&"belgian".to_string()))
    );
}

/// A lock keeps a cohort out of later formations, not out of the manager's
/// own moves: a move into a locked cohort is accepted (rules permitting),
/// the cohort stays locked, and the next formation keeps it with its new
/// member.
#[tokio::test]
async fn a_move_into_a_locked_cohort_is_kept() {
    let server = TestServer::start().await;
    let staff: Vec<pb::Learner> = (0..60)
        .map(|i| {
            learner_in(
                &format!("l{i:02}"),
                &format!("co{}", i % 6),
                "fr",
                "Europe/Paris",
            )
        })
        .collect();
    seed_cohort_program(&server, "p", None, &staff).await;
    let mut cohorts = server.cohorts().await;
    let first = cohorts
        .form_cohorts(form("p", 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.cohorts.len(), 2);
    let (kept, other) = (&first.cohorts[0], &first.cohorts[1]);
    cohorts
        .lock_cohort(pb::LockCohortRequest {
            cohort_id: kept.id.clone(),
            locked: true,
        })
        .await
        .unwrap();
    // A member of another company than most: the company cap still holds.
    let mover = other.learner_ids[0].clone();
    let moved = cohorts
        .move_learner(pb::MoveLearnerRequest {
            program_id: "p".into(),
            learner_id: mover.clone(),
            target_cohort_id: kept.id.clone(),
        })
        .await
        .expect("a move into a locked cohort is allowed")
        .into_inner();
    let target = moved.target.unwrap();
    assert!(target.locked);
    assert!(target.learner_ids.contains(&mover));
    let second = cohorts
        .form_cohorts(form("p", 2))
        .await
        .unwrap()
        .into_inner();
    let again = second.cohorts.iter().find(|c| c.id == kept.id).unwrap();
    assert!(again.locked);
    assert_eq!(again.learner_ids, target.learner_ids);
}

/// Two learners of a lone language do not stop the 30 others: they are
/// returned unplaced with the reason (before: FAILED_PRECONDITION for the
/// whole program); a program where nobody can be placed still fails.
#[tokio::test]
async fn learners_who_fit_no_cohort_are_returned_unplaced() {
    let server = TestServer::start().await;
    let mut staff: Vec<pb::Learner> = (0..30)
        .map(|i| {
            learner_in(
                &format!("l{i:02}"),
                &format!("co{}", i % 5),
                "fr",
                "Europe/Paris",
            )
        })
        .collect();
    staff.push(learner_in("hans", "co1", "de", "Europe/Berlin"));
    staff.push(learner_in("ute", "co2", "de", "Europe/Berlin"));
    seed_cohort_program(&server, "p", None, &staff).await;
    let mut cohorts = server.cohorts().await;
    let formed = cohorts
        .form_cohorts(form("p", 1))
        .await
        .unwrap()
        .into_inner();
    let placed: usize = formed.cohorts.iter().map(|c| c.learner_ids.len()).sum();
    assert_eq!(placed, 30);
    let ids: Vec<&str> = formed
        .unplaced
        .iter()
        .map(|u| u.learner_id.as_str())
        .collect();
    assert_eq!(ids, ["hans", "ute"]);
    for u in &formed.unplaced {
        assert!(u.reason.contains("\"de\""), "{}", u.reason);
    }

    seed_cohort_program(&server, "q", None, &staff[30..]).await;
    let err = cohorts.form_cohorts(form("q", 1)).await.unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::FailedPrecondition,
        "{}",
        err.message()
    );
}
