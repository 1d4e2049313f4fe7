//! The BKT parameters in force: defaults from `models/`, per-skill overrides.
//!
//! The file format is documented in README.md (section "Model files"): a JSON
//! object with a `default` parameter set and an optional `skills` map from
//! skill id to a parameter set. The shipped `models/bkt-defaults.json` is
//! compiled into the binary too, so a server started from another directory
//! still has sane defaults.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::domain::bkt::BktParams;
use crate::error::{Error, Result};

/// The shipped defaults, embedded at compile time.
pub const SHIPPED_DEFAULTS: &str = include_str!("../../models/bkt-defaults.json");

/// BKT parameters for every skill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSet {
    /// Format version of the file.
    pub version: u32,
    /// Parameters of any skill not listed in `skills`.
    pub default: BktParams,
    /// Per-skill parameters.
    #[serde(default)]
    pub skills: BTreeMap<String, BktParams>,
    /// Learn rate per module id, where a fitted model knows one
    /// ("multilearn"); remediation prefers it to the skill's `learn`.
    #[serde(default)]
    pub modules: BTreeMap<String, f64>,
}

impl ParamSet {
    /// Parses and validates a parameter file's content.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let set: ParamSet = serde_json::from_str(text).map_err(|e| {
            Error::invalid(origin.to_string(), format!("not a BKT parameter file: {e}"))
        })?;
        if set.version != 1 {
            return Err(Error::invalid(
                format!("{origin}: version"),
                format!("unsupported version {}", set.version),
            ));
        }
        set.default
            .validate()
            .map_err(|e| Error::invalid(format!("{origin}: default"), e))?;
        for (skill, params) in &set.skills {
            params
                .validate()
                .map_err(|e| Error::invalid(format!("{origin}: skills.{skill}"), e))?;
        }
        for (module, rate) in &set.modules {
            if !rate.is_finite() || !(0.0..=1.0).contains(rate) {
                return Err(Error::invalid(
                    format!("{origin}: modules.{module}"),
                    format!("learn rate must be a probability in [0, 1], got {rate}"),
                ));
            }
        }
        Ok(set)
    }

    /// Loads `path`, or the shipped defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::invalid(path.display().to_string(), format!("cannot read: {e}"))
                })?;
                Self::parse(&text, &path.display().to_string())
            }
            None => Self::parse(SHIPPED_DEFAULTS, "models/bkt-defaults.json"),
        }
    }

    /// The parameters of one skill.
    pub fn for_skill(&self, skill: &str) -> &BktParams {
        self.skills.get(skill).unwrap_or(&self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_defaults_parse() {
        let set = ParamSet::load(None).unwrap();
        assert_eq!(set.for_skill("anything"), &set.default);
    }

    #[test]
    fn per_skill_override_and_bad_values() {
        let text = r#"{"version":1,"default":{"prior":0.1,"learn":0.1,"guess":0.2,"slip":0.1},
            "skills":{"s":{"prior":0.5,"learn":0.3,"guess":0.1,"slip":0.05}}}"#;
        let set = ParamSet::parse(text, "t").unwrap();
        assert_eq!(set.for_skill("s").prior, 0.5);
        assert_eq!(set.for_skill("x").prior, 0.1);
        let bad = text.replace("0.05", "1.5");
        let err = ParamSet::parse(&bad, "t").unwrap_err().to_string();
        assert!(err.contains("skills.s") && err.contains("slip"), "{err}");
    }
}
