//! Storage of formed cohorts (trees `cohorts`, `cohort_index`,
//! `cohort_formations`; layout in [`super::keys`]).
//!
//! A program's cohorts are replaced whole by each formation and patched one
//! or two at a time by late placements, moves and locks. Each of those
//! writes is one transaction, so a reader never sees half a formation and
//! a crash never leaves a learner in two cohorts.

use sled::Transactional;

use super::table::Table;
use super::{Page, Store, codec, keys, page, transaction_error};
use crate::domain::cohorts::records::{FormationRecord, StoredCohort};
use crate::error::Result;

/// Tree of cohorts by program then cohort id.
const COHORTS: &str = "cohorts";
/// Tree from cohort id to its program id (cohort lookups by id alone).
const COHORT_INDEX: &str = "cohort_index";
/// Tree of the latest formation of each program.
const FORMATIONS: &str = "cohort_formations";

impl Store {
    fn cohorts_table(&self) -> Result<Table<StoredCohort>> {
        self.table(COHORTS)
    }

    fn cohort_index_table(&self) -> Result<Table<String>> {
        self.table(COHORT_INDEX)
    }

    fn formations_table(&self) -> Result<Table<FormationRecord>> {
        self.table(FORMATIONS)
    }

    /// The latest formation of a program, `None` if cohorts were never
    /// formed for it.
    pub fn cohort_formation(&self, program: &str) -> Result<Option<FormationRecord>> {
        self.formations_table()?.get(program.as_bytes())
    }

    /// Every current cohort of a program, in cohort id order.
    pub fn program_cohorts(&self, program: &str) -> Result<Vec<StoredCohort>> {
        self.cohorts_table()?.values(&keys::prefix(&[program]))
    }

    /// A page of the current cohorts of a program, in cohort id order.
    /// `after` and the returned continuation are cohort ids (not full
    /// keys), so page tokens stay short even for long program ids.
    pub fn list_cohorts(
        &self,
        program: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<StoredCohort>> {
        let prefix = keys::prefix(&[program]);
        let after = after.map(|id| [prefix.as_slice(), id].concat());
        let (cohorts, next) = page(&self.cohorts_table()?, &prefix, after.as_deref(), limit)?;
        Ok((cohorts, next.map(|key| key[prefix.len()..].to_vec())))
    }

    /// One current cohort by id, whatever its program.
    pub fn cohort(&self, id: &str) -> Result<Option<StoredCohort>> {
        let Some(program) = self.cohort_index_table()?.get(id.as_bytes())? else {
            return Ok(None);
        };
        self.cohorts_table()?.get(&keys::compose(&[&program, id]))
    }

    /// Replaces every cohort of `record.program_id` with `cohorts` and
    /// stores the formation record, in one transaction.
    ///
    /// The caller holds the program's cohort lock, so the set read here to
    /// delete is the set being replaced.
    pub fn replace_cohorts(
        &self,
        record: &FormationRecord,
        cohorts: &[StoredCohort],
    ) -> Result<()> {
        let _gate = self.write_gate();
        let program = record.program_id.as_str();
        let (table, index, formations) = (
            self.cohorts_table()?,
            self.cohort_index_table()?,
            self.formations_table()?,
        );
        let old: Vec<(Vec<u8>, String)> = table
            .scan(&keys::prefix(&[program]))?
            .into_iter()
            .map(|(key, cohort)| (key, cohort.id))
            .collect();
        let new: Vec<(Vec<u8>, &str, Vec<u8>)> = cohorts
            .iter()
            .map(|c| {
                debug_assert_eq!(c.program_id, program);
                (
                    keys::compose(&[program, &c.id]),
                    c.id.as_str(),
                    codec::encode(c),
                )
            })
            .collect();
        let program_value = codec::encode(&program.to_string());
        let record_value = codec::encode(record);
        (&table.tree, &index.tree, &formations.tree)
            .transaction(|(by_program, by_id, latest)| {
                for (key, id) in &old {
                    by_program.remove(key.as_slice())?;
                    by_id.remove(id.as_bytes())?;
                }
                for (key, id, value) in &new {
                    by_program.insert(key.as_slice(), value.as_slice())?;
                    by_id.insert(id.as_bytes(), program_value.as_slice())?;
                }
                latest.insert(program.as_bytes(), record_value.as_slice())?;
                Ok(())
            })
            .map_err(transaction_error)
    }

    /// Rewrites existing cohorts (a move touches two) in one transaction;
    /// ids and programs are unchanged, so the index needs no update.
    pub fn update_cohorts(&self, cohorts: &[StoredCohort]) -> Result<()> {
        let _gate = self.write_gate();
        let rows: Vec<(Vec<u8>, Vec<u8>)> = cohorts
            .iter()
            .map(|c| (keys::compose(&[&c.program_id, &c.id]), codec::encode(c)))
            .collect();
        self.cohorts_table()?
            .tree
            .transaction(|tree| {
                for (key, value) in &rows {
                    tree.insert(key.as_slice(), value.as_slice())?;
                }
                Ok(())
            })
            .map_err(transaction_error)
    }
}
