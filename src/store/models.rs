//! Fitted model files under `DATA_DIR/models/`.
//!
//! A fit writes `bkt-<unix millis>.json` (the serialized `FittedModel`); the
//! server activates the newest at start. Files, not sled: a model is
//! written once, read at start, and an operator may want to copy, inspect
//! or remove one by hand.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Store, keys};
use crate::domain::fit::FittedModel;
use crate::error::{Error, Result};

/// What the stored mastery states were computed with (`meta` key
/// `mastery_basis`): the filter and the parameters. The engine compares it
/// with what is in force at start and recomputes every state when they
/// differ, so that a crash during a model activation, a new parameter file
/// or a new filter never leaves states of another model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MasteryBasis {
    /// Version of the filter (`domain::mastery::FILTER_VERSION`).
    pub filter: u32,
    /// The model in force (`defaults` or a file name under `models/`).
    pub model_id: String,
    /// SHA-256 (hex) of the per-skill parameters the states were folded with.
    pub params_sha256: String,
}

impl Store {
    fn models_dir(&self) -> PathBuf {
        self.dir.join("models")
    }

    /// Writes a fitted model and returns its id (the file name). The file is
    /// written under a temporary name and renamed, so a crash never leaves a
    /// half model that the next start would load.
    pub fn save_model(&self, model: &FittedModel, created_at_ms: i64) -> Result<String> {
        let _gate = self.write_gate();
        let dir = self.models_dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Storage(format!("{}: {e}", dir.display())))?;
        let id = format!("bkt-{created_at_ms:013}.json");
        let tmp = dir.join(format!(".{id}.tmp"));
        let json = serde_json::to_vec_pretty(model).map_err(|e| Error::Storage(e.to_string()))?;
        super::backup::private_file(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &json))
            .map_err(|e| Error::Storage(format!("{}: {e}", tmp.display())))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::Storage(format!("{}: {e}", tmp.display())))?;
        // The rename is durable only once the directory is synced: without
        // it a crash could bring the previous model back after the fit
        // reported this one active.
        let target = dir.join(&id);
        std::fs::rename(&tmp, &target)
            .and_then(|()| super::backup::sync_parent(&target))
            .map_err(|e| Error::Storage(format!("{}: {e}", dir.display())))?;
        Ok(id)
    }

    /// What the stored mastery states were computed with, if recorded.
    pub fn mastery_basis(&self) -> Result<Option<MasteryBasis>> {
        self.table::<MasteryBasis>("meta")?.get(keys::MASTERY_BASIS)
    }

    /// Makes every mastery state written so far durable, then records
    /// `basis` as what they were computed with, durably too: the record
    /// never runs ahead of the states it describes.
    pub fn put_mastery_basis(&self, basis: &MasteryBasis) -> Result<()> {
        self.flush()?;
        {
            let _gate = self.write_gate();
            self.table::<MasteryBasis>("meta")?
                .put(keys::MASTERY_BASIS, basis)?;
        }
        self.flush()
    }

    /// The newest model file, if any; a file that does not parse is an error
    /// (never silently skipped: the operator must see it).
    pub fn newest_model(&self) -> Result<Option<(String, FittedModel)>> {
        let dir = self.models_dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(None);
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("bkt-") && n.ends_with(".json"))
            .collect();
        names.sort();
        let Some(newest) = names.pop() else {
            return Ok(None);
        };
        let path = dir.join(&newest);
        let text =
            std::fs::read(&path).map_err(|e| Error::Storage(format!("{}: {e}", path.display())))?;
        let model = serde_json::from_slice(&text).map_err(|e| Error::Corrupt {
            tree: "models",
            key: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Some((newest, model)))
    }
}
