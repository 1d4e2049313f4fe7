//! Fitting BKT parameters from stored attempts, the way pyBKT does, faster.
//!
//! The flow, for a caller:
//!
//! 1. build a [`Dataset`] (push attempts from the store, or [`read_csv`] a
//!    file in pyBKT's layout);
//! 2. [`fit`] it with [`FitOptions`] (Baum-Welch EM per skill, seeded random
//!    restarts, bounds, pinned values, and pyBKT's variants: forgetting,
//!    multilearn, multigs, multiprior), or [`build_model`] to also get a
//!    cross-validated AUC / RMSE ([`cross_validate`], split by learner);
//! 3. save the resulting [`FittedModel`] (serde JSON, versioned) and use
//!    [`SkillModel::params_for`] to trace learners with `bkt::BktParams`.
//!
//! [`run_cli`] is the body of `spoc fit`; [`synth`] generates data from known
//! parameters for recovery tests and the benchmark against pyBKT.
//!
//! Everything here is plain data and pure functions (no I/O besides the
//! `Read`/`Write` handed in); parallelism is rayon's global pool.

mod csv;
mod cv;
mod data;
mod em;
mod metrics;
mod report;
pub mod synth;
mod variants;

pub use csv::{CsvError, read_csv, read_csv_sized};
pub use cv::{CvReport, assign_folds, cross_validate};
pub use data::{Attempt, AttemptRecord, DataSummary, Dataset};
pub use em::FitError;
pub use metrics::{Scores, accuracy, auc, rmse};
pub use report::{
    CliError, CliOptions, FORMAT_VERSION, FittedModel, NONE_KEY, OutputFormat, SkillModel,
    build_model, fit, predict, run_cli,
};
pub use variants::{Bounds, FitOptions, Fixed, Range, Variants};
