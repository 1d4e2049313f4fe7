//! Declared pauses and withdrawals: stored (`store/pauses.rs`), then the
//! learner is evaluated at once, so that the alerts a pause silences or a
//! withdrawal closes resolve in the same call.

use super::super::{Engine, now_micros};
use crate::domain::learner::Micros;
use crate::domain::pauses::{Pause, Withdrawal, check_pause_dates, pause_id};
use crate::error::{Error, Result};

impl Engine {
    /// Checks that the learner exists and, when a program is named, that
    /// it exists and the learner is enrolled in it.
    fn check_enrolled(&self, learner: &str, program: &str) -> Result<()> {
        self.learner(learner)?;
        if program.is_empty() {
            return Ok(());
        }
        self.program(program)?;
        let (enrolments, _) = self.store.learner_enrolments(learner, None, usize::MAX)?;
        if !enrolments.iter().any(|e| e.program_id == program) {
            return Err(Error::FailedPrecondition(format!(
                "learner '{learner}' is not enrolled in program '{program}'"
            )));
        }
        Ok(())
    }

    /// Declares a pause of `learner` in `program` (empty: every program)
    /// from `starts_at` (default now) to `ends_at`; inactivity and
    /// stopping alerts are silenced while it lasts. Returns once the pause
    /// is on disk. Blocking: call it off the async workers.
    pub async fn declare_pause(
        &self,
        learner: &str,
        program: &str,
        starts_at: Option<Micros>,
        ends_at: Micros,
        note: &str,
        by: &str,
    ) -> Result<Pause> {
        self.check_enrolled(learner, program)?;
        let now = now_micros();
        let starts_at = starts_at.unwrap_or(now);
        check_pause_dates(starts_at, ends_at)?;
        let mut declared_at = now;
        while self.store.pause(learner, &pause_id(declared_at))?.is_some() {
            declared_at += 1;
        }
        let pause = Pause {
            id: pause_id(declared_at),
            learner_id: learner.to_string(),
            program_id: program.to_string(),
            starts_at,
            ends_at,
            note: note.to_string(),
            declared_by: by.to_string(),
            declared_at,
        };
        {
            let _guard = self.hub().locks.lock_all([learner]);
            self.store.put_pause(&pause)?;
        }
        self.evaluate_declared(learner)?;
        self.store.durable().await?;
        Ok(pause)
    }

    /// Ends a pause now (the learner is back early); a pause not begun yet
    /// is cancelled (its end set to its start). Ending an ended pause
    /// changes nothing. Returns once that is on disk. Blocking: call it
    /// off the async workers.
    pub async fn end_pause(&self, learner: &str, id: &str) -> Result<Pause> {
        self.learner(learner)?;
        let now = now_micros();
        let (pause, ended) = {
            let _guard = self.hub().locks.lock_all([learner]);
            let mut pause = self
                .store
                .pause(learner, id)?
                .ok_or_else(|| Error::not_found("pause", id))?;
            let ended = pause.ends_at > now;
            if ended {
                pause.ends_at = now.max(pause.starts_at);
                self.store.put_pause(&pause)?;
            }
            (pause, ended)
        };
        if ended {
            self.evaluate_declared(learner)?;
        }
        self.store.durable().await?;
        Ok(pause)
    }

    /// The pauses of a learner, or of every learner of a program (at least
    /// one filter), oldest declaration first; ended ones only with
    /// `include_ended`.
    pub fn list_pauses(
        &self,
        learner: Option<&str>,
        program: Option<&str>,
        include_ended: bool,
    ) -> Result<Vec<Pause>> {
        let now = now_micros();
        let pauses = match (learner, program) {
            (Some(l), _) => {
                self.learner(l)?;
                self.store.learner_pauses(l)?
            }
            (None, Some(p)) => {
                self.program(p)?;
                let (enrolments, _) = self.store.program_enrolments(p, None, usize::MAX)?;
                let mut all = Vec::new();
                for e in enrolments {
                    all.extend(self.store.learner_pauses(&e.learner_id)?);
                }
                all
            }
            (None, None) => {
                return Err(Error::invalid(
                    "learner_id",
                    "name a learner or set program_id",
                ));
            }
        };
        if let Some(p) = program {
            self.program(p)?;
        }
        let mut out: Vec<Pause> = pauses
            .into_iter()
            .filter(|p| program.is_none_or(|x| p.covers(x)))
            .filter(|p| include_ended || p.ends_at > now)
            .collect();
        out.sort_by(|a, b| (a.declared_at, &a.learner_id).cmp(&(b.declared_at, &b.learner_id)));
        Ok(out)
    }

    /// Withdraws a learner from a program: every alert of theirs in it
    /// resolves and none is raised again. Withdrawing twice returns the
    /// first withdrawal. Returns once it is on disk. Blocking: call it off
    /// the async workers.
    pub async fn withdraw_learner(
        &self,
        learner: &str,
        program: &str,
        withdrawn_at: Option<Micros>,
        note: &str,
        by: &str,
    ) -> Result<Withdrawal> {
        self.check_enrolled(learner, program)?;
        let (withdrawal, new) = {
            let _guard = self.hub().locks.lock_all([learner]);
            match self.store.withdrawal(learner, program)? {
                Some(existing) => (existing, false),
                None => {
                    let withdrawal = Withdrawal {
                        learner_id: learner.to_string(),
                        program_id: program.to_string(),
                        withdrawn_at: withdrawn_at.unwrap_or_else(now_micros),
                        note: note.to_string(),
                        declared_by: by.to_string(),
                    };
                    self.store.put_withdrawal(&withdrawal)?;
                    (withdrawal, true)
                }
            }
        };
        if new {
            self.evaluate_declared(learner)?;
        }
        self.store.durable().await?;
        Ok(withdrawal)
    }
}
