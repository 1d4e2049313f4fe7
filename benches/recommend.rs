//! RecommendNext latency through gRPC on loopback, with 10,000 learners and
//! a 30-skill / 120-module catalog in the store: p50/p99 at a steady open-loop
//! load (default 2,000 calls/s), and the maximum call rate next to the
//! health-check rate on the same server. Learners have completed modules
//! and answered after them, so the policy's reads of module outcomes and
//! recent answers (checks, certification evidence) are in the figures.
//!
//! Run: `cargo bench --bench recommend` (release build). Options after `--`:
//! `--learners N` (10000), `--rate N` calls/s (2000), `--seconds N` (5),
//! `--clients N` closed-loop callers for the maximum rate (64),
//! `--engine-calls N` calls per round of the engine-only measurement (20000,
//! three rounds; raise it to attach a profiler to that phase), `--answers N`
//! answers after each completed module (3; a long course's learner has
//! hundreds, all of which the policy's evidence reads).

// A bench is a measuring tool: a failure may panic.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{BenchServer, Figures, arg, closed_loop, health_baseline, max_rss_mb};
use spoc_engine::api::pb;
use spoc_engine::domain::remediation::Kind;

const SKILLS: usize = 30;
const MODULES_PER_SKILL: usize = 4;

/// A layered DAG: skill i needs skill i-1 within its chain of 5 and one
/// skill of the previous layer.
fn catalog() -> pb::ImportCatalogRequest {
    let formats = [
        pb::ModuleFormat::Video,
        pb::ModuleFormat::Exercise,
        pb::ModuleFormat::SeriousGame,
        pb::ModuleFormat::Document,
        pb::ModuleFormat::Workshop,
        pb::ModuleFormat::Podcast,
    ];
    let skills = (0..SKILLS)
        .map(|i| {
            let mut prereqs = Vec::new();
            if i % 5 != 0 {
                prereqs.push(format!("s{}", i - 1));
            }
            if i >= 5 {
                prereqs.push(format!("s{}", i - 5));
            }
            pb::Skill {
                id: format!("s{i}"),
                name: format!("Skill {i}"),
                prerequisite_ids: prereqs,
            }
        })
        .collect();
    let modules = (0..SKILLS * MODULES_PER_SKILL)
        .map(|m| {
            let skill = m / MODULES_PER_SKILL;
            pb::Module {
                external_ids: Vec::new(),
                id: format!("m{m}"),
                title: format!("Module {m}"),
                skill_ids: vec![format!("s{skill}")],
                format: formats[m % formats.len()] as i32,
                duration_minutes: 5 + (m as u32 * 7) % 40,
                language: if m % 4 == 3 { "en".into() } else { "fr".into() },
            }
        })
        .collect();
    // A bank of six items per skill: what checks and certification ask.
    let items = (0..SKILLS)
        .flat_map(|s| {
            (0..6).map(move |i| pb::Item {
                id: format!("item-s{s}-{i}"),
                skill_ids: vec![format!("s{s}")],
                title: format!("Question {i} on skill {s}"),
                external_ids: Vec::new(),
                pass_mark: None,
            })
        })
        .collect();
    pb::ImportCatalogRequest {
        skills,
        modules,
        items,
    }
}

