//! Learners, programs and enrolments in the store (an enrolment is
//! written with its program-side index entry).

use sled::Transactional;

use super::*;

impl Store {
    // ---- learners, programs, enrolments --------------------------------

    /// One learner.
    pub fn learner(&self, id: &str) -> Result<Option<Learner>> {
        self.learners.get(id.as_bytes())
    }

    /// Whether a learner exists.
    pub fn has_learner(&self, id: &str) -> Result<bool> {
        self.learners.contains(id.as_bytes())
    }

    /// Creates or replaces a learner.
    pub fn put_learner(&self, learner: &Learner) -> Result<()> {
        let _gate = self.write_gate();
        // An id erased earlier may be reused by a new learner, whose
        // writes the log must carry again.
        self.checkpoints.wal.remember_learner(&learner.id);
        self.learners.put(learner.id.as_bytes(), learner)
    }

    /// Gives learner `id` the language `language` if they have none;
    /// true when it did. A compare-and-swap on the stored record: an
    /// `UpsertLearner` or an erasure landing between the read and the
    /// write is neither reverted nor undone (the swap fails, and the record
    /// is read again; an erased learner stays erased).
    pub fn set_language_if_empty(&self, id: &str, language: &str) -> Result<bool> {
        let tree = &self.learners.tree;
        loop {
            let Some(stored) = tree.get(id.as_bytes())? else {
                return Ok(false);
            };
            let mut learner: Learner = codec::decode(self.learners.name, id.as_bytes(), &stored)?;
            if !learner.language.is_empty() {
                return Ok(false);
            }
            learner.language = language.to_string();
            let _gate = self.write_gate();
            let swapped =
                tree.compare_and_swap(id.as_bytes(), Some(&stored), Some(codec::encode(&learner)))?;
            if swapped.is_ok() {
                return Ok(true);
            }
        }
    }

    /// A page of the learners `keep` takes, in id order: the scan reads
    /// past the others, so a page is bounded by `limit` results, not by the
    /// learners read.
    pub fn list_learners(
        &self,
        after: Option<&[u8]>,
        limit: usize,
        keep: impl Fn(&Learner) -> bool,
    ) -> Result<Page<Learner>> {
        page_where(&self.learners, b"", after, limit, keep)
    }

    /// One program.
    pub fn program(&self, id: &str) -> Result<Option<Program>> {
        self.filled(self.programs.get(id.as_bytes())?)
    }

    /// Creates or replaces a program with its mapping row, in one
    /// transaction.
    pub fn put_program(&self, program: &Program) -> Result<()> {
        use mapping::Mapped;
        let _gate = self.write_gate();
        let mappings = self.mapping_table()?;
        let row = program.mapping();
        (&self.programs.tree, &mappings.tree)
            .transaction(|(programs, mappings)| {
                programs.insert(program.id.as_bytes(), codec::encode(program))?;
                let key = mapping::mapping_key(Program::KIND, &program.id);
                if row.is_empty() {
                    mappings.remove(key)?;
                } else {
                    mappings.insert(key, codec::encode(&row))?;
                }
                Ok(())
            })
            .map_err(transaction_error)
    }

    /// Every program id (the xAPI mapping resolves context activities
    /// against them).
    pub fn program_ids(&self) -> Result<Vec<String>> {
        self.programs
            .tree
            .iter()
            .keys()
            .map(|key| Ok(String::from_utf8_lossy(&key?).into_owned()))
            .collect()
    }

    /// A page of programs in id order.
    pub fn list_programs(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<Program>> {
        let (mut programs, next) = page(&self.programs, b"", after, limit)?;
        self.fill_mapping(&mut programs)?;
        Ok((programs, next))
    }

    /// The enrolment of a learner in a program, if any.
    pub fn enrolment(&self, learner: &str, program: &str) -> Result<Option<Enrolment>> {
        self.enrolments.get(&keys::compose(&[learner, program]))
    }

    /// Records an enrolment and its program-side index entry together.
    pub fn put_enrolment(&self, enrolment: &Enrolment) -> Result<()> {
        let _gate = self.write_gate();
        let by_learner = keys::compose(&[&enrolment.learner_id, &enrolment.program_id]);
        let by_program = keys::compose(&[&enrolment.program_id, &enrolment.learner_id]);
        let value = codec::encode(enrolment);
        (&self.enrolments.tree, &self.program_members.tree)
            .transaction(|(learners, programs)| {
                learners.insert(by_learner.as_slice(), value.clone())?;
                programs.insert(by_program.as_slice(), value.clone())?;
                Ok(())
            })
            .map_err(transaction_error)
    }

    /// A page of the enrolments of one learner, in program id order.
    pub fn learner_enrolments(
        &self,
        learner: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<Enrolment>> {
        page(&self.enrolments, &keys::prefix(&[learner]), after, limit)
    }

    /// A page of the enrolments of one program, in learner id order.
    pub fn program_enrolments(
        &self,
        program: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<Enrolment>> {
        page(
            &self.program_members,
            &keys::prefix(&[program]),
            after,
            limit,
        )
    }
}
