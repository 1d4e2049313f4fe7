//! Shared set-up of the engine's unit tests: an engine on a temporary
//! folder with one skill `s` (and optionally modules) and one learner `l`.

use std::path::Path;

use super::{Engine, EngineConfig, params::ParamSet};
use crate::domain::catalog::{Module, Skill};
use crate::domain::learner::{CohortRules, Learner, Program};
use crate::store::Store;

/// An engine on `dir` with the default parameters. A test that reopens
/// `dir` after dropping an engine may find sled's lock still held for a
/// moment (the dropped engine's threads let go of the store as they
/// stop): the open waits for it, a few seconds at most.
pub(crate) fn engine(dir: &Path) -> Engine {
    let started = std::time::Instant::now();
    let store = loop {
        match Store::open(dir) {
            Ok(store) => break store,
            Err(err)
                if err.to_string().contains("could not acquire lock")
                    && started.elapsed() < std::time::Duration::from_secs(10) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(err) => panic!("cannot open the store: {err}"),
        }
    };
    Engine::new(
        store,
        EngineConfig {
            mastery_threshold: 0.95,
            params: ParamSet::load(None).unwrap(),
        },
    )
    .unwrap()
}

/// Imports skill `s` with `modules`, and creates learner `l` of company `c`.
pub(crate) async fn skill_s_and_learner_l(engine: &Engine, modules: Vec<Module>) {
    engine
        .import_catalog(
            vec![Skill {
                id: "s".into(),
                name: "S".into(),
                prerequisite_ids: vec![],
            }],
            modules,
        )
        .await
        .unwrap();
    engine.upsert_learner(learner("l")).await.unwrap();
}

/// Learner `id` of company `c`, nothing else set.
pub(crate) fn learner(id: &str) -> Learner {
    Learner {
        id: id.into(),
        company_id: "c".into(),
        language: String::new(),
        time_zone: String::new(),
        display_name: String::new(),
    }
}

/// Program `id` over `skills`, undated, with the default rules.
pub(crate) fn program(id: &str, skills: &[&str]) -> Program {
    Program {
        external_ids: Vec::new(),
        id: id.into(),
        name: id.to_uppercase(),
        skill_ids: skills.iter().map(|s| s.to_string()).collect(),
        cohort_rules: CohortRules::default(),
        start_date: None,
        end_date: None,
        risk_rules: Default::default(),
    }
}

/// How many answers of learner `l` on skill `s` the stored mastery counts.
pub(crate) fn answers_of_l_on_s(engine: &Engine) -> u32 {
    engine
        .store
        .mastery("l", "s")
        .unwrap()
        .expect("l has a mastery on s")
        .attempt_count
}
