//! Unit tests of cohort formation on small hand-built cases.

use super::*;

/// Learner with a mastery vector derived from its index, so cases are
/// varied but fully determined.
fn learner(i: usize, company: &str, lang: &str, tz: Option<i32>) -> CohortLearner {
    let m = |k: usize| ((i * (7 + 3 * k) + 5 * k) % 101) as f64 / 100.0;
    CohortLearner {
        id: format!("L{i:04}"),
        company: company.to_string(),
        language: lang.to_string(),
        utc_offset_minutes: tz,
        mastery: vec![m(0), m(1), m(2)],
    }
}

/// `n` learners spread over `companies` companies, one language, one zone.
fn simple(n: usize, companies: usize) -> Vec<CohortLearner> {
    (0..n)
        .map(|i| learner(i, &format!("C{}", i % companies), "en", Some(60)))
        .collect()
}

fn form(
    learners: &[CohortLearner],
    cons: CohortConstraints,
    locked: &[LockedCohort],
) -> Result<Formation, CohortError> {
    form_cohorts(&FormationRequest {
        learners,
        constraints: cons,
        objective: Objective::Balanced,
        seed: 42,
        locked,
    })
}

fn infeasible(r: Result<Formation, CohortError>) -> (Constraint, String) {
    match r {
        Err(CohortError::Infeasible { constraint, reason }) => (constraint, reason),
        other => panic!("expected an infeasibility, got {other:?}"),
    }
}

#[test]
fn company_over_cap_is_refused_with_figures() {
    let mut ls = simple(320, 20);
    for l in ls.iter_mut().take(147) {
        l.company = "Big".into();
    }
    let (c, reason) = infeasible(form(&ls, CohortConstraints::default(), &[]));
    assert_eq!(c, Constraint::CompanyShare);
    assert!(reason.contains("\"Big\""), "{reason}");
    assert!(reason.contains("147 of the 320"), "{reason}");
    assert!(reason.contains("above the cap"), "{reason}");
}

#[test]
fn too_few_companies_to_mix_is_refused() {
    // Three companies at a 30% cap can fill at most 90% of a cohort.
    let ls = simple(60, 3);
    let (c, reason) = infeasible(form(&ls, CohortConstraints::default(), &[]));
    assert_eq!(c, Constraint::CompanyShare);
    assert!(reason.contains("no split can work"), "{reason}");
}

#[test]
fn company_cap_holds_when_binding() {
    let mut ls = simple(100, 10);
    for l in ls.iter_mut().take(30) {
        l.company = "Big".into();
    }
    let cons = CohortConstraints {
        target_cohorts: Some(5),
        ..Default::default()
    };
    let f = form(&ls, cons, &[]).expect("30% of 100 fits five cohorts of 20");
    for c in &f.cohorts {
        let big = c
            .members
            .iter()
            .filter(|m| ls.iter().any(|l| &l.id == *m && l.company == "Big"))
            .count();
        assert!(big <= cons.company_cap(c.members.len()));
    }
    assert!(f.report.max_company_share <= 0.3 + 1e-12);
}

#[test]
fn languages_are_not_mixed() {
    let mut ls = simple(90, 10);
    for (i, l) in ls.iter_mut().enumerate() {
        l.language = if i % 3 == 0 { "fr".into() } else { "en".into() };
    }
    let f = form(&ls, CohortConstraints::default(), &[]).unwrap();
    for c in &f.cohorts {
        let langs: BTreeSet<&str> = c
            .members
            .iter()
            .map(|m| ls.iter().find(|l| &l.id == m).unwrap().language.as_str())
            .collect();
        assert_eq!(langs.len(), 1, "cohort {} mixes {langs:?}", c.id);
    }
    assert_eq!(f.cohorts.iter().map(|c| c.members.len()).sum::<usize>(), 90);
}

/// A language group too small to fill a cohort is left out, each learner
/// with the reason; the others are formed. Alone, it is a refusal.
#[test]
fn small_language_group_is_left_out() {
    let mut ls = simple(70, 10);
    for l in ls.iter_mut().take(10) {
        l.language = "de".into();
    }
    let f = form(&ls, CohortConstraints::default(), &[]).unwrap();
    assert_eq!(f.unplaced.len(), 10);
    for u in &f.unplaced {
        assert_eq!(u.constraint, Constraint::Language);
        assert!(u.reason.contains("\"de\""), "{}", u.reason);
    }
    assert_eq!(f.cohorts.iter().map(|c| c.members.len()).sum::<usize>(), 60);
    let (c, _) = infeasible(form(&ls[..10], CohortConstraints::default(), &[]));
    assert_eq!(c, Constraint::Size);
}

