//! The alert models can be retrained on a deployment's own history:
//! learners of ended programs observed every week while still in them,
//! labelled by whether they stopped within 21 days (stopping) and whether
//! they completed the program (behind schedule).

use crate::common::{engine_learner, engine_program};
use spoc_engine::clock::now_micros;
use spoc_engine::domain::activity::{Activity, ActivityKind};
use spoc_engine::domain::catalog::{Format, Module, Skill};
use spoc_engine::domain::learner::Program;
use spoc_engine::domain::mastery::Attempt;
use spoc_engine::domain::risk::LinearModel;
use spoc_engine::domain::risk::model::Sample;
use spoc_engine::domain::risk::training::train_on;

const DAY: i64 = 86_400_000_000;

/// Completers and drop-outs of an ended program become labelled
/// observations, each from what the store held then, and models trained
/// on them tell the two apart.
#[tokio::test]
async fn ended_programs_give_labelled_samples_that_train_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = crate::common::engine_in(dir.path());
    // Four skills, one module each.
    let skills: Vec<Skill> = (0..4)
        .map(|i| Skill {
            id: format!("a{i}"),
            name: format!("A{i}"),
            prerequisite_ids: vec![],
        })
        .collect();
    let modules: Vec<Module> = (0..4)
        .map(|i| Module {
            external_ids: Vec::new(),
            id: format!("m{i}"),
            title: format!("M{i}"),
            skill_ids: vec![format!("a{i}")],
            format: Format::Video,
            duration_minutes: 10,
            language: "fr".into(),
        })
        .collect();
    engine.import_catalog(skills, modules).await.unwrap();
    let end = now_micros() - 10 * DAY;
    let start = end - 40 * DAY;
    engine
        .upsert_program(Program {
            start_date: Some(start),
            end_date: Some(end),
            ..engine_program("p", (0..4).map(|i| format!("a{i}")).collect())
        })
        .await
        .unwrap();
    for l in 0..60 {
        let id = format!("l{l}");
        engine
            .upsert_learner(engine_learner(&id, "fr"))
            .await
            .unwrap();
        engine.enroll(&id, "p").await.unwrap();
        let completer = l % 2 == 0;
        // Completers do a module every 8 days; drop-outs do one, then stop.
        let done = if completer { 4 } else { 1 };
        let events = (0..done)
            .map(|m| Activity {
                event_id: format!("{id}-{m}"),
                learner_id: id.clone(),
                module_id: format!("m{m}"),
                program_id: "p".into(),
                kind: ActivityKind::Completed,
                occurred_at: start + (m as i64 * 8 + 2) * DAY,
                time_spent_ms: 600_000,
            })
            .collect();
        engine.record_activity(events).await.unwrap();
        let attempts = (0..done * 2)
            .map(|k| Attempt {
                attempt_id: format!("{id}-q{k}"),
                learner_id: id.clone(),
                item_id: "q".into(),
                skill_ids: vec!["a0".into()],
                correct: completer || k == 0,
                score: None,
                occurred_at: start + (k as i64 * 4 + 3) * DAY,
                time_spent_ms: 30_000,
            })
            .collect();
        engine.record_attempts(attempts).await.unwrap();
    }

    let set = engine.risk_history(now_micros()).unwrap();
    // Observed on days 7, 14, 21 and 28 of 40 (up to a week before the
    // end): completers until they complete (day 26), drop-outs while still
    // seen (their last answer is on day 7).
    assert_eq!(set.stopping.len(), 30 * 3 + 30, "{:?}", set.stopping.len());
    assert_eq!(set.stopping.iter().filter(|s| s.label).count(), 30);
    assert_eq!(set.behind_schedule.len(), 120);
    assert_eq!(set.behind_schedule.iter().filter(|s| s.label).count(), 30);
    let models = train_on(&set, 42, "test history").unwrap();
    // On average, those who stopped (or did not complete) score higher.
    let mean = |samples: &[Sample], model: &LinearModel, label: bool| {
        let scores: Vec<f64> = samples
            .iter()
            .filter(|s| s.label == label)
            .map(|s| model.predict(&s.features))
            .collect();
        scores.iter().sum::<f64>() / scores.len() as f64
    };
    let (stop, behind) = (&models.stopping, &models.behind_schedule);
    assert!(mean(&set.stopping, stop, true) > mean(&set.stopping, stop, false));
    assert!(mean(&set.behind_schedule, behind, true) > mean(&set.behind_schedule, behind, false));

    // The same history through `spoc train-risk --data-dir`, which opens
    // the store with the service's BKT parameters (`--bkt-params`).
    drop(engine);
    let files = tempfile::tempdir().unwrap();
    let output = files.path().join("risk.json");
    let train_risk = |params: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_spoc"))
            .arg("train-risk")
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--bkt-params")
            .arg(params)
            .arg("--output")
            .arg(&output)
            .env_remove("SPOC_BKT_PARAMS")
            .output()
            .unwrap()
    };
    let missing = train_risk(&files.path().join("missing-params.json"));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert!(stderr.contains("missing-params.json"), "{stderr}");
    assert!(!output.exists(), "no model written");
    let params = files.path().join("params.json");
    std::fs::write(&params, include_str!("../../models/bkt-defaults.json")).unwrap();
    let trained = train_risk(&params);
    let stderr = String::from_utf8_lossy(&trained.stderr);
    assert!(trained.status.success(), "{stderr}");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    assert_eq!(written["stopping"]["training"]["samples"], 120, "{written}");
    assert_eq!(written["version"], 2, "{written}");
}
