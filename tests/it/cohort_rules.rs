//! Cohort rules hold on what is stored: regional language tags are grouped
//! by the language modules are matched on, a hand move into a locked
//! cohort is allowed and kept by later formations (documented choice),
//! writes that break a formed cohort's rules are accepted and flagged on
//! the cohort (`violations`) until FormCohorts or moves repair it, and the
//! time-zone spread holds over the program's dates.

use crate::common::*;
use spoc_engine::api::pb;

type Cohorts = pb::cohort_service_client::CohortServiceClient<AuthChannel>;

fn form(program: &str, seed: u64) -> pb::FormCohortsRequest {
    pb::FormCohortsRequest {
        program_id: program.into(),
        objective: pb::CohortObjective::Balanced as i32,
        seed,
        dry_run: false,
    }
}

/// The cohorts of `program` formed (balanced) with `seed`; the call must
/// succeed.
async fn formation(cohorts: &mut Cohorts, program: &str, seed: u64) -> pb::FormCohortsResponse {
    cohorts
        .form_cohorts(form(program, seed))
        .await
        .expect("form cohorts")
        .into_inner()
}

/// Locks cohort `id` (the call must succeed).
async fn lock(cohorts: &mut Cohorts, id: &str) {
    cohorts
        .lock_cohort(pb::LockCohortRequest {
            cohort_id: id.into(),
            locked: true,
        })
        .await
        .expect("lock cohort");
}

/// 60 `fr` learners of six companies in program "p", formed into two
/// cohorts (seed 1): a cohort client and the formation.
async fn two_cohorts(server: &TestServer) -> (Cohorts, pb::FormCohortsResponse) {
    let staff = people("l", 60, 6, "fr");
    seed_cohort_program(server, "p", None, &staff).await;
    let mut cohorts = server.cohorts().await;
    let first = formation(&mut cohorts, "p", 1).await;
    assert_eq!(first.cohorts.len(), 2);
    (cohorts, first)
}

/// 30 `fr` learners and one `fr-BE`: the `fr-BE` learner is served `fr`
/// modules, so shares their cohorts (before: formation failed, "language
/// fr-BE has 1 learners").
#[tokio::test]
async fn regional_tags_share_cohorts_with_their_language() {
    let server = TestServer::start().await;
    let mut staff = people("l", 30, 5, "fr");
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
    let (mut cohorts, first) = two_cohorts(&server).await;
    let (kept, other) = (&first.cohorts[0], &first.cohorts[1]);
    lock(&mut cohorts, &kept.id).await;
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
    let second = formation(&mut cohorts, "p", 2).await;
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
    let mut staff = people("l", 30, 5, "fr");
    staff.push(learner_in("hans", "co1", "de", "Europe/Berlin"));
    staff.push(learner_in("ute", "co2", "de", "Europe/Berlin"));
    seed_cohort_program(&server, "p", None, &staff).await;
    let mut cohorts = server.cohorts().await;
    let formed = formation(&mut cohorts, "p", 1).await;
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

/// The program as stored, with `edit` applied, written back.
async fn edit_program(server: &TestServer, id: &str, edit: impl FnOnce(&mut pb::Program)) {
    let mut programs = server.programs().await;
    let mut program = programs
        .get_program(pb::GetProgramRequest {
            program_id: id.into(),
        })
        .await
        .unwrap()
        .into_inner();
    edit(&mut program);
    programs
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(program),
        })
        .await
        .expect("a rule change is accepted, even when it breaks formed cohorts");
}

async fn get(server: &TestServer, id: &str) -> pb::Cohort {
    server.cohort(id).await
}

async fn list(server: &TestServer, program: &str) -> Vec<pb::Cohort> {
    server.program_cohorts(program).await.cohorts
}

/// Whether no cohort of `program` breaks a rule.
async fn within_rules(server: &TestServer, program: &str) -> bool {
    list(server, program)
        .await
        .iter()
        .all(|c| c.violations.is_empty())
}

fn rules(c: &pb::Cohort) -> Vec<&str> {
    c.violations.iter().map(|v| v.rule.as_str()).collect()
}

fn date(s: &str) -> Option<prost_types::Timestamp> {
    let t: jiff::Timestamp = s.parse().unwrap();
    Some(prost_types::Timestamp {
        seconds: t.as_second(),
        nanos: 0,
    })
}

