//! Cohort and program reports, and certifications.
//!
//! The engine gathers plain rows for the learners in scope (answers with
//! the P(mastered) they led to, module events, alerts) and hands them to
//! the pure `domain::reports`, which computes every figure; rendering to
//! CSV or HTML happens there too. Nothing is cached: a report reads the
//! store as it is. Reports read every answer of every learner in scope:
//! callers run them on a blocking thread.

use std::collections::BTreeSet;

use super::Engine;
use super::alerts::{completion_plan, thresholds};
use crate::clock::now_micros;
use crate::domain::activity::ActivityKind;
use crate::domain::learner::{Micros, Program};
use crate::domain::reports::{
    ActivityRow, AlertRow, AttemptRow, Certification, CohortReport, LearnerRow, NamedItem,
    ReportInput, ReportScope, ScopeKind, compute,
};
use crate::error::{Error, Result};

/// One program skill in a certification.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificationSkill {
    /// The skill.
    pub skill_id: String,
    /// P(mastered) now (the prior without any answer).
    pub p_mastered: f64,
    /// Whether `p_mastered` reaches the threshold now.
    pub mastered: bool,
    /// Answers on the skill in total.
    pub attempt_count: u32,
    /// Answers on the skill up to the certification (0 if not certified).
    pub attempts_to_certification: u32,
}

/// Whether a learner is certified in a program, and the evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificationView {
    /// The learner.
    pub learner_id: String,
    /// The program.
    pub program_id: String,
    /// The certification, if every program skill reached the threshold at
    /// once.
    pub certified: Option<Certification>,
    /// The threshold used.
    pub mastery_threshold: f64,
    /// Every program skill, in program order.
    pub skills: Vec<CertificationSkill>,
}

impl Engine {
    /// The report of every learner enrolled in a program.
    pub fn program_report(&self, program_id: &str) -> Result<CohortReport> {
        self.program_report_of(program_id, &|_| Ok(true))
    }

    /// The report of the learners enrolled in a program for whom `keep`
    /// holds (a company key's own employees).
    pub fn program_report_of(
        &self,
        program_id: &str,
        keep: &dyn Fn(&str) -> Result<bool>,
    ) -> Result<CohortReport> {
        let program = self.program(program_id)?;
        let (enrolments, _) = self
            .store
            .program_enrolments(program_id, None, usize::MAX)?;
        let mut learners = Vec::with_capacity(enrolments.len());
        for e in enrolments {
            if keep(&e.learner_id)? {
                learners.push(LearnerRow {
                    learner_id: e.learner_id,
                    enrolled_at: e.enrolled_at,
                });
            }
        }
        let scope = ReportScope {
            kind: ScopeKind::Program,
            id: program.id.clone(),
            name: display_name(&program),
        };
        Ok(compute(&self.report_input(&program, scope, learners)?))
    }

    /// The report of one cohort's current members. With `program_id`, the
    /// cohort must belong to that program.
    pub fn cohort_report(&self, cohort_id: &str, program_id: Option<&str>) -> Result<CohortReport> {
        let cohort = self
            .store
            .cohort(cohort_id)?
            .ok_or_else(|| Error::not_found("cohort", cohort_id))?;
        if let Some(expected) = program_id {
            self.program(expected)?;
            if cohort.program_id != expected {
                return Err(Error::invalid(
                    "program_id",
                    format!(
                        "cohort '{cohort_id}' belongs to program '{}', not '{expected}'",
                        cohort.program_id
                    ),
                ));
            }
        }
        let program = self.program(&cohort.program_id)?;
        let mut learners = Vec::with_capacity(cohort.members.len());
        for learner in &cohort.members {
            let enrolled_at = self
                .store
                .enrolment(learner, &program.id)?
                .map_or(0, |e| e.enrolled_at);
            learners.push(LearnerRow {
                learner_id: learner.clone(),
                enrolled_at,
            });
        }
        let scope = ReportScope {
            kind: ScopeKind::Cohort,
            id: cohort.id.clone(),
            name: format!("{}, cohort {}", display_name(&program), cohort.id),
        };
        Ok(compute(&self.report_input(&program, scope, learners)?))
    }

