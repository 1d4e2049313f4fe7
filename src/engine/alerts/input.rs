//! What the signals of one learner in one program depend on, gathered
//! from the store as of a time: the [`SignalInput`] the rules and models
//! read (`domain::risk`).

use std::collections::{BTreeMap, BTreeSet};

use super::super::Engine;
use super::completion_plan;
use crate::domain::activity::ActivityKind;
use crate::domain::bkt::Observation;
use crate::domain::learner::{Enrolment, Micros, Program};
use crate::domain::risk::signals::trace_mastery;
use crate::domain::risk::{ProgramCalendar, SignalInput, SkillAttempt};
use crate::error::Result;

impl Engine {
    /// Gathers what the signals of one learner in one program depend on,
    /// from the store, as of `now`: events up to `now`, declared pauses of
    /// the program begun by then.
    pub fn signal_input(
        &self,
        program: &Program,
        enrolment: &Enrolment,
        now: Micros,
        cohort_median_time_spent_ms: u64,
    ) -> Result<SignalInput> {
        let learner = enrolment.learner_id.as_str();
        let catalog = self.catalog();
        let plan = completion_plan(&catalog, program);
        let modules = plan.modules();
        let attempts = self.skill_history(learner, &program.skill_ids, now)?;
        let activities = self.store.learner_activities(learner)?;
        let mut last_activity_at = None;
        let mut time_spent_ms = 0;
        let mut module_events = Vec::new();
        // First completion of each program module, for the units' times.
        let mut first_done: BTreeMap<&str, Micros> = BTreeMap::new();
        for a in activities.iter().map(|s| &s.activity) {
            if a.occurred_at > now {
                continue;
            }
            last_activity_at = last_activity_at.max(Some(a.occurred_at));
            if modules.contains(a.module_id.as_str()) {
                time_spent_ms += a.time_spent_ms;
                module_events.push((a.occurred_at, a.time_spent_ms));
                if a.kind == ActivityKind::Completed {
                    let t = first_done
                        .entry(a.module_id.as_str())
                        .or_insert(a.occurred_at);
                    *t = (*t).min(a.occurred_at);
                }
            }
        }
        module_events.sort_unstable();
        let unit_completions = unit_completions(&plan, &first_done);
        // Program modules recommended to the learner, and how many of them
        // the learner opened after the first recommendation.
        let mut recommended_modules = 0;
        let mut recommended_started = 0;
        for (module, first) in self.store.recommended(learner)? {
            if first > now || !modules.contains(module.as_str()) {
                continue;
            }
            recommended_modules += 1;
            let opened = activities.iter().any(|a| {
                a.activity.module_id == module
                    && a.activity.occurred_at >= first
                    && a.activity.occurred_at <= now
            });
            if opened {
                recommended_started += 1;
            }
        }
        let pauses = self
            .store
            .learner_pauses(learner)?
            .into_iter()
            .filter(|p| p.covers(&program.id) && p.starts_at <= now)
            .map(|p| (p.starts_at, p.ends_at))
            .collect();
        Ok(SignalInput {
            now,
            calendar: ProgramCalendar {
                starts_at: program.start_date.unwrap_or(0),
                ends_at: program.end_date.unwrap_or(0),
                units: plan.units() as u32,
            },
            enrolled_at: enrolment.enrolled_at,
            last_activity_at,
            units_completed: unit_completions.len() as u32,
            attempts,
            time_spent_ms,
            cohort_median_time_spent_ms,
            recommended_modules,
            recommended_started,
            skill_names: program
                .skill_ids
                .iter()
                .filter_map(|s| {
                    catalog
                        .skills
                        .get(s)
                        .filter(|k| !k.name.is_empty())
                        .map(|k| (s.clone(), k.name.clone()))
                })
                .collect(),
            module_events,
            unit_completions,
            pauses,
        })
    }

    /// A learner's answers on `skills` up to `now`, oldest first, with the
    /// P(mastered) before and after each under the parameters in force.
    pub fn skill_history(
        &self,
        learner: &str,
        skills: &[String],
        now: Micros,
    ) -> Result<Vec<SkillAttempt>> {
        let params = self.params();
        let mut answers: Vec<(Micros, String, &str, Observation)> = Vec::new();
        // One read of the learner's attempts for all the skills (a read per
        // skill decoded the learner's blocks once per skill).
        let by_skill = self.store.learner_observations(learner)?;
        for skill in skills {
            for (position, obs) in by_skill.get(skill.as_str()).into_iter().flatten() {
                if position.occurred_at <= now {
                    answers.push((
                        position.occurred_at,
                        position.attempt_id.clone(),
                        skill,
                        *obs,
                    ));
                }
            }
        }
        answers.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
        Ok(trace_mastery(
            answers
                .iter()
                .map(|(at, _, skill, obs)| (*skill, *obs, *at)),
            |skill| *params.for_skill(skill),
        ))
    }
}

