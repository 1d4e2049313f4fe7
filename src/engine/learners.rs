//! Learners, programs and enrolments.

use std::sync::Arc;

use super::Engine;
use crate::clock::now_micros;
use crate::domain::learner::{Enrolment, Learner, Micros, Program};
use crate::domain::xapi::record::ObjectKind;
use crate::error::{Error, Result};
use crate::store::Page;

impl Engine {
    /// Creates or replaces a learner; returns once it is on disk.
    pub async fn upsert_learner(&self, learner: Learner) -> Result<Learner> {
        self.store.put_learner(&learner)?;
        self.store.durable().await?;
        Ok(learner)
    }

    /// One learner, or NOT_FOUND.
    pub fn learner(&self, id: &str) -> Result<Learner> {
        self.store
            .learner(id)?
            .ok_or_else(|| Error::not_found("learner", id))
    }

    /// A page of learners in id order, optionally of one company.
    pub fn list_learners(
        &self,
        company: Option<&str>,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<Learner>> {
        self.store.list_learners(after, limit, |learner| {
            company.is_none_or(|company| learner.company_id == company)
        })
    }

    /// Creates or replaces a program; its skills must exist. Returns once
    /// it is on disk.
    pub async fn upsert_program(&self, program: Program) -> Result<Program> {
        // The list is the edge's sorted copy: the edge adds the position
        // in the request (`convert::locate_id`).
        for skill in &program.skill_ids {
            if !self.store.has_skill(skill)? {
                return Err(Error::not_found_at(
                    "program.skill_ids",
                    "skill",
                    skill.clone(),
                ));
            }
        }
        {
            let _guard = self.catalog_write.lock();
            let catalog = self.catalog();
            self.check_external_ids(
                &[(
                    ObjectKind::Program,
                    program.id.as_str(),
                    "program.external_ids".to_string(),
                    program.external_ids.as_slice(),
                )],
                |kind, id| self.is_own_id(&catalog, kind, id),
            )?;
            self.store.put_program(&program)?;
            self.reload_aliases()?;
        }
        self.programs
            .write()
            .insert(program.id.clone(), Arc::new(program.clone()));
        self.store.durable().await?;
        Ok(program)
    }

    /// One program, or NOT_FOUND; served from memory once read (every
    /// recommendation reads its program).
    pub fn program(&self, id: &str) -> Result<Arc<Program>> {
        if let Some(program) = self.programs.read().get(id) {
            return Ok(program.clone());
        }
        let program = Arc::new(
            self.store
                .program(id)?
                .ok_or_else(|| Error::not_found("program", id))?,
        );
        // Never overwrite: an upsert that raced with this read put the
        // newer version first.
        Ok(self
            .programs
            .write()
            .entry(id.to_string())
            .or_insert(program)
            .clone())
    }

    /// Whether a program exists (from memory once read).
    pub(crate) fn program_exists(&self, id: &str) -> Result<bool> {
        match self.program(id) {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// A page of programs.
    pub fn list_programs(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<Program>> {
        self.store.list_programs(after, limit)
    }

    /// Enrols a learner in a program; enrolling again returns the first
    /// enrolment unchanged. Returns once the enrolment is on disk.
    pub async fn enroll(&self, learner_id: &str, program_id: &str) -> Result<Enrolment> {
        self.enroll_at(learner_id, program_id, None).await
    }

    /// [`Engine::enroll`] dated `enrolled_at` (an enrolment replayed from
    /// an LMS's history); `None` means now.
    pub async fn enroll_at(
        &self,
        learner_id: &str,
        program_id: &str,
        enrolled_at: Option<Micros>,
    ) -> Result<Enrolment> {
        let enrolment = self.write_enrolment(learner_id, program_id, enrolled_at)?;
        self.store.durable().await?;
        Ok(enrolment)
    }

    /// The write of [`Engine::enroll_at`], without waiting for the disk:
    /// a caller writing more (an xAPI batch) flushes once for all.
    pub(super) fn write_enrolment(
        &self,
        learner_id: &str,
        program_id: &str,
        enrolled_at: Option<Micros>,
    ) -> Result<Enrolment> {
        if !self.store.has_learner(learner_id)? {
            return Err(Error::not_found_at("learner_id", "learner", learner_id));
        }
        if !self.program_exists(program_id)? {
            return Err(Error::not_found_at("program_id", "program", program_id));
        }
        let _guard = self.learner_locks.lock_all([learner_id]);
        // Again under the lock, which an erasure holds too.
        if !self.store.has_learner(learner_id)? {
            return Err(Error::not_found_at("learner_id", "learner", learner_id));
        }
        if let Some(existing) = self.store.enrolment(learner_id, program_id)? {
            // Enrolling again is idempotent; another date is not a resend
            // but a change the engine does not make silently.
            if let Some(at) = enrolled_at.filter(|at| *at != existing.enrolled_at) {
                let time = |micros: Micros| {
                    jiff::Timestamp::from_microsecond(micros)
                        .map_or_else(|_| micros.to_string(), |t| t.to_string())
                };
                return Err(Error::AlreadyExists {
                    kind: "enrolment",
                    id: format!("{learner_id}/{program_id}"),
                    reason: format!(
                        "enrolled_at {} differs from the stored {}; an enrolment's date is not changed",
                        time(at),
                        time(existing.enrolled_at)
                    ),
                });
            }
            return Ok(existing);
        }
        let enrolment = Enrolment {
            learner_id: learner_id.to_string(),
            program_id: program_id.to_string(),
            enrolled_at: enrolled_at.unwrap_or_else(now_micros),
        };
        self.store.put_enrolment(&enrolment)?;
        Ok(enrolment)
    }

    /// A page of the enrolments of one program (by learner id) or of one
    /// learner (by program id); the owner must exist.
    pub fn list_enrolments(
        &self,
        owner: EnrolmentOwner<'_>,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<Enrolment>> {
        match owner {
            EnrolmentOwner::Program(id) => {
                self.program(id)?;
                self.store.program_enrolments(id, after, limit)
            }
            EnrolmentOwner::Learner(id) => {
                self.learner(id)?;
                self.store.learner_enrolments(id, after, limit)
            }
        }
    }
}

/// Whose enrolments to list.
#[derive(Debug, Clone, Copy)]
pub enum EnrolmentOwner<'a> {
    /// Every learner enrolled in this program.
    Program(&'a str),
    /// Every program this learner is enrolled in.
    Learner(&'a str),
}
