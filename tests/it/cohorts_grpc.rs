//! Cohorts through gRPC: formation (dry run, versions, determinism),
//! refusals naming the constraint, late enrolments, moves, locks, and the
//! CSV round trip through the real `spoc` binary.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::*;
use spoc_engine::api::pb;
use tonic::Code;
use tonic_types::StatusExt;

/// Gives some learners a few right answers so mastery differs.
async fn vary_mastery(server: &TestServer, learners: &[pb::Learner]) {
    let attempts = learners
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 0)
        .flat_map(|(i, l)| {
            (0..3).map(move |k| {
                attempt(
                    &format!("{}-{k}", l.id),
                    &l.id,
                    &["a"],
                    k != 2 || i % 2 == 0,
                    1_700_000_000 + k as i64,
                )
            })
        })
        .collect();
    server.record(attempts).await;
}

fn form(program: &str, seed: u64, dry_run: bool) -> pb::FormCohortsRequest {
    pb::FormCohortsRequest {
        program_id: program.into(),
        objective: pb::CohortObjective::Balanced as i32,
        seed,
        dry_run,
    }
}

/// Membership of cohorts, for comparing partitions.
/// A request to move `learner` of `program` into cohort `target`.
fn move_to(program: &str, learner: &str, target: &str) -> pb::MoveLearnerRequest {
    pb::MoveLearnerRequest {
        program_id: program.into(),
        learner_id: learner.into(),
        target_cohort_id: target.into(),
    }
}

/// A request to place `learner`, enrolled late in `program`.
fn late_request(program: &str, learner: &str) -> pb::AssignLateEnrolmentRequest {
    pb::AssignLateEnrolmentRequest {
        program_id: program.into(),
        learner_id: learner.into(),
    }
}

fn partition(cohorts: &[pb::Cohort]) -> BTreeMap<String, Vec<String>> {
    cohorts
        .iter()
        .map(|c| (c.id.clone(), c.learner_ids.clone()))
        .collect()
}

/// Checks every hard rule with the default settings (15..50, company share
/// 0.3, one language; one time zone in these tests) on `cohorts`, and that
/// every learner of `population` is in exactly one cohort.
fn assert_constraints(cohorts: &[pb::Cohort], population: &[pb::Learner], min: usize, max: usize) {
    let by_id: BTreeMap<&str, &pb::Learner> =
        population.iter().map(|l| (l.id.as_str(), l)).collect();
    let mut seen = BTreeSet::new();
    for c in cohorts {
        let size = c.learner_ids.len();
        assert_eq!(c.size as usize, size, "size field of {}", c.id);
        assert!((min..=max).contains(&size), "{} has {size} members", c.id);
        let mut per_company: BTreeMap<&str, usize> = BTreeMap::new();
        let mut languages = BTreeSet::new();
        for id in &c.learner_ids {
            assert!(seen.insert(id.clone()), "{id} is in two cohorts");
            let l = by_id[id.as_str()];
            *per_company.entry(&l.company_id).or_default() += 1;
            languages.insert(l.language.as_str());
        }
        let cap = (0.3 * size as f64 + 1e-9).floor() as usize;
        for (company, count) in &per_company {
            assert!(*count <= cap, "{}: {count} of {company} > cap {cap}", c.id);
        }
        assert_eq!(c.company_count as usize, per_company.len(), "{}", c.id);
        assert_eq!(languages.len(), 1, "{} mixes {languages:?}", c.id);
        assert_eq!(c.language, *languages.iter().next().unwrap());
    }
    let all: BTreeSet<String> = population.iter().map(|l| l.id.clone()).collect();
    assert_eq!(seen, all, "every learner in exactly one cohort");
}

async fn list(server: &TestServer, program: &str) -> pb::ListCohortsResponse {
    server.program_cohorts(program).await
}

