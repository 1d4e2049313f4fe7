//! `spoc demo` end to end: the real binary, at the default scale,
//! on a fresh data folder, without serving afterwards.

use serde_json::Value;

/// The demo loads 30 skills, 120 modules, 600 learners from 12 companies
/// in 2 programs through gRPC, forms cohorts with a balance report better
/// than a random draw, shows three learners' next modules with reasons,
/// finds open alerts, writes the HTML reports and prints every section;
/// a second run (on a small world) wipes its own folder, and a folder it
/// did not write is refused untouched.
#[test]
fn demo_runs_on_a_fresh_folder_and_shows_everything() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("demo");
    // The first run at the default scale; the later ones check what
    // happens to the folder, on a small world.
    let run = |dir: &std::path::Path, extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_spoc"))
            .args([
                "demo",
                "--no-serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir)
            .args(extra)
            .env_remove("RUST_LOG")
            .output()
            .expect("run spoc demo")
    };
    let small = ["--learners", "100", "--weeks", "1"];
    let out = run(&dir, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    for section in [
        "1. A demo world",
        "2. Cohorts",
        "balance report",
        "3. Next modules for three learners",
        "4. Open at-risk alerts",
        "5. Reports",
    ] {
        assert!(stdout.contains(section), "missing {section:?} in\n{stdout}");
    }

    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("demo-summary.json")).unwrap())
            .unwrap();
    let loaded = &summary["loaded"];
    assert_eq!(loaded["skills"], 30);
    assert_eq!(loaded["modules"], 120);
    assert_eq!(loaded["items"], 240, "eight bank questions per skill");
    assert_eq!(loaded["learners"], 600);
    assert_eq!(loaded["companies"], 12);
    assert_eq!(loaded["programs"], 2);
    assert_eq!(loaded["languages"], serde_json::json!(["en", "fr"]));
    assert!(loaded["formats"].as_u64().unwrap() >= 5);
    assert!(loaded["attempts"].as_u64().unwrap() > 600 * 20);
    assert!(loaded["module_events"].as_u64().unwrap() > 600 * 5);

    let programs = summary["programs"].as_array().unwrap();
    assert_eq!(programs.len(), 2);
    let mut enrolled = 0;
    for p in programs {
        let formation = &p["formation"];
        let cohorts = formation["cohorts"].as_array().unwrap();
        assert!(cohorts.len() >= 2, "{formation}");
        let placed: u64 = cohorts.iter().map(|c| c["size"].as_u64().unwrap()).sum();
        assert_eq!(placed, p["learners"].as_u64().unwrap());
        enrolled += placed;
        let report = &formation["report"];
        assert!(!report["skills"].as_array().unwrap().is_empty());
        assert!(
            report["objective_value"].as_f64().unwrap()
                < report["random_objective_value"].as_f64().unwrap(),
            "balanced beats a random draw: {report}"
        );
        assert!(report["max_company_share"].as_f64().unwrap() <= 0.3 + 1e-9);
    }
    assert_eq!(enrolled, 600);

    let recommendations = summary["recommendations"].as_array().unwrap();
    assert_eq!(recommendations.len(), 3, "{recommendations:?}");
    for r in recommendations {
        let modules = r["modules"].as_array().unwrap();
        assert!(!modules.is_empty(), "{r}");
        for m in modules {
            assert!(!m["reason"].as_str().unwrap().is_empty(), "{m}");
            assert!(stdout.contains(m["reason"].as_str().unwrap()));
            // A module, or questions of the skill's bank.
            let items = m["item_ids"].as_array().unwrap();
            match m["kind"].as_str().unwrap() {
                "module" => {
                    assert!(items.is_empty() && !m["module_id"].as_str().unwrap().is_empty())
                }
                "diagnostic" => assert!(
                    !items.is_empty()
                        && items.iter().all(|i| {
                            i.as_str()
                                .unwrap()
                                .starts_with(&format!("{}-q", m["skill_id"].as_str().unwrap()))
                        })
                ),
                other => panic!("unknown kind {other:?}: {m}"),
            }
        }
    }

    // Alerts worth a trainer's time: at most 5 open per 25 learners.
    let open = summary["alerts"]["open"].as_u64().unwrap();
    assert!((1..=600 * 5 / 25).contains(&open), "{open} open alerts");
    assert!(!summary["alerts"]["shown"].as_array().unwrap().is_empty());

    let reports = summary["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    for r in reports {
        let path = r["path"].as_str().unwrap();
        let html = std::fs::read_to_string(path).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"), "{path}");
        assert!(stdout.contains(path));
    }

    // The folder is the demo's own: a second run wipes and reloads it.
    std::fs::write(dir.join("left-over"), "x").unwrap();
    let out = run(&dir, &small);
    crate::common::assert_success(&out);
    assert!(!dir.join("left-over").exists());
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("demo-summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["loaded"]["learners"], 100, "reloaded: {summary}");

    // Anything else is refused and left alone.
    let other = temp.path().join("precious");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("data"), "keep me").unwrap();
    let out = run(&other, &small);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing"));
    assert_eq!(
        std::fs::read_to_string(other.join("data")).unwrap(),
        "keep me"
    );
}
