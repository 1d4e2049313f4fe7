//! The integration tests: one crate, so tonic, axum, sled, rustls, linfa
//! and plotters are linked into one test binary instead of one per file.
//!
//! Each module is one subject (its file's first lines say which) and starts
//! the real server through `common` (`TestServer` in this process, `Spoc`
//! for the `spoc` binary), with sled in a temporary folder.
//!
//! To add tests: write `tests/it/<subject>.rs` starting with a `//!` line
//! that says what it holds, `use crate::common::*;` for the helpers, and
//! list it below (alphabetical). Run one module with
//! `cargo test --test it <subject>::` (a filter on the test path).
//! `tests/tidy.rs` stays a binary of its own: it reads the sources and
//! links nothing of the crate, so it answers before the crate is built.
//! proptest keeps its regressions in `tests/proptest-regressions/`.

// Tests unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

mod alert_lifecycle;
mod alerts_grpc;
mod auth_grpc;
mod backup;
mod catalog_errors;
mod cli;
mod cohort_rules;
mod cohorts_grpc;
mod cohorts_props;
mod connect_http;
mod console;
mod crash;
mod demo;
mod faults;
mod fuzz;
mod learner_fields;
mod load;
mod malformed;
mod mastery_falls;
mod mastery_grpc;
mod model;
mod pagination;
mod privacy_grpc;
mod ralph;
mod remediation;
mod reports_grpc;
mod restart;
mod risk_history;
mod simulate_grpc;
mod store_format;
mod tls;
mod webhooks;
mod xapi_clients;
mod xapi_http;
mod xapi_mapping;