/// UpsertLearner moving a formed learner to another language and a far
/// time zone is accepted; the cohort then lists both broken rules with the
/// learner, in GetCohort and ListCohorts; FormCohorts repairs it (the lone
/// learner comes back unplaced, the others form a clean cohort).
#[tokio::test]
async fn a_learner_change_that_breaks_a_cohort_is_flagged_then_repaired() {
    let server = TestServer::start().await;
    let staff = people("l", 30, 5, "fr");
    seed_cohort_program(&server, "p", None, &staff).await;
    let mut cohorts = server.cohorts().await;
    let formed = formation(&mut cohorts, "p", 1).await;
    assert_eq!(formed.cohorts.len(), 1);
    let id = formed.cohorts[0].id.clone();
    assert!(formed.cohorts[0].violations.is_empty());

    server
        .learners()
        .await
        .upsert_learner(pb::UpsertLearnerRequest {
            learner: Some(learner_in("l00", "co0", "en", "Asia/Tokyo")),
        })
        .await
        .expect("the change is accepted");
    let cohort = get(&server, &id).await;
    assert_eq!(cohort.language, "en,fr");
    assert_eq!(
        rules(&cohort),
        ["single_language", "max_timezone_spread_hours"]
    );
    let language = &cohort.violations[0];
    assert_eq!(language.learner_ids, ["l00"]);
    assert_eq!((language.value, language.limit), (2.0, 1.0));
    let spread = &cohort.violations[1];
    assert!(spread.value >= 7.0 && spread.limit == 3.0, "{spread:?}");
    assert!(spread.learner_ids.contains(&"l00".to_string()));
    assert!(spread.message.contains("UTC+09:00"), "{}", spread.message);
    assert_eq!(list(&server, "p").await[0].violations, cohort.violations);

    let again = formation(&mut cohorts, "p", 2).await;
    assert!(again.cohorts.iter().all(|c| c.violations.is_empty()));
    assert_eq!(again.unplaced.len(), 1);
    assert_eq!(again.unplaced[0].learner_id, "l00");
    assert!(within_rules(&server, "p").await);
}

/// Tightening `max_company_share` is accepted; both cohorts then flag the
/// company over the new cap (its members, its share against the cap).
/// The flags are computed from what is stored: relaxing the rule again
/// clears them without any formation.
#[tokio::test]
async fn a_tighter_company_share_is_flagged_on_every_cohort_it_breaks() {
    let server = TestServer::start().await;
    // "big" has 12 of 60 (20%), eight others 6 each.
    let staff: Vec<pb::Learner> = (0..60)
        .map(|i| {
            let company = if i < 12 {
                "big".to_string()
            } else {
                format!("co{}", i % 8)
            };
            learner_in(&format!("l{i:02}"), &company, "fr", "Europe/Paris")
        })
        .collect();
    seed_cohort_program(&server, "p", None, &staff).await;
    let mut cohorts = server.cohorts().await;
    let formed = formation(&mut cohorts, "p", 1).await;
    assert_eq!(formed.cohorts.len(), 2);

    edit_program(&server, "p", |p| {
        p.cohort_rules.get_or_insert_default().max_company_share = Some(0.15);
    })
    .await;
    for c in list(&server, "p").await {
        assert_eq!(rules(&c), ["max_company_share"], "{:?}", c.violations);
        let v = &c.violations[0];
        assert_eq!(v.company_ids, ["big"]);
        assert_eq!(v.limit, 0.15);
        assert!(v.value > 0.15, "{v:?}");
        assert!(v.learner_ids.iter().all(|l| l.as_str() < "l12"));
        assert_eq!(
            v.learner_ids.len() as f64,
            (v.value * c.size as f64).round()
        );
    }
    // 20% of the program cannot fit a 15% cap anywhere: formation refuses
    // and leaves the stored cohorts (still flagged) as they are.
    let err = cohorts.form_cohorts(form("p", 2)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("company share"), "{}", err.message());

    edit_program(&server, "p", |p| {
        p.cohort_rules.get_or_insert_default().max_company_share = Some(0.3);
    })
    .await;
    assert!(within_rules(&server, "p").await);
}

