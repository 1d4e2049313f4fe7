//! The domain core: plain types and pure functions.
//!
//! Nothing here knows tonic, prost or sled (the `tidy` test enforces it):
//! every function takes the state it needs as arguments, so each model is
//! testable alone and reusable offline (CLI, simulator, benchmarks).

pub mod access;
pub mod activity;
pub mod alerts;
pub mod bkt;
pub mod catalog;
pub mod catalog_index;
pub mod cohorts;
pub mod completion;
pub mod fit;
pub mod hashing;
pub mod learner;
pub mod limits;
pub mod mastery;
pub mod paging;
pub mod pauses;
pub mod remediation;
pub mod reports;
pub mod risk;
pub mod roster;
pub mod simulator;
pub mod spreadsheet;
pub mod validate;
pub mod webhooks;
pub mod xapi;
pub mod zones;