    /// Whether `learner_id` is certified in `program_id`: the learner must
    /// be enrolled (FAILED_PRECONDITION otherwise).
    pub fn certification(&self, learner_id: &str, program_id: &str) -> Result<CertificationView> {
        self.learner(learner_id)?;
        let program = self.program(program_id)?;
        let Some(enrolment) = self.store.enrolment(learner_id, program_id)? else {
            return Err(Error::FailedPrecondition(format!(
                "learner '{learner_id}' is not enrolled in program '{program_id}'"
            )));
        };
        let scope = ReportScope {
            kind: ScopeKind::Program,
            id: program.id.clone(),
            name: display_name(&program),
        };
        let learners = vec![LearnerRow {
            learner_id: learner_id.to_string(),
            enrolled_at: enrolment.enrolled_at,
        }];
        let report = compute(&self.report_input(&program, scope, learners)?);
        let certified = report.certified.into_iter().next();
        let mastery = self.mastery(learner_id, &program.skill_ids)?;
        let skills = mastery
            .into_iter()
            .map(|m| CertificationSkill {
                attempts_to_certification: certified
                    .as_ref()
                    .and_then(|c| c.attempts_per_skill.get(&m.skill_id).copied())
                    .unwrap_or(0),
                skill_id: m.skill_id,
                p_mastered: m.p_mastered,
                mastered: m.mastered,
                attempt_count: m.attempt_count,
            })
            .collect();
        // `mastery` sorts by skill id; keep the program's order.
        let mut skills: Vec<CertificationSkill> = skills;
        skills.sort_by_key(|s: &CertificationSkill| {
            program
                .skill_ids
                .iter()
                .position(|id| *id == s.skill_id)
                .unwrap_or(usize::MAX)
        });
        Ok(CertificationView {
            learner_id: learner_id.to_string(),
            program_id: program.id.clone(),
            certified,
            mastery_threshold: self.mastery_threshold(),
            skills,
        })
    }

    /// The rows of a report over `learners` of `program`, as of now.
    fn report_input(
        &self,
        program: &Program,
        scope: ReportScope,
        learners: Vec<LearnerRow>,
    ) -> Result<ReportInput> {
        let now: Micros = now_micros();
        let catalog = self.catalog();
        let completion = completion_plan(&catalog, program);
        let modules = completion.modules();
        let skills = program
            .skill_ids
            .iter()
            .map(|id| NamedItem {
                id: id.clone(),
                name: catalog
                    .skills
                    .get(id)
                    .map(|s| s.name.clone())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| id.clone()),
            })
            .collect();
        let module_items = catalog
            .modules
            .iter()
            .filter(|m| modules.contains(m.id.as_str()))
            .map(|m| NamedItem {
                id: m.id.clone(),
                name: if m.title.is_empty() {
                    m.id.clone()
                } else {
                    m.title.clone()
                },
            })
            .collect();
        let mut attempts = Vec::new();
        let mut activities = Vec::new();
        for l in &learners {
            for a in self.skill_history(&l.learner_id, &program.skill_ids, now)? {
                attempts.push(AttemptRow {
                    learner_id: l.learner_id.clone(),
                    skill_id: a.skill_id,
                    // Attempts name items, not modules.
                    module_id: None,
                    correct: a.correct,
                    at: a.at,
                    // Not read by any figure; the index does not keep it.
                    time_spent_ms: 0,
                    p_after: a.p_after,
                });
            }
            for stored in self.store.learner_activities(&l.learner_id)? {
                let a = stored.activity;
                if a.occurred_at <= now && modules.contains(a.module_id.as_str()) {
                    activities.push(ActivityRow {
                        learner_id: a.learner_id,
                        module_id: a.module_id,
                        completed: a.kind == ActivityKind::Completed,
                        at: a.occurred_at,
                        time_spent_ms: a.time_spent_ms,
                    });
                }
            }
        }
        let in_scope: BTreeSet<&str> = learners.iter().map(|l| l.learner_id.as_str()).collect();
        let (alerts, _) = self.store.list_alerts(
            |a| Ok(a.program_id == program.id && in_scope.contains(a.learner_id.as_str())),
            None,
            usize::MAX,
        )?;
        let alerts = alerts
            .into_iter()
            .map(|a| AlertRow {
                learner_id: a.learner_id,
                kind: a.kind,
                raised_at: a.created_at,
                resolved_at: a.resolved_at,
            })
            .collect();
        Ok(ReportInput {
            scope,
            generated_at: now,
            skills,
            modules: module_items,
            completion,
            mastery_threshold: self.mastery_threshold(),
            blocking_failures: thresholds(&program.risk_rules).blocking_failures,
            learners,
            attempts,
            activities,
            alerts,
        })
    }
}

/// A program's name, or its id when it has none.
fn display_name(program: &Program) -> String {
    if program.name.is_empty() {
        program.id.clone()
    } else {
        program.name.clone()
    }
}
