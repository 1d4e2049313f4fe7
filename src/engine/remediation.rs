//! Module activity and next-module recommendations.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::Engine;
use crate::domain::activity::{Activity, ActivityKind, StoredActivity, outcomes};
use crate::domain::learner::{Learner, Program};
use crate::domain::remediation::{
    HISTORY_DEPTH, PolicyConfig, RecommendInput, Recommendations, draw_seed, recommend,
};
use crate::error::{Error, Result};
use crate::store::wal::WalRecord;

/// What `record_activity` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityRecorded {
    /// Events newly stored.
    pub recorded: usize,
    /// Events already stored.
    pub duplicates: usize,
}

impl Engine {
    /// Stores module events, all or nothing, idempotent per event id; a
    /// completed module keeps a snapshot of its skills' mastery so the
    /// policy can later tell whether it worked.
    pub async fn record_activity(&self, events: Vec<Activity>) -> Result<ActivityRecorded> {
        let (outcome, fresh) = self.apply_new_activity(&events)?;
        let touched: Vec<String> = events.iter().map(|e| e.learner_id.clone()).collect();
        self.store.log(&WalRecord::Activities(events)).await?;
        self.alerts_touched(touched.iter().map(String::as_str));
        // Best effort: module statistics must not cost the LMS its write.
        if let Err(err) = self.open_effect_windows(&fresh) {
            tracing::warn!(error = %err, "could not open module effect windows");
        }
        Ok(outcome)
    }

    /// The synchronous part of [`Engine::record_activity`], also replayed
    /// from the write-ahead log at start.
    pub(crate) fn apply_activity(&self, events: &[Activity]) -> Result<ActivityRecorded> {
        self.apply_new_activity(events).map(|(outcome, _)| outcome)
    }

    /// [`Engine::apply_activity`], also returning the events newly stored.
    fn apply_new_activity(
        &self,
        events: &[Activity],
    ) -> Result<(ActivityRecorded, Vec<StoredActivity>)> {
        let catalog = self.catalog();
        let modules: BTreeMap<&str, _> =
            catalog.modules.iter().map(|m| (m.id.as_str(), m)).collect();
        let mut learners = BTreeSet::new();
        for (i, event) in events.iter().enumerate() {
            if !modules.contains_key(event.module_id.as_str()) {
                return Err(Error::not_found_at(
                    format!("activities[{i}].module_id"),
                    "module",
                    event.module_id.clone(),
                ));
            }
            if !learners.contains(&event.learner_id) {
                if !self.learner_exists(&event.learner_id)? {
                    return Err(Error::not_found_at(
                        format!("activities[{i}].learner_id"),
                        "learner",
                        event.learner_id.clone(),
                    ));
                }
                learners.insert(event.learner_id.clone());
            }
            if !event.program_id.is_empty() && !self.program_exists(&event.program_id)? {
                return Err(Error::not_found_at(
                    format!("activities[{i}].program_id"),
                    "program",
                    event.program_id.clone(),
                ));
            }
        }
        let _guards = self
            .learner_locks
            .lock_all(learners.iter().map(String::as_str));
        self.still_exist(&learners)?;
        let mut fresh: BTreeMap<&str, StoredActivity> = BTreeMap::new();
        let mut duplicates = 0;
        for (i, event) in events.iter().enumerate() {
            let stored = match fresh.get(event.event_id.as_str()) {
                Some(pending) => Some(pending.activity.clone()),
                None => self.store.activity(&event.event_id)?.map(|s| s.activity),
            };
            // A retracted event (xAPI voiding) stays retracted, on resend
            // and on replay of the write-ahead log.
            if stored.is_none()
                && self
                    .store
                    .is_retracted(crate::store::xapi::Retracted::Activity, &event.event_id)?
            {
                duplicates += 1;
                continue;
            }
            match stored {
                Some(stored) if stored == *event => duplicates += 1,
                Some(_) => {
                    return Err(Error::AlreadyExists {
                        kind: "activity",
                        id: event.event_id.clone(),
                        reason: format!(
                            "activities[{i}] differs from the event stored under this id"
                        ),
                    });
                }
                None => {
                    let module = modules[event.module_id.as_str()];
                    let mut mastery_before = Vec::new();
                    if event.kind == ActivityKind::Completed {
                        for skill in &module.skill_ids {
                            let p = match self.store.mastery(&event.learner_id, skill)? {
                                Some(state) => state.p_mastered(),
                                None => self.params().for_skill(skill).prior,
                            };
                            mastery_before.push((skill.clone(), p));
                        }
                    }
                    fresh.insert(
                        &event.event_id,
                        StoredActivity {
                            activity: event.clone(),
                            mastery_before,
                        },
                    );
                }
            }
        }
        let new: Vec<StoredActivity> = fresh.into_values().collect();
        if !new.is_empty() {
            self.store.put_activities(&new)?;
        }
        Ok((
            ActivityRecorded {
                recorded: new.len(),
                duplicates,
            },
            new,
        ))
    }