/// A dry run stores nothing; real runs persist with versions 1 then 2;
/// the same seed gives the same cohorts; the report is filled in.
#[tokio::test]
async fn formation_dry_run_versions_determinism_and_report() {
    let server = TestServer::start().await;
    let staff = people("l", 60, 5, "fr");
    seed_cohort_program(&server, "excel", None, &staff).await;
    vary_mastery(&server, &staff).await;
    let mut cohorts = server.cohorts().await;

    let dry = cohorts
        .form_cohorts(form("excel", 7, true))
        .await
        .unwrap()
        .into_inner();
    assert!(dry.dry_run);
    assert_eq!(dry.version, 1, "the version a real run would get");
    assert_constraints(&dry.cohorts, &staff, 15, 50);
    assert_eq!(dry.cohorts.len(), 2, "60 learners, sizes near 32");
    let nothing = list(&server, "excel").await;
    assert_eq!((nothing.version, nothing.cohorts.len()), (0, 0));
    let err = cohorts
        .get_cohort(pb::GetCohortRequest {
            cohort_id: dry.cohorts[0].id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "a dry run stores no cohort");

    let report = dry.report.clone().expect("report");
    assert_eq!(report.objective, pb::CohortObjective::Balanced as i32);
    assert_eq!(report.learner_count, 60);
    assert_eq!(report.new_cohort_count, 2);
    let skills: Vec<&str> = report.skills.iter().map(|s| s.skill_id.as_str()).collect();
    assert_eq!(skills, ["a", "b", "c"]);
    assert!(report.max_company_share <= 0.3 + 1e-9);
    assert!((report.company_share_cap - 0.3).abs() < 1e-12);
    assert!(report.objective_value <= report.random_objective_value + 1e-9);
    assert!(report.elapsed.is_some());

    let first = cohorts
        .form_cohorts(form("excel", 7, false))
        .await
        .unwrap()
        .into_inner();
    assert!(!first.dry_run);
    assert_eq!(first.version, 1);
    assert_eq!(
        partition(&first.cohorts),
        partition(&dry.cohorts),
        "same state and seed, same cohorts"
    );
    let stored = list(&server, "excel").await;
    assert_eq!(stored.version, 1);
    assert_eq!(partition(&stored.cohorts), partition(&first.cohorts));
    assert!(stored.cohorts.iter().all(|c| c.version == 1 && !c.locked));
    assert_constraints(&stored.cohorts, &staff, 15, 50);
    let one = cohorts
        .get_cohort(pb::GetCohortRequest {
            cohort_id: first.cohorts[1].id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one, stored.cohorts[1]);
    assert_eq!(one.program_id, "excel");

    let second = cohorts
        .form_cohorts(pb::FormCohortsRequest {
            objective: pb::CohortObjective::Leveled as i32,
            ..form("excel", 8, false)
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.version, 2);
    assert_eq!(
        second.report.unwrap().objective,
        pb::CohortObjective::Leveled as i32
    );
    let stored = list(&server, "excel").await;
    assert_eq!(stored.version, 2);
    assert!(stored.cohorts.iter().all(|c| c.version == 2));
    assert_constraints(&stored.cohorts, &staff, 15, 50);
    let err = cohorts
        .get_cohort(pb::GetCohortRequest {
            cohort_id: first.cohorts[0].id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "replaced cohorts are gone");

    // Paging: one cohort per page, then the end.
    let mut client = server.cohorts().await;
    let page = client
        .list_cohorts(pb::ListCohortsRequest {
            program_id: "excel".into(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.cohorts.len(), 1);
    assert!(!page.next_page_token.is_empty());
    let rest = client
        .list_cohorts(pb::ListCohortsRequest {
            program_id: "excel".into(),
            page_size: 1,
            page_token: page.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.cohorts.len(), 1);
    assert_ne!(rest.cohorts[0].id, page.cohorts[0].id);
    assert!(rest.next_page_token.is_empty());

    // Survives a restart.
    let temp = server.stop().await;
    let server = TestServer::start_in(temp.as_ref().unwrap().path()).await;
    assert_eq!(
        partition(&list(&server, "excel").await.cohorts),
        partition(&stored.cohorts)
    );
    server.stop().await;
}

/// Rules that cannot hold are refused with FAILED_PRECONDITION naming the
/// constraint, and nothing is stored.
#[tokio::test]
async fn infeasible_programs_fail_naming_the_constraint() {
    let server = TestServer::start().await;
    let mut cohorts = server.cohorts().await;

    // 20 learners of one company: no cohort can keep it under 30%.
    seed_cohort_program(&server, "mono", None, &people("m", 20, 1, "fr")).await;
    let err = cohorts
        .form_cohorts(form("mono", 1, false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("company share"), "{}", err.message());
    assert_eq!(list(&server, "mono").await.version, 0, "nothing stored");

    // 10 learners: below the smallest cohort.
    seed_cohort_program(&server, "tiny", None, &people("t", 10, 5, "fr")).await;
    let err = cohorts
        .form_cohorts(form("tiny", 1, true))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("cohort size"), "{}", err.message());

    // Nobody enrolled.
    seed_cohort_program(&server, "empty", None, &[]).await;
    let err = cohorts
        .form_cohorts(form("empty", 1, false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("no enrolled learner"),
        "{}",
        err.message()
    );
    server.stop().await;
}

/// Late enrolments go to a cohort that can take them; manual moves keep
/// the rules and a breaking move is refused naming the rule, with nothing
/// changed.
#[tokio::test]
async fn late_enrolments_and_moves_keep_the_constraints() {
    let server = TestServer::start().await;
    // 48 French speakers (3 cohorts of 16) and 16 English speakers (1
    // cohort), 12 companies of at most 4 per language, sizes 15..17.
    let mut staff = people("fr", 48, 12, "fr");
    staff.extend(people("en", 16, 4, "en"));
    let rules = pb::CohortRules {
        min_size: Some(15),
        max_size: Some(17),
        ..Default::default()
    };
    seed_cohort_program(&server, "p", Some(rules), &staff).await;
    let mut cohorts = server.cohorts().await;
    let formed = cohorts
        .form_cohorts(form("p", 3, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(formed.cohorts.len(), 4);
    assert_constraints(&formed.cohorts, &staff, 15, 17);
    let fr: Vec<&pb::Cohort> = formed
        .cohorts
        .iter()
        .filter(|c| c.language == "fr")
        .collect();
    let en = formed.cohorts.iter().find(|c| c.language == "en").unwrap();
    assert_eq!(fr.len(), 3);

    let mv = |learner: &str, target: &str| move_to("p", learner, target);
    // A valid move: 16/16 -> 15/17.
    let mover = fr[0].learner_ids[0].clone();
    let moved = cohorts
        .move_learner(mv(&mover, &fr[1].id))
        .await
        .unwrap()
        .into_inner();
    let (source, target) = (moved.source.unwrap(), moved.target.unwrap());
    assert_eq!((source.size, target.size), (15, 17));
    assert!(target.learner_ids.contains(&mover) && !source.learner_ids.contains(&mover));

    // Breaking moves are refused, naming the rule.
    let err = cohorts
        .move_learner(mv(&fr[0].learner_ids[1], &fr[2].id))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("cohort size"), "{}", err.message());
    let err = cohorts
        .move_learner(mv(&fr[2].learner_ids[0], &en.id))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("language"), "{}", err.message());
    let now = list(&server, "p").await;
    assert_constraints(&now.cohorts, &staff, 15, 17);
    let sizes: BTreeMap<String, u32> = now.cohorts.iter().map(|c| (c.id.clone(), c.size)).collect();
    assert_eq!(sizes[&fr[0].id], 15, "refused moves changed nothing");
    assert_eq!(sizes[&en.id], 16);
    assert_eq!(now.version, 1, "moves do not bump the version");

    // Late enrolments.
    let late = [
        learner_in("late-fr", "co99", "fr", "Europe/Paris"),
        learner_in("late-en", "co98", "en", "Europe/Paris"),
        learner_in("late-en2", "co97", "en", "Europe/Paris"),
    ];
    let mut learners = server.learners().await;
    for l in &late {
        learners
            .upsert_learner(pb::UpsertLearnerRequest {
                learner: Some(l.clone()),
            })
            .await
            .unwrap();
    }
    let assign = |learner: &str| late_request("p", learner);
    let err = cohorts
        .assign_late_enrolment(assign("late-fr"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "not enrolled yet");
    assert!(err.message().contains("not enrolled"), "{}", err.message());
    for l in &late {
        learners
            .enroll_learner(pb::EnrollLearnerRequest {
                enrolled_at: None,
                learner_id: l.id.clone(),
                program_id: "p".into(),
            })
            .await
            .unwrap();
    }
    let placed = cohorts
        .assign_late_enrolment(assign("late-fr"))
        .await
        .unwrap()
        .into_inner();
    assert!(!placed.already_placed);
    let cohort = placed.cohort.unwrap();
    assert_eq!(cohort.language, "fr");
    assert!(cohort.learner_ids.contains(&"late-fr".to_string()));
    assert_ne!(cohort.id, fr[1].id, "the full cohort (17) cannot take more");
    let again = cohorts
        .assign_late_enrolment(assign("late-fr"))
        .await
        .unwrap()
        .into_inner();
    assert!(again.already_placed);
    assert_eq!(again.cohort.unwrap().id, cohort.id);

    let en_placed = cohorts
        .assign_late_enrolment(assign("late-en"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(en_placed.cohort.unwrap().size, 17);
    // The only English cohort is now full.
    let err = cohorts
        .assign_late_enrolment(assign("late-en2"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("blocked by cohort size"),
        "{}",
        err.message()
    );

    let mut everyone = staff.clone();
    everyone.extend(late[..2].iter().cloned());
    assert_constraints(&list(&server, "p").await.cohorts, &everyone, 15, 17);
    server.stop().await;
}

/// A locked cohort is kept (id, members) through re-forming; once
/// unlocked it is re-formed like the others.
#[tokio::test]
async fn locked_cohorts_survive_reforming() {
    let server = TestServer::start().await;
    let staff = people("l", 60, 5, "fr");
    seed_cohort_program(&server, "excel", None, &staff).await;
    let mut cohorts = server.cohorts().await;
    let first = cohorts
        .form_cohorts(form("excel", 1, false))
        .await
        .unwrap()
        .into_inner();
    let keep = first.cohorts[0].clone();
    let locked = cohorts
        .lock_cohort(pb::LockCohortRequest {
            cohort_id: keep.id.clone(),
            locked: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(locked.locked);

    let second = cohorts
        .form_cohorts(form("excel", 99, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.version, 2);
    assert_eq!(second.report.unwrap().locked_cohort_count, 1);
    let kept = second
        .cohorts
        .iter()
        .find(|c| c.id == keep.id)
        .expect("kept");
    assert!(kept.locked);
    assert_eq!(kept.learner_ids, keep.learner_ids);
    assert_eq!(kept.version, 2);
    assert!(
        second
            .cohorts
            .iter()
            .all(|c| c.id == keep.id || c.id.contains("/v2/")),
        "{:?}",
        partition(&second.cohorts)
    );
    assert_constraints(&second.cohorts, &staff, 15, 50);

    cohorts
        .lock_cohort(pb::LockCohortRequest {
            cohort_id: keep.id.clone(),
            locked: false,
        })
        .await
        .unwrap();
    cohorts.form_cohorts(form("excel", 5, false)).await.unwrap();
    let err = cohorts
        .get_cohort(pb::GetCohortRequest {
            cohort_id: keep.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    server.stop().await;
}

fn field_of(err: &tonic::Status) -> String {
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    err.get_error_details()
        .bad_request()
        .expect("BadRequest detail")
        .field_violations[0]
        .field
        .clone()
}

/// Unknown ids are NOT_FOUND; empty or malformed fields are
/// INVALID_ARGUMENT naming the field.
#[tokio::test]
async fn unknown_and_invalid_ids_are_refused() {
    let server = TestServer::start().await;
    let staff = people("l", 30, 5, "fr");
    seed_cohort_program(&server, "excel", None, &staff).await;
    let mut c = server.cohorts().await;

    let err = c.form_cohorts(form("nope", 1, false)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("nope"));
    let err = c
        .list_cohorts(pb::ListCohortsRequest {
            program_id: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    for id in ["nope", "excel/v1/c001"] {
        let err = c
            .get_cohort(pb::GetCohortRequest {
                cohort_id: id.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{id}");
    }
    let err = c
        .lock_cohort(pb::LockCohortRequest {
            cohort_id: "nope".into(),
            locked: true,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .assign_late_enrolment(late_request("excel", "ghost"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Before any formation, placing is a precondition failure.
    let err = c
        .assign_late_enrolment(late_request("excel", "l00"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("no cohorts yet"),
        "{}",
        err.message()
    );

    c.form_cohorts(form("excel", 1, false)).await.unwrap();
    let err = c
        .move_learner(move_to("excel", "l00", "excel/v9/c001"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .move_learner(move_to("excel", "ghost", "excel/v1/c001"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let err = c.form_cohorts(form("", 1, false)).await.unwrap_err();
    assert_eq!(field_of(&err), "program_id");
    let err = c
        .form_cohorts(pb::FormCohortsRequest {
            objective: 9,
            ..form("excel", 1, false)
        })
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), "objective");
    let err = c
        .get_cohort(pb::GetCohortRequest::default())
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), "cohort_id");
    let err = c
        .lock_cohort(pb::LockCohortRequest {
            cohort_id: "a\0b".into(),
            locked: true,
        })
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), "cohort_id");
    let err = c
        .move_learner(move_to("excel", "l00", ""))
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), "target_cohort_id");
    let err = c.move_learner(move_to("excel", "", "x")).await.unwrap_err();
    assert_eq!(field_of(&err), "learner_id");
    let err = c
        .assign_late_enrolment(late_request("", "l00"))
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), "program_id");
    let err = c
        .list_cohorts(pb::ListCohortsRequest {
            program_id: "excel".into(),
            page_size: -1,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), "page_size");
    let err = c
        .list_cohorts(pb::ListCohortsRequest {
            program_id: "excel".into(),
            page_size: 0,
            page_token: "zz".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(field_of(&err), "page_token");
    assert_eq!(
        list(&server, "excel").await.version,
        1,
        "refusals stored nothing"
    );
    server.stop().await;
}

/// `spoc learners import` loads a CSV (extra columns ignored) into a
/// running service; `spoc cohorts export` writes the formed cohorts back.
#[tokio::test]
async fn csv_import_and_export_through_the_binary() {
    let server = TestServer::start().await;
    seed_cohort_program(&server, "excel", None, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("learners.csv");
    let mut csv = String::from("learner_id,company_id,language,timezone,notes\n");
    for i in 0..40 {
        csv.push_str(&format!("u{i:02},co{},fr,Europe/Paris,\"x, y\"\n", i % 5));
    }
    std::fs::write(&input, &csv).unwrap();
    let out = spoc(
        &server,
        &["learners", "import", "--program", "excel", "--input"],
    )
    .arg(&input)
    .output()
    .await
    .unwrap();
    crate::common::assert_success(&out);
    let enrolled = server.enrolments("excel").await;
    assert_eq!(enrolled.enrolments.len(), 40);

    // A bad row is refused with its line, before anything is sent.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "learner_id,company_id,language,timezone\nz1,co1,fr,Mars/Base\n",
    )
    .unwrap();
    let out = spoc(
        &server,
        &["learners", "import", "--program", "excel", "--input"],
    )
    .arg(&bad)
    .output()
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 2") && stderr.contains("timezone"),
        "{stderr}"
    );
    // An unknown program is named.
    let out = spoc(
        &server,
        &["learners", "import", "--program", "nope", "--input"],
    )
    .arg(&input)
    .output()
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));

    let formed = server
        .cohorts()
        .await
        .form_cohorts(form("excel", 1, false))
        .await
        .unwrap()
        .into_inner();
    let output = dir.path().join("cohorts.csv");
    let out = spoc(
        &server,
        &["cohorts", "export", "--program", "excel", "--output"],
    )
    .arg(&output)
    .output()
    .await
    .unwrap();
    crate::common::assert_success(&out);
    let text = std::fs::read_to_string(&output).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("learner_id,cohort_id"));
    let rows: BTreeMap<String, String> = lines
        .map(|l| {
            let (learner, cohort) = l.split_once(',').unwrap();
            (learner.to_string(), cohort.to_string())
        })
        .collect();
    assert_eq!(rows.len(), 40);
    for c in &formed.cohorts {
        for l in &c.learner_ids {
            assert_eq!(rows[l], c.id);
        }
    }
    server.stop().await;
}