/// When each unit of `plan` got covered, oldest first, from the first
/// completion time of each module: the times the covered count grew.
fn unit_completions(
    plan: &crate::domain::completion::CompletionPlan,
    first_done: &BTreeMap<&str, Micros>,
) -> Vec<Micros> {
    let mut order: Vec<(Micros, &str)> = first_done.iter().map(|(m, t)| (*t, *m)).collect();
    order.sort_unstable();
    let mut done = BTreeSet::new();
    let mut covered = 0;
    let mut times = Vec::new();
    for (at, module) in order {
        done.insert(module);
        let now_covered = plan.covered(|m| done.contains(m));
        for _ in covered..now_covered {
            times.push(at);
        }
        covered = now_covered;
    }
    times
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::activity::Activity;
    use crate::domain::catalog::{Format, Module, Skill};
    use crate::domain::completion::CompletionPlan;
    use crate::domain::mastery::Attempt;
    use crate::domain::pauses::{Pause, pause_id};
    use crate::domain::risk::training::{
        BASELINE_FEATURES, BEHIND_SCHEDULE_FEATURES, STOPPING_FEATURES, input_at,
    };
    use crate::domain::risk::world::{EventKind, WorldParams, generate};
    use crate::domain::risk::{features, signals::MICROS_PER_DAY};
    use crate::engine::testing::{engine, learner, program};

    /// The engine reads a learner from its store exactly as the models were
    /// trained on: a simulated world's events, stored through the engine
    /// (shifted in time, as the evaluation does), give the same features as
    /// the simulator computes from the events themselves.
    #[tokio::test]
    async fn the_engine_computes_the_features_the_models_were_trained_on() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        let world = generate(&WorldParams {
            learners: 40,
            ..WorldParams::base("same", 5)
        });
        let cut = world.day(30);
        let shift = crate::engine::now_micros() - cut;
        engine
            .import_catalog(
                world
                    .units
                    .iter()
                    .map(|u| Skill {
                        id: u.skill.clone(),
                        name: u.skill.clone(),
                        prerequisite_ids: vec![],
                    })
                    .collect(),
                world
                    .units
                    .iter()
                    .flat_map(|u| {
                        u.modules.iter().map(|m| Module {
                            external_ids: Vec::new(),
                            id: m.clone(),
                            title: m.clone(),
                            skill_ids: vec![u.skill.clone()],
                            format: Format::Video,
                            duration_minutes: 45,
                            language: "en".into(),
                        })
                    })
                    .collect(),
            )
            .await
            .unwrap();
        engine
            .upsert_program(Program {
                skill_ids: world.units.iter().map(|u| u.skill.clone()).collect(),
                start_date: Some(world.starts_at + shift),
                end_date: Some(world.ends_at + shift),
                ..program("w", &[])
            })
            .await
            .unwrap();
        for l in &world.learners {
            engine.upsert_learner(learner(&l.id)).await.unwrap();
            engine
                .enroll_at(&l.id, "w", Some(world.starts_at + shift))
                .await
                .unwrap();
            let (mut attempts, mut activities) = (Vec::new(), Vec::new());
            for (k, e) in l.events.iter().enumerate().filter(|(_, e)| e.at < cut) {
                let id = format!("{}-{k}", l.id);
                match &e.kind {
                    EventKind::Answer { skill, correct } => attempts.push(Attempt {
                        attempt_id: id,
                        learner_id: l.id.clone(),
                        item_id: "q".into(),
                        skill_ids: vec![skill.clone()],
                        correct: *correct,
                        score: None,
                        occurred_at: e.at + shift,
                        time_spent_ms: e.time_spent_ms,
                    }),
                    EventKind::ModuleStarted { module } | EventKind::ModuleCompleted { module } => {
                        activities.push(Activity {
                            event_id: id,
                            learner_id: l.id.clone(),
                            module_id: module.clone(),
                            program_id: "w".into(),
                            kind: if matches!(e.kind, EventKind::ModuleCompleted { .. }) {
                                ActivityKind::Completed
                            } else {
                                ActivityKind::Started
                            },
                            occurred_at: e.at + shift,
                            time_spent_ms: e.time_spent_ms,
                        })
                    }
                }
            }
            engine.record_activity(activities).await.unwrap();
            engine.record_attempts(attempts).await.unwrap();
            if let Some(p) = l.pause.filter(|p| p.declared && p.starts_at <= cut) {
                engine
                    .store()
                    .put_pause(&Pause {
                        id: pause_id(p.starts_at),
                        learner_id: l.id.clone(),
                        program_id: "w".into(),
                        starts_at: p.starts_at + shift,
                        ends_at: p.ends_at + shift,
                        note: String::new(),
                        declared_by: "lms".into(),
                        declared_at: p.starts_at + shift,
                    })
                    .unwrap();
            }
        }
        let program = engine.program("w").unwrap();
        let names: Vec<&str> = STOPPING_FEATURES
            .iter()
            .chain(&BEHIND_SCHEDULE_FEATURES)
            .chain(&BASELINE_FEATURES)
            .copied()
            .collect();
        for l in &world.learners {
            let (enrolments, _) = engine.store().learner_enrolments(&l.id, None, 1).unwrap();
            let served = features(
                &engine
                    .signal_input(&program, &enrolments[0], cut + shift, 0)
                    .unwrap(),
            );
            let trained = features(&input_at(&world, l, cut, 0));
            for name in &names {
                let (a, b) = (served[*name], trained[*name]);
                // Times shifted by a non-round amount: equal up to rounding.
                assert!(
                    (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                    "{}: {name} served {a}, trained on {b} ({} days)",
                    l.id,
                    (cut - world.starts_at) / MICROS_PER_DAY
                );
            }
        }
    }

    #[test]
    fn units_are_timed_when_their_first_module_is_done() {
        let plan = CompletionPlan::new(
            ["s1", "s2"],
            [
                ("m1", vec!["s1"]),
                ("m1b", vec!["s1"]),
                ("m12", vec!["s1", "s2"]),
            ],
        );
        // m1 at 10 covers s1; m1b at 20 adds nothing; m12 at 30 covers s2.
        let first = BTreeMap::from([("m1", 10), ("m1b", 20), ("m12", 30)]);
        assert_eq!(unit_completions(&plan, &first), [10, 30]);
        // One module covering both units at once counts both then.
        let first = BTreeMap::from([("m12", 5)]);
        assert_eq!(unit_completions(&plan, &first), [5, 5]);
    }
}