    /// Ranks the next modules for a learner in a program, and notes them
    /// as recommended (what the LMS shows the learner).
    pub fn recommend_next(
        &self,
        learner_id: &str,
        program_id: &str,
        count: usize,
        exclude: &BTreeSet<String>,
    ) -> Result<Recommendations> {
        let (learner, program) = self.recommendable(learner_id, program_id)?;
        let answer = self.rank_next(&learner, &program, count, exclude)?;
        self.note_recommended(learner_id, &answer);
        Ok(answer)
    }

    /// The next modules [`Engine::recommend_next`] would give, noting
    /// nothing: a trainer looking at them in the console does not show
    /// them to the learner.
    pub fn peek_next(
        &self,
        learner_id: &str,
        program_id: &str,
        count: usize,
    ) -> Result<Recommendations> {
        let (learner, program) = self.recommendable(learner_id, program_id)?;
        self.rank_next(&learner, &program, count, &BTreeSet::new())
    }

    /// A learner's latest `limit` module events (started and completed),
    /// oldest first.
    pub fn recent_module_events(&self, learner_id: &str, limit: usize) -> Result<Vec<Activity>> {
        self.learner(learner_id)?;
        let mut events: Vec<Activity> = Vec::new();
        for kind in [ActivityKind::Started, ActivityKind::Completed] {
            events.extend(
                self.store
                    .recent_activities(learner_id, kind, limit)?
                    .into_iter()
                    .map(|s| s.activity),
            );
        }
        events.sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));
        let skip = events.len().saturating_sub(limit);
        Ok(events.split_off(skip))
    }

    /// The learner and the program, when modules can be recommended to the
    /// one in the other: both exist, the learner is enrolled and has a
    /// language.
    fn recommendable(&self, learner_id: &str, program_id: &str) -> Result<(Learner, Arc<Program>)> {
        let learner = self.learner(learner_id)?;
        let program = self.program(program_id)?;
        // As GetCertification: a program the learner does not follow has
        // nothing to recommend (AIP-193: the state forbids it).
        if self.store.enrolment(learner_id, program_id)?.is_none() {
            return Err(Error::FailedPrecondition(format!(
                "learner '{learner_id}' is not enrolled in program '{program_id}'"
            )));
        }
        // Only learners the xAPI listener created lack one; modules in every
        // language would be served silently.
        if learner.language.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "learner '{learner_id}' has no language (created from xAPI statements): \
                 UpsertLearner with a language first"
            )));
        }
        Ok((learner, program))
    }

    /// The ranking of [`Engine::recommend_next`] for a learner and a
    /// program it is [`recommendable`](Engine::recommendable) in.
    fn rank_next(
        &self,
        learner: &Learner,
        program: &Program,
        count: usize,
        exclude: &BTreeSet<String>,
    ) -> Result<Recommendations> {
        let learner_id = learner.id.as_str();
        let catalog = self.catalog();
        let params = self.params();
        let mastery = self.store.learner_p_mastered(learner_id)?;
        let completed =
            self.store
                .recent_activities(learner_id, ActivityKind::Completed, HISTORY_DEPTH)?;
        let history = outcomes(&completed, |skill| {
            mastery
                .get(skill)
                .copied()
                .unwrap_or_else(|| params.for_skill(skill).prior)
        });
        let evidence = self.learner_evidence(learner_id, &history)?;
        let threshold = self.mastery_threshold();
        let effects = self.effects.read();
        let answer = recommend(&RecommendInput {
            skills: &catalog.skills,
            modules: &catalog.modules,
            index: &catalog.index,
            program_skill_ids: &program.skill_ids,
            mastery: mastery.as_ref(),
            threshold,
            default_params: params.default,
            skill_params: &params.skills,
            module_learn_rates: &params.modules,
            effects: &effects,
            evidence: &evidence,
            language: &learner.language,
            history: &history,
            count,
            exclude,
            allow_language_fallback: false,
            seed: draw_seed(learner_id, &history, &evidence),
            config: PolicyConfig::default(),
        })?;
        drop(effects);
        Ok(answer)
    }

    /// Notes the modules of `answer` as recommended to the learner.
    fn note_recommended(&self, learner_id: &str, answer: &Recommendations) {
        // Best effort: a failure here must not cost the LMS its answer.
        let key = |module: &str| format!("{learner_id}\0{module}");
        let fresh: Vec<&str> = answer
            .items
            .iter()
            .filter(|r| !r.module_id.is_empty())
            .map(|r| r.module_id.as_str())
            .filter(|m| !self.noted_recommendations.contains(&key(m)))
            .collect();
        if !fresh.is_empty() {
            // Under the learner's lock, and only if they still exist: an
            // erasure (which holds the lock) may have run since the read.
            let _guard = self.learner_locks.lock_all([learner_id]);
            let noted = match self.store.has_learner(learner_id) {
                Ok(true) => self.store.note_recommended(
                    learner_id,
                    fresh.iter().copied(),
                    crate::clock::now_micros(),
                ),
                Ok(false) => return,
                Err(err) => Err(err),
            };
            match noted {
                Ok(()) => fresh
                    .iter()
                    .for_each(|m| self.noted_recommendations.insert(&key(m))),
                Err(err) => tracing::warn!(error = %err, "could not record recommendations"),
            }
        }
    }
}