#[tokio::main]
async fn main() {
    let learners = arg("--learners", 10_000) as usize;
    let rate = arg("--rate", 2000);
    let seconds = arg("--seconds", 5);
    let clients = arg("--clients", 64) as usize;
    let answers = arg("--answers", 3) as usize;
    let server = BenchServer::start(4).await;
    let channels = server.channels.clone();
    let ch = channels[0].clone();

    // Seed: catalog, program, learners, enrolments, a few attempts each.
    let t0 = Instant::now();
    pb::catalog_service_client::CatalogServiceClient::new(ch.clone())
        .import_catalog(catalog())
        .await
        .unwrap();
    pb::program_service_client::ProgramServiceClient::new(ch.clone())
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(pb::Program {
                id: "program".into(),
                name: "Bench program".into(),
                skill_ids: (0..SKILLS).map(|i| format!("s{i}")).collect(),
                cohort_rules: None,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let mut learner_client = pb::learner_service_client::LearnerServiceClient::new(ch.clone());
    let mut mastery = pb::mastery_service_client::MasteryServiceClient::new(ch.clone());
    let mut remediation = pb::remediation_service_client::RemediationServiceClient::new(ch.clone());
    let mut pending = Vec::new();
    let mut activities = Vec::new();
    for l in 0..learners {
        let id = format!("learner-{l}");
        learner_client
            .upsert_learner(pb::UpsertLearnerRequest {
                learner: Some(pb::Learner {
                    id: id.clone(),
                    company_id: format!("company-{}", l % 40),
                    language: if l % 3 == 0 { "en".into() } else { "fr".into() },
                    time_zone: "Europe/Paris".into(),
                    display_name: String::new(),
                }),
            })
            .await
            .unwrap();
        learner_client
            .enroll_learner(pb::EnrollLearnerRequest {
                enrolled_at: None,
                learner_id: id.clone(),
                program_id: "program".into(),
            })
            .await
            .unwrap();
        // Learners are spread over the graph: the first k skills, each
        // after a completed module in the learner's language, then three
        // answers (`--answers`; odd learners get the second wrong), so that
        // RecommendNext reads
        // module outcomes and recent answers as it does in production.
        let depth = l % 12;
        for k in 0..depth {
            let skill = (k % 5) * 5 + k / 5;
            let at = 1_700_000_000 + (k * 10) as i64;
            activities.push(pb::ModuleActivity {
                event_id: format!("{id}-module-{k}"),
                learner_id: id.clone(),
                module_id: format!(
                    "m{}",
                    skill * MODULES_PER_SKILL + if l % 3 == 0 { 3 } else { 0 }
                ),
                program_id: "program".into(),
                kind: pb::ActivityKind::Completed as i32,
                occurred_at: Some(prost_types::Timestamp {
                    seconds: at,
                    nanos: 0,
                }),
                time_spent: None,
            });
            for r in 0..answers {
                pending.push(common::attempt(
                    format!("{id}-{k}-{r}"),
                    id.clone(),
                    format!("item-s{skill}-{}", r % 6),
                    format!("s{skill}"),
                    r != 1 || l % 2 == 0,
                    at + 1 + r as i64,
                ));
            }
        }
        if pending.len() >= 900 {
            remediation
                .record_activity(pb::RecordActivityRequest {
                    activities: std::mem::take(&mut activities),
                })
                .await
                .unwrap();
            // At most 1,000 attempts per call.
            for chunk in std::mem::take(&mut pending).chunks(1000) {
                mastery
                    .record_attempts(pb::RecordAttemptsRequest {
                        attempts: chunk.to_vec(),
                    })
                    .await
                    .unwrap();
            }
        }
    }
    if !pending.is_empty() {
        remediation
            .record_activity(pb::RecordActivityRequest { activities })
            .await
            .unwrap();
        for chunk in pending.chunks(1000) {
            mastery
                .record_attempts(pb::RecordAttemptsRequest {
                    attempts: chunk.to_vec(),
                })
                .await
                .unwrap();
        }
    }
    println!(
        "seeded {learners} learners, {SKILLS} skills, {} modules in {:.1} s",
        SKILLS * MODULES_PER_SKILL,
        t0.elapsed().as_secs_f64()
    );

    let request = move |i: usize| pb::RecommendNextRequest {
        learner_id: format!("learner-{}", (i * 7919) % learners),
        program_id: "program".into(),
        count: 3,
        exclude_module_ids: vec![],
    };

    // The engine alone, without gRPC: what the policy and the store cost.
    // Three rounds and their median: right after seeding, the alert
    // evaluation and sled's flushes still run beside the first.
    let exclude = std::collections::BTreeSet::new();
    let n = arg("--engine-calls", 20_000) as usize;
    let (mut diagnostic, mut modules) = (0usize, 0usize);
    let mut rounds: Vec<f64> = Vec::new();
    for _ in 0..3 {
        // The counts of the last round are printed.
        (diagnostic, modules) = (0, 0);
        let t0 = Instant::now();
        for i in 0..n {
            let req = request(i);
            let answer = server
                .engine
                .recommend_next(&req.learner_id, &req.program_id, 3, &exclude)
                .unwrap();
            for r in &answer.items {
                match r.kind {
                    Kind::Diagnostic => diagnostic += 1,
                    Kind::Module => modules += 1,
                }
            }
        }
        rounds.push(t0.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    let shown: Vec<String> = rounds.iter().map(|r| format!("{r:.1}")).collect();
    rounds.sort_by(f64::total_cmp);
    println!(
        "engine only (no gRPC): {:.1} us per RecommendNext, median of three rounds ({} us; {modules} modules, {diagnostic} diagnostic items recommended)",
        rounds[1],
        shown.join(" / ")
    );

    // Steady open-loop load: a call every 1/rate s whatever the replies do
    // (tokio's timer ticks every millisecond, so calls due within a tick
    // leave together); latency is measured from when each call leaves.
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let total = (rate * seconds) as usize;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let mut client = pb::remediation_service_client::RemediationServiceClient::new(
            channels[i % channels.len()].clone(),
        );
        let req = request(i);
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let reply = client.recommend_next(req).await.expect("recommend");
            assert!(reply.get_ref().status != 0);
            sent.elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for t in tasks {
        latencies.push(t.await.unwrap());
    }
    let steady = Figures::new(latencies, start.elapsed());
    println!(
        "RecommendNext at {rate} calls/s for {seconds} s: achieved {:.0} calls/s, p50 {:.3} ms, p99 {:.3} ms (target p99 < 2 ms)",
        steady.rate(),
        steady.ms(0.5),
        steady.ms(0.99)
    );

    let health = health_baseline(&channels, clients, seconds).await;
    let rc = channels.clone();
    let max = closed_loop(clients, seconds, move |c, i| {
        let mut client =
            pb::remediation_service_client::RemediationServiceClient::new(rc[c % rc.len()].clone());
        let req = request(c * 100_003 + i);
        async move {
            client.recommend_next(req).await.expect("recommend");
        }
    })
    .await;
    println!(
        "max rate ({clients} closed-loop clients): RecommendNext {:.0} calls/s (p50 {:.2} ms), health check {:.0} calls/s: {:.0}% (target >= 50%)",
        max.rate(),
        max.ms(0.5),
        health.rate(),
        100.0 * max.rate() / health.rate()
    );
    println!("max RSS: {:.0} MB", max_rss_mb());
    server.stop().await;
}