#[test]
fn unknown_language_fills_a_small_group() {
    let mut ls = simple(70, 10);
    for l in ls.iter_mut().take(10) {
        l.language = "de".into();
    }
    for l in ls.iter_mut().skip(10).take(5) {
        l.language.clear();
    }
    let f = form(&ls, CohortConstraints::default(), &[]).expect("5 wildcards make 15 de");
    assert!(verify_partition(&ls, &f.cohorts, &CohortConstraints::default()).is_ok());
}

#[test]
fn time_zones_are_split_into_windows() {
    let mut ls = simple(60, 10);
    for (i, l) in ls.iter_mut().enumerate() {
        l.utc_offset_minutes = Some(if i < 30 { -300 } else { 60 });
    }
    let cons = CohortConstraints::default();
    let f = form(&ls, cons, &[]).unwrap();
    assert_eq!(f.cohorts.len(), 2);
    for c in &f.cohorts {
        let offs: BTreeSet<i32> = c
            .members
            .iter()
            .map(|m| {
                ls.iter()
                    .find(|l| &l.id == m)
                    .unwrap()
                    .utc_offset_minutes
                    .unwrap()
            })
            .collect();
        assert_eq!(offs.len(), 1, "cohort {} spans {offs:?}", c.id);
    }
}

/// Learners of a time zone with too few companions within the spread are
/// left out with the reason; the others are formed.
#[test]
fn isolated_time_zone_is_left_out() {
    let mut ls = simple(40, 10);
    for (i, l) in ls.iter_mut().enumerate() {
        l.utc_offset_minutes = Some(if i < 32 { 60 } else { 540 });
    }
    let f = form(&ls, CohortConstraints::default(), &[]).unwrap();
    assert_eq!(f.unplaced.len(), 8);
    assert_eq!(f.unplaced[0].constraint, Constraint::TimezoneSpread);
    assert!(
        f.unplaced[0].reason.contains("UTC+09:00"),
        "{}",
        f.unplaced[0].reason
    );
    assert_eq!(f.cohorts.iter().map(|c| c.members.len()).sum::<usize>(), 32);
}

#[test]
fn size_bounds_and_target_count() {
    let (c, _) = infeasible(form(&simple(14, 7), CohortConstraints::default(), &[]));
    assert_eq!(c, Constraint::Size);
    let cons = CohortConstraints {
        target_cohorts: Some(10),
        ..Default::default()
    };
    let (c, reason) = infeasible(form(&simple(100, 10), cons, &[]));
    assert_eq!(c, Constraint::CohortCount);
    assert!(reason.contains("between 2 and 6"), "{reason}");
    let bad = CohortConstraints {
        min_size: 10,
        ..Default::default()
    };
    assert!(matches!(
        form(&simple(100, 10), bad, &[]),
        Err(CohortError::InvalidInput(_))
    ));
}

#[test]
fn sizes_stay_within_bounds() {
    let cons = CohortConstraints {
        min_size: 20,
        max_size: 22,
        ..Default::default()
    };
    let f = form(&simple(130, 13), cons, &[]).unwrap();
    assert!(
        f.cohorts
            .iter()
            .all(|c| (20..=22).contains(&c.members.len()))
    );
    assert_eq!(
        f.cohorts.iter().map(|c| c.members.len()).sum::<usize>(),
        130
    );
}

#[test]
fn locked_cohorts_are_kept() {
    let ls = simple(80, 10);
    let locked = vec![LockedCohort {
        id: "started".into(),
        members: ls[..20].iter().map(|l| l.id.clone()).collect(),
    }];
    let f = form(&ls, CohortConstraints::default(), &locked).unwrap();
    assert_eq!(f.cohorts[0].id, "started");
    assert_eq!(f.cohorts[0].members, locked[0].members);
    assert!(f.cohorts[0].locked);
    for c in &f.cohorts[1..] {
        assert!(!c.locked);
        assert!(c.members.iter().all(|m| !locked[0].members.contains(m)));
    }
    assert_eq!(f.report.learners, 60);
    assert!(verify_partition(&ls, &f.cohorts, &CohortConstraints::default()).is_ok());
}

