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
        utc_offsets: tz.into_iter().collect(),
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
        l.utc_offsets = vec![if i < 30 { -300 } else { 60 }];
    }
    let cons = CohortConstraints::default();
    let f = form(&ls, cons, &[]).unwrap();
    assert_eq!(f.cohorts.len(), 2);
    for c in &f.cohorts {
        let offs: BTreeSet<i32> = c
            .members
            .iter()
            .map(|m| ls.iter().find(|l| &l.id == m).unwrap().utc_offsets[0])
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
        l.utc_offsets = vec![if i < 32 { 60 } else { 540 }];
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

/// A locked cohort that breaks a rule now (too small here) is kept as it
/// is, not refused: the others are formed around it, and the breach is
/// what `cohort_breaches` reports.
#[test]
fn broken_locked_cohort_is_kept() {
    let ls = simple(80, 10);
    let locked = vec![LockedCohort {
        id: "tiny".into(),
        members: ls[..5].iter().map(|l| l.id.clone()).collect(),
    }];
    let cons = CohortConstraints::default();
    let f = form(&ls, cons, &locked).unwrap();
    assert_eq!(f.cohorts[0].id, "tiny");
    assert_eq!(f.cohorts[0].members, locked[0].members);
    let placed: usize = f.cohorts.iter().map(|c| c.members.len()).sum();
    assert_eq!(placed, 80);
    let breaches = cohort_breaches(&ls, "tiny", &[0, 1, 2, 3, 4], &cons);
    assert_eq!(breaches.len(), 1);
    assert_eq!(breaches[0].rule(), "min_size");
    assert_eq!((breaches[0].value, breaches[0].limit), (5.0, 15.0));
    // The strict check still refuses it.
    assert!(matches!(
        verify_partition(&ls, &f.cohorts, &cons),
        Err(Violation::TooSmall { .. })
    ));
}

/// Every rule a cohort breaks is reported, with the learners and company
/// concerned and the figure against the limit.
#[test]
fn breaches_name_the_rule_the_members_and_the_figures() {
    let mut ls = simple(20, 10);
    for l in ls.iter_mut().take(6) {
        l.company = "acme".into();
    }
    ls[7].language = "fr".into();
    ls[8].utc_offsets = vec![600];
    ls[9].utc_offsets = vec![-180];
    let cons = CohortConstraints {
        max_company_share: 0.15,
        ..Default::default()
    };
    let members: Vec<usize> = (0..20).collect();
    let b = cohort_breaches(&ls, "c", &members, &cons);
    let rules: Vec<&str> = b.iter().map(Breach::rule).collect();
    assert_eq!(
        rules,
        [
            "max_company_share",
            "single_language",
            "max_timezone_spread_hours"
        ]
    );
    assert_eq!(b[0].companies, ["acme"]);
    assert_eq!(b[0].learners.len(), 6);
    assert_eq!((b[0].value, b[0].limit), (0.3, 0.15));
    assert!(
        b[0].message
            .contains("6 learners of company \"acme\" out of 20"),
        "{}",
        b[0].message
    );
    assert_eq!(b[1].learners, [ls[7].id.clone()]);
    assert_eq!((b[1].value, b[1].limit), (2.0, 1.0));
    assert_eq!(b[2].learners, [ls[8].id.clone(), ls[9].id.clone()]);
    assert_eq!((b[2].value, b[2].limit), (13.0, 3.0));
    assert!(
        b[2].message.contains("UTC-03:00 to UTC+10:00"),
        "{}",
        b[2].message
    );
    // check_cohort reports the first of them.
    assert!(matches!(
        constraints::check_cohort(&ls, "c", &members, &cons),
        Err(Violation::CompanyShare { .. })
    ));
}

/// A move may leave a broken cohort broken, but not worse: moving a
/// member out of a cohort above a tightened maximum is allowed, moving one
/// in is refused.
#[test]
fn moves_may_repair_but_not_worsen_a_breach() {
    let ls = simple(80, 10);
    let cohorts = vec![
        Cohort {
            id: "big".into(),
            members: ls[..45].iter().map(|l| l.id.clone()).collect(),
            locked: true,
        },
        Cohort {
            id: "small".into(),
            members: ls[45..].iter().map(|l| l.id.clone()).collect(),
            locked: false,
        },
    ];
    let cons = CohortConstraints {
        max_size: 40,
        ..Default::default()
    };
    assert!(check_move(&ls, &cohorts, &ls[0].id, "big", "small", &cons).is_ok());
    let v = check_move(&ls, &cohorts, &ls[50].id, "small", "big", &cons).unwrap_err();
    assert!(matches!(v, Violation::TooLarge { size: 46, .. }), "{v}");
}

/// Offsets over a program's dates: London and Sao Paulo are 3 h apart in
/// December and 4 h in July; a window from December to July sees both.
#[test]
fn offsets_over_a_window_see_daylight_saving() {
    let dec = "2024-12-01T00:00:00Z".parse().unwrap();
    let jun = "2025-06-01T00:00:00Z".parse().unwrap();
    let jul = "2025-07-31T00:00:00Z".parse().unwrap();
    let zones = ["Europe/London", "America/Sao_Paulo", ""];
    let summer = ZoneOffsets::over(zones, Window::new(jun, jul)).unwrap();
    assert_eq!(summer.instants.len(), 1);
    assert_eq!(summer.of("Europe/London"), Some(&[60][..]));
    assert_eq!(summer.of("America/Sao_Paulo"), Some(&[-180][..]));
    assert_eq!(summer.of(""), None);
    let long = ZoneOffsets::over(zones, Window::new(dec, jul)).unwrap();
    assert_eq!(long.of("Europe/London"), Some(&[0, 60][..]));
    assert_eq!(long.of("America/Sao_Paulo"), Some(&[-180, -180][..]));
    let spread = offsets::widest(
        ["Europe/London", "America/Sao_Paulo"]
            .iter()
            .map(|z| long.of(z).unwrap()),
    )
    .unwrap();
    assert_eq!((spread.minutes, spread.low, spread.high), (240, -180, 60));
    // Repeated combinations are dropped, and a window to year 9999 is
    // looked at over two years.
    let far = "9999-01-01T00:00:00Z".parse().unwrap();
    let forever =
        ZoneOffsets::over(["Europe/London", "America/New_York"], Window::new(dec, far)).unwrap();
    assert!(forever.instants.len() <= 4, "{:?}", forever.instants);
    assert!(ZoneOffsets::over(["Mars/Olympus"], Window::at(dec)).is_err());
}

/// 20 learners in London and 20 in Sao Paulo: 3 h apart in December, so
/// one cohort when formed for a December instant; 4 h apart all summer, so
/// two cohorts when formed over a June-July program's offsets.
#[test]
fn formation_keeps_the_spread_over_the_window() {
    let london_sao_paulo = |london: &[i32], sao_paulo: &[i32]| -> Vec<CohortLearner> {
        (0..40)
            .map(|i| {
                let mut l = learner(i, &format!("C{}", i % 10), "en", None);
                l.utc_offsets = if i < 20 { london } else { sao_paulo }.to_vec();
                l
            })
            .collect()
    };
    let cons = CohortConstraints::default();
    let winter = london_sao_paulo(&[0], &[-180]);
    assert_eq!(form(&winter, cons, &[]).unwrap().cohorts.len(), 1);
    let both = london_sao_paulo(&[0, 60], &[-180, -180]);
    let f = form(&both, cons, &[]).unwrap();
    assert_eq!(f.cohorts.len(), 2);
    for c in &f.cohorts {
        let idx: Vec<usize> = c
            .members
            .iter()
            .map(|m| both.iter().position(|l| &l.id == m).unwrap())
            .collect();
        assert!(cohort_breaches(&both, &c.id, &idx, &cons).is_empty());
    }
    // Offsets at different numbers of instants are refused.
    let mut bad = both.clone();
    bad[0].utc_offsets = vec![0];
    assert!(matches!(
        form(&bad, cons, &[]),
        Err(CohortError::InvalidInput(_))
    ));
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
        utc_offsets: vec![60],
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