/// Lowering `max_size` below the formed cohorts' size flags both; the
/// next formation keeps the locked one as it is (before: refused for the
/// whole program), listed with its violation, and re-forms the other into
/// cohorts within the rules; a move out of the locked cohort, which makes
/// its breach smaller, is allowed.
#[tokio::test]
async fn a_locked_cohort_that_breaks_tightened_rules_is_kept_and_flagged() {
    let server = TestServer::start().await;
    let (mut cohorts, first) = two_cohorts(&server).await;
    let kept = first.cohorts[0].id.clone();
    lock(&mut cohorts, &kept).await;

    edit_program(&server, "p", |p| {
        p.cohort_rules.get_or_insert_default().max_size = Some(25);
    })
    .await;
    for c in list(&server, "p").await {
        assert_eq!(rules(&c), ["max_size"]);
        assert_eq!((c.violations[0].value, c.violations[0].limit), (30.0, 25.0));
        assert!(c.violations[0].learner_ids.is_empty());
    }

    let second = cohorts
        .form_cohorts(form("p", 2))
        .await
        .expect("a broken locked cohort is kept, not refused")
        .into_inner();
    let locked = second.cohorts.iter().find(|c| c.id == kept).unwrap();
    assert!(locked.locked);
    assert_eq!(locked.learner_ids, first.cohorts[0].learner_ids);
    assert_eq!(rules(locked), ["max_size"]);
    let fresh: Vec<&pb::Cohort> = second.cohorts.iter().filter(|c| c.id != kept).collect();
    assert_eq!(fresh.len(), 2);
    assert!(
        fresh
            .iter()
            .all(|c| c.violations.is_empty() && c.size <= 25)
    );
    assert!(second.unplaced.is_empty());

    let mover = locked.learner_ids[0].clone();
    let moved = cohorts
        .move_learner(pb::MoveLearnerRequest {
            program_id: "p".into(),
            learner_id: mover,
            target_cohort_id: fresh[0].id.clone(),
        })
        .await
        .expect("a move that shrinks a breach is allowed")
        .into_inner();
    let source = moved.source.unwrap();
    assert_eq!(source.size, 29);
    assert_eq!(source.violations[0].value, 29.0);
    // Moving one back in would make it worse: refused, naming the rule.
    let back = moved.target.unwrap().learner_ids[0].clone();
    let err = cohorts
        .move_learner(pb::MoveLearnerRequest {
            program_id: "p".into(),
            learner_id: back,
            target_cohort_id: kept.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("cohort size"), "{}", err.message());
}

/// The spread holds over the program's dates, whatever the date the
/// cohorts are formed on. London is 3 h from Sao Paulo in December and
/// 4 h in July: the same 40 learners form one cohort for a winter
/// program and two (one per city) for a summer one. Moving the winter
/// program to the summer flags its cohort (4 h against 3 h) until it is
/// formed again.
#[tokio::test]
async fn the_time_zone_spread_holds_over_the_program_dates() {
    let server = TestServer::start().await;
    let staff: Vec<pb::Learner> = (0..40)
        .map(|i| {
            let zone = if i < 20 {
                "Europe/London"
            } else {
                "America/Sao_Paulo"
            };
            learner_in(&format!("l{i:02}"), &format!("co{}", i % 8), "en", zone)
        })
        .collect();
    seed_cohort_program(&server, "winter", None, &staff).await;
    seed_cohort_program(&server, "summer", None, &staff).await;
    let (dec, jan) = (date("2026-12-01T00:00:00Z"), date("2027-01-31T00:00:00Z"));
    let (jun, jul) = (date("2026-06-01T00:00:00Z"), date("2026-07-31T00:00:00Z"));
    edit_program(&server, "winter", |p| {
        (p.start_date, p.end_date) = (dec, jan);
    })
    .await;
    edit_program(&server, "summer", |p| {
        (p.start_date, p.end_date) = (jun, jul);
    })
    .await;
    let mut cohorts = server.cohorts().await;

    let winter = formation(&mut cohorts, "winter", 1).await;
    assert_eq!(winter.cohorts.len(), 1, "3 h apart all winter");
    let summer = formation(&mut cohorts, "summer", 1).await;
    assert_eq!(summer.cohorts.len(), 2, "4 h apart all summer");
    for c in &summer.cohorts {
        let london = c.learner_ids.iter().filter(|l| l.as_str() < "l20").count();
        assert!(london == 0 || london == c.learner_ids.len(), "{c:?}");
        assert!(c.violations.is_empty());
    }

    edit_program(&server, "winter", |p| {
        (p.start_date, p.end_date) = (jun, jul);
    })
    .await;
    let flagged = get(&server, &winter.cohorts[0].id).await;
    assert_eq!(rules(&flagged), ["max_timezone_spread_hours"]);
    let v = &flagged.violations[0];
    assert_eq!((v.value, v.limit), (4.0, 3.0));
    assert_eq!(v.learner_ids.len(), 40, "two zones: everyone is at an edge");
    assert!(
        v.message.contains("UTC-03:00 to UTC+01:00"),
        "{}",
        v.message
    );
    let again = formation(&mut cohorts, "winter", 2).await;
    assert_eq!(again.cohorts.len(), 2);
    assert!(again.cohorts.iter().all(|c| c.violations.is_empty()));
}
