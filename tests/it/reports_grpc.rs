//! Reports through gRPC: the figures of a small fixture cohort against
//! values computed by hand, certification of a learner who mastered every
//! skill vs one who did not, CSV / HTML renderings, `spoc report`, and
//! refusals.

use crate::common::*;
use spoc_engine::api::pb;
use tonic::Code;

/// Where the fixture's events begin: a little over 16 minutes ago, so that
/// every event of the fixture (15 minutes of them) is in the past when the
/// reports are read, and each learner's latest is live news for the alert
/// rules (less than 15 minutes old). The report counts ISO weeks, so when
/// those 15 minutes would straddle Monday 00:00 UTC (a run just after
/// midnight on a Monday) they end a minute before it instead: the latest
/// events are then up to 18 minutes old, a history load whose alerts come
/// once it settles, which the test waits for anyway.
fn base() -> i64 {
    const WEEK: i64 = 7 * 86_400;
    // 1970-01-05, a Monday, is 4 days after the epoch.
    const FIRST_MONDAY: i64 = 4 * 86_400;
    let start = t0() - 400;
    let next_monday = (start - FIRST_MONDAY).div_euclid(WEEK) * WEEK + FIRST_MONDAY + WEEK;
    if start + 900 >= next_monday {
        next_monday - 960
    } else {
        start
    }
}