#[test]
fn invalid_locked_cohort_is_refused() {
    let ls = simple(80, 10);
    let locked = vec![LockedCohort {
        id: "tiny".into(),
        members: ls[..5].iter().map(|l| l.id.clone()).collect(),
    }];
    let err = form(&ls, CohortConstraints::default(), &locked).unwrap_err();
    assert_eq!(err.constraint(), Some(Constraint::Size));
}

#[test]
fn same_seed_same_cohorts_and_balance_beats_random() {
    let ls = simple(300, 30);
    let a = form(&ls, CohortConstraints::default(), &[]).unwrap();
    let b = form(&ls, CohortConstraints::default(), &[]).unwrap();
    assert_eq!(a.cohorts, b.cohorts);
    assert!(a.report.max_mean_gap() < a.report.random_max_mean_gap());
    assert!(a.report.objective_value < a.report.random_objective_value);
}

#[test]
fn leveled_cohorts_are_more_homogeneous() {
    let ls = simple(300, 30);
    let f = form_cohorts(&FormationRequest {
        learners: &ls,
        constraints: CohortConstraints::default(),
        objective: Objective::Leveled,
        seed: 1,
        locked: &[],
    })
    .unwrap();
    assert!(verify_partition(&ls, &f.cohorts, &CohortConstraints::default()).is_ok());
    assert!(f.report.objective_value < f.report.random_objective_value);
}

#[test]
fn late_learner_goes_where_it_fits() {
    let mut ls = simple(60, 10);
    for (i, l) in ls.iter_mut().enumerate() {
        l.language = if i < 30 { "en".into() } else { "fr".into() };
    }
    let cons = CohortConstraints::default();
    let f = form(&ls, cons, &[]).unwrap();
    let newcomer = learner(999, "C1", "fr", Some(60));
    let p = assign_late(&ls, &f.cohorts, &newcomer, &cons, Objective::Balanced).unwrap();
    let chosen = &f.cohorts[p.cohort_index];
    assert_eq!(chosen.id, p.cohort_id);
    assert!(
        chosen
            .members
            .iter()
            .all(|m| ls.iter().find(|l| &l.id == m).unwrap().language == "fr")
    );
}

