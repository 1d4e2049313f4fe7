//! Cost of the key check on the hot path: `Engine::authenticate_shared`
//! (cache lookup, SHA-256 of the secret, constant-time compare) plus the
//! role check of `RecordAttempts`, as the gRPC layer runs them on every
//! call. Prints nanoseconds per check, on one thread and on two.
//!
//! `cargo bench --bench auth -- --calls 1000000`

// A bench is a measuring tool: a failure may panic.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Instant;

use common::arg;
use spoc_engine::domain::access::{Role, Scope};
use spoc_engine::engine::params::ParamSet;
use spoc_engine::engine::{Engine, EngineConfig};
use spoc_engine::store::Store;

const METHOD: &str = "/spoc.v1.MasteryService/RecordAttempts";

fn main() {
    let calls = arg("--calls", 1_000_000) as usize;
    let temp = tempfile::tempdir().unwrap();
    let engine = Arc::new(
        Engine::new(
            Store::open(temp.path()).unwrap(),
            EngineConfig {
                mastery_threshold: 0.95,
                params: ParamSet::load(None).unwrap(),
            },
        )
        .unwrap(),
    );
    engine.bootstrap_admin_key(temp.path()).unwrap();
    // A realistic cache: a few hundred keys (trainers, companies).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let token = runtime.block_on(async {
        for i in 0..300 {
            let cohort = Scope::Cohorts([format!("p/v1/c{i:03}")].into());
            engine
                .create_api_key(&format!("trainer {i}"), Role::Trainer, cohort)
                .await
                .unwrap();
        }
        let (_, token) = engine
            .create_api_key("lms", Role::Lms, Scope::All)
            .await
            .unwrap();
        token
    });

    let run = |threads: usize| {
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    for _ in 0..calls / threads {
                        let who = engine.authenticate_shared(&token).unwrap();
                        assert!(who.may_call(METHOD));
                    }
                });
            }
        });
        let elapsed = start.elapsed();
        println!(
            "key check, {threads} thread(s): {:.0} ns per check per thread, {:.2} M checks/s in all",
            elapsed.as_nanos() as f64 / calls as f64 * threads as f64,
            calls as f64 / elapsed.as_secs_f64() / 1e6
        );
    };
    run(1);
    run(2);

    let bad = format!("spoc_{}_{}", "0".repeat(16), "1".repeat(64));
    let start = Instant::now();
    for _ in 0..calls {
        assert!(engine.authenticate_shared(&bad).is_err());
    }
    println!(
        "unknown key refused: {:.0} ns/call",
        start.elapsed().as_nanos() as f64 / calls as f64
    );
}
