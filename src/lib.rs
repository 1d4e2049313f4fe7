//! spoc-engine: the brain behind SPOCs (small private online courses).
//!
//! It models each learner's mastery of each skill from quiz results
//! (Bayesian Knowledge Tracing), recommends remediation along a prerequisite
//! graph, forms balanced cohorts, and keeps all state in an embedded sled
//! store, served over gRPC.
//!
//! # Layout
//! - [`domain`]: types and pure functions (BKT, catalog graph, mastery
//!   folding...). Knows nothing of gRPC or storage.
//! - [`store`]: sled behind a small interface; `store::keys` documents the
//!   key layout.
//! - [`engine`]: the use cases; reads the store, calls the domain, writes
//!   back atomically. What every front end calls.
//! - [`api`]: the gRPC edge: generated code, validation, conversions,
//!   error mapping.
//! - [`http`]: the HTTP edge: xAPI statements from LMSs, every RPC in JSON
//!   (Connect, through the gRPC stack in process), metrics.
//! - [`server`]: assembles services, health and reflection; the one service
//!   stack both listeners use.
//! - [`offload`]: long work off the runtime's workers.
//! - [`clock`]: the wall clock, read in one place.
//! - [`cli`]: the `spoc` subcommands.
//! - [`error`]: the one error enum.

/// mimalloc instead of the system allocator: the hot paths (protobuf
/// decoding, sled's copy-on-write nodes) allocate many small buffers from
/// several threads, where glibc's malloc showed up as the top cost.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod api;
pub mod cli;
pub mod clock;
pub mod domain;
pub mod engine;
pub mod error;
pub mod http;
pub mod offload;
pub mod server;
pub mod store;