#[test]
fn late_learner_blocked_names_the_constraint() {
    let ls = simple(30, 10);
    let cons = CohortConstraints {
        min_size: 15,
        max_size: 15,
        ..Default::default()
    };
    let f = form(&ls, cons, &[]).unwrap();
    let newcomer = learner(999, "C1", "en", Some(60));
    match assign_late(&ls, &f.cohorts, &newcomer, &cons, Objective::Balanced) {
        Err(CohortError::Infeasible { constraint, reason }) => {
            assert_eq!(constraint, Constraint::Size);
            assert!(reason.contains("2 blocked by cohort size"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let far = learner(998, "C1", "en", Some(600));
    let cons2 = CohortConstraints::default();
    let err = assign_late(&ls, &f.cohorts, &far, &cons2, Objective::Balanced).unwrap_err();
    assert_eq!(err.constraint(), Some(Constraint::TimezoneSpread));
}

#[test]
fn check_move_reports_the_broken_constraint() {
    let mut ls = simple(64, 16);
    for (i, l) in ls.iter_mut().enumerate() {
        l.language = if i < 32 { "en".into() } else { "fr".into() };
    }
    let cons = CohortConstraints::default();
    let f = form(&ls, cons, &[]).unwrap();
    assert_eq!(f.cohorts.len(), 2);
    let (a, b) = (&f.cohorts[0], &f.cohorts[1]);
    let who = &a.members[0];
    let v = check_move(&ls, &f.cohorts, who, &a.id, &b.id, &cons).unwrap_err();
    assert_eq!(v.constraint(), Constraint::Language);
    let loose = CohortConstraints {
        single_language: false,
        ..cons
    };
    assert!(check_move(&ls, &f.cohorts, who, &a.id, &b.id, &loose).is_ok());
    let tight = CohortConstraints {
        single_language: false,
        min_size: 32,
        max_size: 32,
        ..cons
    };
    let v = check_move(&ls, &f.cohorts, who, &a.id, &b.id, &tight).unwrap_err();
    assert_eq!(v.constraint(), Constraint::Size);
    let v = check_move(&ls, &f.cohorts, who, &b.id, &a.id, &cons).unwrap_err();
    assert!(matches!(v, Violation::NotAMember { .. }));
}

#[test]
fn verify_catches_missing_and_duplicates() {
    let ls = simple(60, 10);
    let cons = CohortConstraints::default();
    let f = form(&ls, cons, &[]).unwrap();
    let mut broken = f.cohorts.clone();
    let m = broken[0].members.pop().unwrap();
    assert!(matches!(
        verify_partition(&ls, &broken, &cons),
        Err(Violation::MissingLearner { .. })
    ));
    broken[0].members.push(m.clone());
    broken[1].members.push(m);
    assert!(verify_partition(&ls, &broken, &cons).is_err());
}

#[test]
fn csv_round_trip_and_line_numbers() {
    let mut input =
        String::from("learner_id,company_id,language,timezone,algebra,\"geo, metry\"\n");
    for i in 0..40 {
        let tz = if i % 2 == 0 { "Europe/Paris" } else { "" };
        input.push_str(&format!("u{i},c{},en,{tz},0.{i:02},0.5\n", i % 8));
    }
    let opts = OfflineOptions {
        constraints: CohortConstraints::default(),
        objective: Objective::Balanced,
        seed: 3,
        reference_instant: "2025-01-15T12:00:00Z".parse().unwrap(),
    };
    let mut out = Vec::new();
    let (report, _) = run_offline(input.as_bytes(), &mut out, &opts).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 41);
    assert!(text.starts_with("learner_id,cohort_id\nu0,cohort-"));
    assert_eq!(report.skills[1].name, "geo, metry");
    assert!(report.to_string().contains("geo, metry"));

    let bad = input.replacen("u3,c3,en,,0.03,0.5", "u3,c3,en,,1.5,0.5", 1);
    match run_offline(bad.as_bytes(), Vec::new(), &opts) {
        Err(CohortError::Csv { line, reason }) => {
            assert_eq!(line, 5);
            assert!(reason.contains("outside [0, 1]"), "{reason}");
        }
        other => panic!("expected a CSV error, got {other:?}"),
    }
    let bad_tz = input.replacen("Europe/Paris", "Mars/Olympus", 1);
    assert!(matches!(
        run_offline(bad_tz.as_bytes(), Vec::new(), &opts),
        Err(CohortError::Csv { line: 2, .. })
    ));
}

#[test]
fn offsets_follow_daylight_saving() {
    let winter = "2025-01-15T12:00:00Z".parse().unwrap();
    let summer = "2025-07-15T12:00:00Z".parse().unwrap();
    assert_eq!(utc_offset_minutes("Europe/Paris", winter), Ok(60));
    assert_eq!(utc_offset_minutes("Europe/Paris", summer), Ok(120));
    assert_eq!(utc_offset_minutes("Asia/Kolkata", winter), Ok(330));
}

/// A newcomer who brings a cohort closer to the population lowers its
/// cost: the reported increase is then 0, never negative.
#[test]
fn late_cost_increase_is_never_negative() {
    let at = |i: usize, level: f64| CohortLearner {
        id: format!("L{i:04}"),
        company: format!("C{}", i % 10),
        language: "en".into(),
        utc_offset_minutes: Some(60),
        mastery: vec![level, level],
    };
    let ls: Vec<CohortLearner> = (0..30)
        .map(|i| at(i, if i < 15 { 0.9 } else { 0.1 }))
        .collect();
    let cohorts = vec![
        Cohort {
            id: "high".into(),
            members: ls[..15].iter().map(|l| l.id.clone()).collect(),
            locked: false,
        },
        Cohort {
            id: "low".into(),
            members: ls[15..].iter().map(|l| l.id.clone()).collect(),
            locked: false,
        },
    ];
    let newcomer = at(99, 0.1);
    let cons = CohortConstraints::default();
    let p = assign_late(&ls, &cohorts, &newcomer, &cons, Objective::Balanced).unwrap();
    assert_eq!(p.cohort_id, "high", "it pulls the high cohort's mean back");
    assert_eq!(p.cost_increase, 0.0);
}
