//! At-risk learners: signals, alert rules and the two alert models.
//!
//! Pure and deterministic like the rest of the domain (no gRPC, no storage):
//! the engine gathers a [`SignalInput`] per learner from the store, calls
//! [`assess`] with the program's [`RiskThresholds`] and the loaded
//! [`RiskModels`], and turns the [`AlertDraft`]s it returns into alerts
//! (`domain::alerts`: one per learner, within a budget). Features are
//! computed once for rules, training and prediction ([`features`]), with
//! engagement read against the learner's own habit ([`engagement`]). The
//! models (behind schedule, stopping) are trained offline on simulated
//! cohort worlds whose future is known ([`world`], [`training`]) or on a
//! deployment's own history, and shipped as `models/risk.json`.

pub mod engagement;
pub mod evaluation;
pub mod features;
pub mod model;
pub mod rules;
pub mod signals;
pub mod training;
pub mod world;

pub use engagement::{Engagement, engagement};
pub use features::{Features, features};
pub use model::{LinearModel, RiskModels, Sample, TrainOptions, TrainingInfo, auc, train};
pub use rules::{AlertDraft, AlertKind, Assessment, RiskThresholds, Severity, Standing, assess};
pub use signals::{LearnerSignals, ProgramCalendar, SignalInput, SkillAttempt, signals};
pub use training::train_models;

use crate::error::Result;

/// Trains the shipped models on the training worlds with `learners`
/// learners each (seed of the train/test split): what `spoc train-risk`
/// runs.
pub fn train_default(seed: u64, learners: usize) -> Result<RiskModels> {
    train_models(&world::training_worlds(learners), seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_is_deterministic_and_both_models_learn() {
        let a = train_default(3, 120).unwrap();
        assert_eq!(a, train_default(3, 120).unwrap());
        assert!(a.stopping.auc > 0.55, "{}", a.stopping.auc);
        assert!(a.behind_schedule.auc > 0.8, "{}", a.behind_schedule.auc);
        // Being away pushes towards stopping; falling behind towards not
        // completing.
        let at = |m: &LinearModel, f: &str| {
            m.coefficients[m.features.iter().position(|x| x == f).unwrap()]
        };
        assert!(at(&a.stopping, "log_days_away") > 0.0, "{:?}", a.stopping);
        // Less of the horizon left in the program, fewer stops within it.
        assert!(
            at(&a.stopping, "log_horizon_days") > 0.0,
            "{:?}",
            a.stopping
        );
        assert!(
            at(&a.behind_schedule, "pace_gap") > 0.0,
            "{:?}",
            a.behind_schedule
        );
    }
}
