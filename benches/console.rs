//! Console page render time on the server: a cohort of 50 learners on a
//! program of 30 skills (the target: under 200 ms), with answers
//! on every skill and open alerts; the cohort page (heat map and alerts),
//! a learner's page and the program page, each rendered from the engine
//! as the handlers do (engine reads, then the template), without the
//! network.
//!
//! Run: `cargo bench --bench console` (release build). Options after `--`:
//! `--learners N` (default 50), `--skills N` (default 30), `--answers N`
//! per learner and skill (default 4), `--renders N` per page (default 200).
//! Prints p50, p99 and max per page.

// A bench is a measuring tool: a failure may panic.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{BenchServer, Figures, arg, now};
use spoc_engine::api::pb;
use spoc_engine::domain::access::{Principal, Role, Scope};
use spoc_engine::http::console::i18n::Lang;
use spoc_engine::http::console::session::Signed;
use spoc_engine::http::console::{manager, render, trainer};

#[tokio::main]
async fn main() {
    let learners = arg("--learners", 50) as usize;
    let skills = arg("--skills", 30) as usize;
    let answers = arg("--answers", 4) as usize;
    let renders = arg("--renders", 200) as usize;
    let server = BenchServer::start(1).await;
    let channel = server.channels[0].clone();
    let skill_ids: Vec<String> = (0..skills).map(|s| format!("skill-{s:02}")).collect();

    pb::catalog_service_client::CatalogServiceClient::new(channel.clone())
        .import_catalog(pb::ImportCatalogRequest {
            skills: skill_ids
                .iter()
                .map(|id| pb::Skill {
                    id: id.clone(),
                    name: format!("Skill {id}"),
                    prerequisite_ids: vec![],
                })
                .collect(),
            modules: skill_ids
                .iter()
                .map(|id| pb::Module {
                    id: format!("m-{id}"),
                    title: format!("Module {id}"),
                    skill_ids: vec![id.clone()],
                    format: pb::ModuleFormat::Video as i32,
                    duration_minutes: 10,
                    language: "fr".into(),
                    external_ids: vec![],
                })
                .collect(),
            items: vec![],
        })
        .await
        .unwrap();
    pb::program_service_client::ProgramServiceClient::new(channel.clone())
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(pb::Program {
                id: "bench".into(),
                name: "Bench program".into(),
                skill_ids: skill_ids.clone(),
                cohort_rules: Some(pb::CohortRules {
                    min_size: Some(learners as u32),
                    max_size: Some(learners as u32),
                    max_company_share: Some(1.0),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let mut people = pb::learner_service_client::LearnerServiceClient::new(channel.clone());
    for i in 0..learners {
        let id = format!("l{i:03}");
        people
            .upsert_learner(pb::UpsertLearnerRequest {
                learner: Some(pb::Learner {
                    id: id.clone(),
                    company_id: format!("co{}", i % 5),
                    language: "fr".into(),
                    time_zone: "Europe/Paris".into(),
                    display_name: String::new(),
                }),
            })
            .await
            .unwrap();
        people
            .enroll_learner(pb::EnrollLearnerRequest {
                learner_id: id,
                program_id: "bench".into(),
                enrolled_at: None,
            })
            .await
            .unwrap();
    }
    let formed = pb::cohort_service_client::CohortServiceClient::new(channel.clone())
        .form_cohorts(pb::FormCohortsRequest {
            program_id: "bench".into(),
            objective: 0,
            seed: 1,
            dry_run: false,
        })
        .await
        .unwrap()
        .into_inner();
    let cohort = formed.cohorts[0].id.clone();
    assert_eq!(formed.cohorts[0].size as usize, learners);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Answers on every skill; the first learners fail theirs (alerts).
    let start = now() - 300;
    let mut mastery = pb::mastery_service_client::MasteryServiceClient::new(channel.clone());
    for i in 0..learners {
        let attempts = (0..skills * answers)
            .map(|k| {
                common::attempt(
                    format!("a-{i}-{k}"),
                    format!("l{i:03}"),
                    format!("item-{}", k % skills),
                    skill_ids[k % skills].clone(),
                    i >= 10 && (k + i) % 3 != 0,
                    start + k as i64,
                )
            })
            .collect();
        mastery
            .record_attempts(pb::RecordAttemptsRequest { attempts })
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    tokio::time::sleep(Duration::from_millis(300)).await;
    while !server.engine.alerts_idle() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let trainer = Signed {
        id: "bench".into(),
        principal: Arc::new(Principal {
            key_id: "bench".into(),
            name: "bench trainer".into(),
            role: Role::Trainer,
            scope: Scope::Cohorts([cohort.clone()].into()),
        }),
        csrf: "0".repeat(64),
    };
    let manager_key = Signed {
        principal: Arc::new(Principal {
            key_id: "bench-m".into(),
            name: "bench manager".into(),
            role: Role::Manager,
            scope: Scope::All,
        }),
        ..trainer.clone()
    };
    let engine = server.engine.clone();
    let page = trainer::cohort_html(&engine, &trainer, &cohort, Lang::Fr).unwrap();
    let open = page.matches("data-alert=").count();
    println!(
        "console render, {learners} learners x {skills} skills, {answers} answers per learner and skill, \
         {open} open alerts on the cohort page ({} KB), {renders} renders per page",
        page.len() / 1024
    );
    let measure = |name: &str, render_once: &dyn Fn() -> usize| {
        let mut latencies = Vec::with_capacity(renders);
        let started = Instant::now();
        for _ in 0..renders {
            let t = Instant::now();
            assert!(render_once() > 0);
            latencies.push(t.elapsed());
        }
        let f = Figures::new(latencies, started.elapsed());
        println!(
            "{name:<14} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            f.ms(0.50),
            f.ms(0.99),
            f.max_ms()
        );
    };
    measure("cohort page", &|| {
        trainer::cohort_html(&engine, &trainer, &cohort, Lang::Fr)
            .unwrap()
            .len()
    });
    measure("learner page", &|| {
        let ctx = trainer::learner_context(&engine, &trainer.principal, "l000", "bench").unwrap();
        render(Lang::Fr, Some(&trainer), "learner.html", ctx)
            .unwrap()
            .len()
    });
    measure("program page", &|| {
        let ctx =
            manager::program_context(&engine, &manager_key.principal, "bench", Lang::Fr).unwrap();
        render(Lang::Fr, Some(&manager_key), "program.html", ctx)
            .unwrap()
            .len()
    });
    server.stop().await;
}