/// The UTC date of `seconds`, and the ISO week with its Monday.
fn utc(seconds: i64, format: &str) -> String {
    jiff::Timestamp::from_second(seconds)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime(format)
        .to_string()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Fifteen learners in one cohort of program `p` (skills a, b, c; modules
/// m-a on a, m-b on b). `l00` masters everything and completes both
/// modules; `l01` fails three times on `a` (a blocking point), answers `b`
/// right once and completes m-a; `l02` only opens m-a; the rest do nothing.
async fn fixture(server: &TestServer) -> String {
    server
        .catalog()
        .await
        .import_catalog(small_catalog())
        .await
        .unwrap();
    let people: Vec<pb::Learner> = staff("l", 15, "co", 5);
    seed_cohort_program(server, "p", None, &people).await;
    let cohort = server
        .cohorts()
        .await
        .form_cohorts(pb::FormCohortsRequest {
            program_id: "p".into(),
            objective: 0,
            seed: 3,
            dry_run: false,
        })
        .await
        .unwrap()
        .into_inner()
        .cohorts
        .remove(0)
        .id;

    let mut attempts = Vec::new();
    for (s, skill) in ["a", "b", "c"].iter().enumerate() {
        for k in 0..3 {
            let t = base() + (s * 3 + k) as i64 * 60;
            attempts.push(attempt(
                &format!("l00-{skill}-{k}"),
                "l00",
                &[skill],
                true,
                t,
            ));
        }
    }
    for k in 0..3 {
        attempts.push(attempt(
            &format!("l01-a-{k}"),
            "l01",
            &["a"],
            false,
            base() + k * 60,
        ));
    }
    attempts.push(attempt("l01-b", "l01", &["b"], true, base() + 600));
    server.record(attempts).await;
    server
        .remediation()
        .await
        .record_activity(pb::RecordActivityRequest {
            activities: vec![
                activity("e1", "l00", "m-a", false, base(), 4),
                activity("e2", "l00", "m-a", true, base() + 300, 6),
                activity("e3", "l00", "m-b", true, base() + 900, 20),
                activity("e4", "l01", "m-a", true, base() + 400, 30),
                activity("e5", "l02", "m-a", false, base() + 500, 5),
            ],
        })
        .await
        .unwrap();
    // The blocking point of l01 is raised in the background.
    let request = pb::ListAlertsRequest {
        learner_id: "l01".into(),
        ..Default::default()
    };
    server.alerts_when(request, |l| !l.is_empty()).await;
    cohort
}

/// Checks every figure of the fixture's report against hand computations.
fn check_figures(r: &pb::Report) {
    assert_eq!(r.learner_count, 15);
    // Only l00 completed both program modules.
    assert_eq!(r.completed_count, 1);
    assert!(close(r.completion_rate, 1.0 / 15.0));

    // m-a: l02 5 min, l00 4 + 6 = 10 min, l01 30 min. Median 10; p90 at
    // rank 0.9 * 2 = 1.8: 10 + 0.8 * (30 - 10) = 26.
    assert_eq!(r.module_time.len(), 2);
    let ma = &r.module_time[0];
    assert_eq!((ma.module_id.as_str(), ma.learner_count), ("m-a", 3));
    assert!(
        close(ma.median_minutes, 10.0) && close(ma.p90_minutes, 26.0),
        "{ma:?}"
    );
    let mb = &r.module_time[1];
    assert_eq!((mb.module_id.as_str(), mb.learner_count), ("m-b", 1));
    assert!(close(mb.median_minutes, 20.0) && close(mb.p90_minutes, 20.0));

    // Skill a: l01 blocked; l00 and l01 answered; three failures.
    assert_eq!(r.blocking_points.len(), 1, "{:?}", r.blocking_points);
    let b = &r.blocking_points[0];
    assert_eq!(
        (b.scope.as_str(), b.id.as_str(), b.name.as_str()),
        ("skill", "a", "Skill a")
    );
    assert_eq!(
        (b.learners_blocked, b.learners_attempted, b.failed_attempts),
        (1, 2, 3)
    );

    // Competence: P(mastered) after the first and the latest answer.
    let right = |n: usize| hand_bkt(&vec![true; n]);
    let wrong = |n: usize| hand_bkt(&vec![false; n]);
    let c: Vec<_> = r.competence.iter().map(|c| c.skill_id.as_str()).collect();
    assert_eq!(c, ["a", "b", "c"]);
    let a = &r.competence[0];
    assert_eq!((a.learner_count, a.mastered_now), (2, 1));
    assert!(close(a.before_mean, (right(1) + wrong(1)) / 2.0), "{a:?}");
    assert!(close(a.after_mean, (right(3) + wrong(3)) / 2.0), "{a:?}");
    let bs = &r.competence[1];
    assert_eq!((bs.learner_count, bs.mastered_now), (2, 1));
    assert!(close(bs.before_mean, right(1)));
    assert!(close(bs.after_mean, (right(3) + right(1)) / 2.0));
    let cs = &r.competence[2];
    assert_eq!((cs.learner_count, cs.mastered_now), (1, 1));
    assert!(close(cs.before_mean, right(1)) && close(cs.after_mean, right(3)));

    // Everything happened in one ISO week, by three learners.
    assert_eq!(r.participation.len(), 1);
    let w = &r.participation[0];
    assert_eq!(w.week, utc(base(), "%G-W%V"));
    let week_day = jiff::Timestamp::from_second(base())
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let back = i64::from(week_day.weekday().to_monday_zero_offset());
    assert_eq!(
        w.starts_on,
        week_day
            .checked_sub(jiff::Span::new().days(back))
            .unwrap()
            .to_string()
    );
    assert_eq!((w.active_learners, w.completed_cumulative), (3, 1));

    // One blocking-point alert, open.
    let total = r.alerts.as_ref().unwrap();
    assert_eq!((total.raised, total.resolved), (1, 0));
    let by_kind = r
        .alerts_by_kind
        .iter()
        .find(|t| t.kind == pb::AlertKind::BlockingPoint as i32)
        .unwrap();
    assert_eq!(by_kind.raised, 1);
    assert_eq!(r.alerts_by_kind.len(), 6, "one row per kind");

    // l00 certified by its ninth answer, three per skill.
    assert_eq!(r.certified.len(), 1);
    let cert = &r.certified[0];
    assert_eq!(cert.learner_id, "l00");
    assert_eq!(cert.certified_on, utc(base() + 8 * 60, "%Y-%m-%d"));
    assert_eq!(cert.certified_at.unwrap().seconds, base() + 8 * 60);
    assert_eq!(
        cert.attempts_per_skill,
        [
            ("a".to_string(), 3),
            ("b".to_string(), 3),
            ("c".to_string(), 3)
        ]
        .into()
    );
}

#[tokio::test]
async fn cohort_and_program_reports_match_hand_computed_figures() {
    let server = TestServer::start().await;
    let cohort = fixture(&server).await;
    let mut reports = server.reports().await;

    let response = reports
        .get_cohort_report(pb::GetCohortReportRequest {
            cohort_id: cohort.clone(),
            program_id: "p".into(),
            format: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(response.rendered.is_empty() && response.content_type.is_empty());
    let report = response.report.unwrap();
    assert_eq!(report.scope_kind, "cohort");
    assert_eq!(report.scope_id, cohort);
    assert!(close(report.mastery_threshold, 0.95));
    check_figures(&report);

    let program = reports
        .get_program_report(pb::GetProgramReportRequest {
            program_id: "p".into(),
            format: pb::ReportFormat::Csv as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let program_report = program.report.unwrap();
    assert_eq!(program_report.scope_kind, "program");
    check_figures(&program_report);
    assert_eq!(program.content_type, "text/csv; charset=utf-8");
    let mut lines = program.rendered.lines();
    assert_eq!(lines.next(), Some("section,id,name,metric,value"));
    assert!(
        program
            .rendered
            .lines()
            .any(|l| l == "summary,p,Program p,completed,1"),
        "{}",
        program.rendered
    );

    let html = reports
        .get_cohort_report(pb::GetCohortReportRequest {
            cohort_id: cohort.clone(),
            program_id: String::new(),
            format: pb::ReportFormat::Html as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(html.content_type, "text/html; charset=utf-8");
    assert!(html.rendered.starts_with("<!DOCTYPE html>"));
    assert!(html.rendered.contains("<svg"));
    assert!(!html.rendered.contains("<script"));
    server.stop().await;
}

#[tokio::test]
async fn certification_of_a_learner_who_mastered_everything_and_of_one_who_did_not() {
    let server = TestServer::start().await;
    fixture(&server).await;
    let mut reports = server.reports().await;
    let certification = |learner: &str| pb::GetCertificationRequest {
        learner_id: learner.into(),
        program_id: "p".into(),
    };

    let done = reports
        .get_certification(certification("l00"))
        .await
        .unwrap()
        .into_inner();
    assert!(done.certified);
    assert_eq!(done.certified_on, utc(base() + 8 * 60, "%Y-%m-%d"));
    assert_eq!(done.certified_at.unwrap().seconds, base() + 8 * 60);
    assert_eq!(done.skills.len(), 3);
    for s in &done.skills {
        assert!(s.mastered, "{s:?}");
        assert!(close(s.p_mastered, hand_bkt(&[true; 3])));
        assert_eq!((s.attempt_count, s.attempts_to_certification), (3, 3));
    }

    let not_yet = reports
        .get_certification(certification("l01"))
        .await
        .unwrap()
        .into_inner();
    assert!(!not_yet.certified);
    assert!(not_yet.certified_at.is_none() && not_yet.certified_on.is_empty());
    let ids: Vec<_> = not_yet.skills.iter().map(|s| s.skill_id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    let a = &not_yet.skills[0];
    assert!(!a.mastered && close(a.p_mastered, hand_bkt(&[false; 3])));
    assert_eq!((a.attempt_count, a.attempts_to_certification), (3, 0));
    let c = &not_yet.skills[2];
    assert_eq!(c.attempt_count, 0);
    assert!(close(c.p_mastered, 0.2), "prior without answers");
    server.stop().await;
}

#[tokio::test]
async fn refusals_name_the_field_or_the_missing_object() {
    let server = TestServer::start().await;
    let cohort = fixture(&server).await;
    seed(&server).await; // program excel; alice is not enrolled in p
    let mut reports = server.reports().await;

    let status = reports
        .get_cohort_report(pb::GetCohortReportRequest::default())
        .await
        .unwrap_err();
    assert_invalid_field(&status, "cohort_id");
    let status = reports
        .get_cohort_report(pb::GetCohortReportRequest {
            cohort_id: cohort.clone(),
            program_id: "excel".into(),
            format: 0,
        })
        .await
        .unwrap_err();
    assert_invalid_field(&status, "program_id");
    let status = reports
        .get_cohort_report(pb::GetCohortReportRequest {
            cohort_id: cohort.clone(),
            program_id: String::new(),
            format: 7,
        })
        .await
        .unwrap_err();
    assert_invalid_field(&status, "format");
    let status = reports
        .get_cohort_report(pb::GetCohortReportRequest {
            cohort_id: "p/v9/c001".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = reports
        .get_program_report(pb::GetProgramReportRequest::default())
        .await
        .unwrap_err();
    assert_invalid_field(&status, "program_id");
    let status = reports
        .get_program_report(pb::GetProgramReportRequest {
            program_id: "nope".into(),
            format: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    for (learner, program, code) in [
        ("nobody", "p", Code::NotFound),
        ("l00", "nope", Code::NotFound),
        ("alice", "p", Code::FailedPrecondition),
    ] {
        let status = reports
            .get_certification(pb::GetCertificationRequest {
                learner_id: learner.into(),
                program_id: program.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{learner} in {program}: {status:?}");
    }
    let status = reports
        .get_certification(pb::GetCertificationRequest {
            learner_id: "l00".into(),
            program_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_invalid_field(&status, "program_id");
    server.stop().await;
}

#[tokio::test]
async fn spoc_report_writes_the_file_from_a_running_service() {
    let server = TestServer::start().await;
    let cohort = fixture(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let out = spoc(
        &server,
        &["report", "--program", "p", "--cohort", &cohort, "--output"],
    )
    .arg(&html)
    .output()
    .await
    .unwrap();
    crate::common::assert_success(&out);
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(text.starts_with("<!DOCTYPE html>") && text.contains("<svg"));

    let csv = dir.path().join("report.csv");
    let out = spoc(
        &server,
        &["report", "--program", "p", "--format", "csv", "--output"],
    )
    .arg(&csv)
    .output()
    .await
    .unwrap();
    crate::common::assert_success(&out);
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.contains("summary,p,Program p,learners,15"), "{text}");

    // A refused call writes nothing and says why.
    let missing = dir.path().join("missing.html");
    let out = spoc(&server, &["report", "--program", "nope", "--output"])
        .arg(&missing)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
    assert!(!missing.exists());
    server.stop().await;
}
