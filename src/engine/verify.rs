//! The mastery part of `spoc verify`: every stored state must equal the
//! fold of its indexed attempts under the parameters it was computed with
//! (the store reads the trees, `store/verify.rs`; BKT lives here).

use std::path::Path;

use crate::engine::params::ParamSet;
use crate::store::verify::{Finding, Report};

/// Compares every state of `report.folds` with the fold of its history,
/// under the parameters its basis names (`base`, the server's
/// `--bkt-params`, or a fitted model of `dir/models`).
pub fn check_folds(dir: &Path, base: &ParamSet, report: &mut Report) {
    let Some(params) = params_in_force(dir, base, report) else {
        return;
    };
    let mut findings = Vec::new();
    for fold in &report.folds {
        let expected = params
            .for_skill(&fold.skill)
            .replay(fold.history.iter().copied())
            .p_known();
        let stored = fold.state.belief.p_known();
        if (expected - stored).abs() > 1e-9 {
            findings.push(Finding {
                place: format!(
                    "tree learner_mastery, key {} (skill {})",
                    fold.learner, fold.skill
                ),
                what: format!(
                    "P(mastered) {stored} is not the fold of its {} attempts ({expected})",
                    fold.history.len()
                ),
            });
        }
    }
    report.findings.extend(findings);
}

/// The parameters the states were computed with, when they can be told;
/// `None` with a note or a finding otherwise.
fn params_in_force(dir: &Path, base: &ParamSet, report: &mut Report) -> Option<ParamSet> {
    let Some(basis) = report.basis.clone() else {
        if !report.folds.is_empty() {
            report
                .notes
                .push("mastery values not compared: no record of their parameters".into());
        }
        return None;
    };
    let params = if basis.model_id == "defaults" {
        base.clone()
    } else {
        let path = dir.join("models").join(&basis.model_id);
        let fitted = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match fitted {
            Some(fitted) => ParamSet::from_fitted(base, &fitted),
            None => {
                report.findings.push(Finding {
                    place: path.display().to_string(),
                    what: "the model in force is missing or unreadable".into(),
                });
                return None;
            }
        }
    };
    if super::model::basis(&basis.model_id, &params) != basis {
        report.notes.push(
            "mastery values not compared with the fold: they were computed with other BKT \
             parameters than these (pass the server's --bkt-params)"
                .into(),
        );
        return None;
    }
    Some(params)
}
