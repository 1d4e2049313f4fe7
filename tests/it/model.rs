//! Model fitting through gRPC: FitModel in the background, GetModel,
//! activation with mastery recomputed, and the model file reloaded.

use crate::common::*;
use rand::{Rng, SeedableRng};
use spoc_engine::api::pb;
use tonic::Code;

/// Attempts drawn from BKT with known parameters for `learners` learners on
/// skills a and b (15 answers each).
fn synthetic_attempts(learners: usize) -> Vec<pb::Attempt> {
    let (prior, learn, guess, slip) = (0.3, 0.2, 0.15, 0.1);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut out = Vec::new();
    for l in 0..learners {
        for skill in ["a", "b"] {
            let mut known = rng.random::<f64>() < prior;
            for t in 0..15 {
                let correct = if known {
                    rng.random::<f64>() >= slip
                } else {
                    rng.random::<f64>() < guess
                };
                out.push(attempt(
                    &format!("{l}-{skill}-{t}"),
                    &format!("l{l}"),
                    &[skill],
                    correct,
                    1_700_000_000 + t,
                ));
                if !known {
                    known = rng.random::<f64>() < learn;
                }
            }
        }
    }
    out
}

/// Attempts of `learners` learners of graded ability on skills a and b
/// (each answers right with their own probability, 0.3 to 0.95, 12
/// answers per skill): data where BKT's likelihood favours explaining
/// knowledge as guessing (pyBKT's bounds give a guess above 0.3 on it).
fn graded_attempts(learners: usize) -> Vec<pb::Attempt> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut out = Vec::new();
    for l in 0..learners {
        let ability: f64 = rng.random_range(0.3..0.95);
        for skill in ["a", "b"] {
            for t in 0..12 {
                out.push(attempt(
                    &format!("{l}-{skill}-{t}"),
                    &format!("l{l}"),
                    &[skill],
                    rng.random_bool(ability),
                    1_700_000_000 + t,
                ));
            }
        }
    }
    out
}

async fn wait_for_fit(
    client: &mut pb::mastery_service_client::MasteryServiceClient<crate::common::AuthChannel>,
) -> pb::Model {
    eventually("the fit finishing", async || {
        let model = client
            .get_model(pb::GetModelRequest {})
            .await
            .unwrap()
            .into_inner();
        (model.fit_state != pb::FitState::Running as i32).then_some(model)
    })
    .await
}

/// Starts a fit with `request` and waits for it to succeed.
async fn fit_to_success(
    client: &mut pb::mastery_service_client::MasteryServiceClient<crate::common::AuthChannel>,
    request: pb::FitModelRequest,
) -> pb::Model {
    client.fit_model(request).await.unwrap();
    let model = wait_for_fit(client).await;
    assert_eq!(
        model.fit_state,
        pb::FitState::Succeeded as i32,
        "error: {}",
        model.error
    );
    model
}

/// Enrols learners `l0` .. `l{learners - 1}` and records `attempts`.
async fn record(channel: AuthChannel, learners: usize, attempts: &[pb::Attempt]) {
    let mut client = pb::learner_service_client::LearnerServiceClient::new(channel.clone());
    for l in 0..learners {
        client
            .upsert_learner(pb::UpsertLearnerRequest {
                learner: Some(learner(&format!("l{l}"), "acme")),
            })
            .await
            .unwrap();
    }
    record_in_batches(channel, attempts).await;
}

/// A fit on stored attempts recovers the generating parameters roughly,
/// reports cross-validated metrics, recomputes mastery with the new
/// parameters, and is loaded again after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fit_model_activates_and_survives_restart() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut mastery = server.mastery().await;

    let err = mastery
        .fit_model(pb::FitModelRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::FailedPrecondition,
        "no attempts yet: {}",
        err.message()
    );

    record(server.channel().await, 150, &synthetic_attempts(150)).await;
    let before = p_mastered_l0_a(&mut mastery).await;

    let started = mastery
        .fit_model(pb::FitModelRequest {
            folds: 3,
            restarts: 3,
            seed: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.model_id, "defaults");
    let model = wait_for_fit(&mut mastery).await;
    assert_eq!(
        model.fit_state,
        pb::FitState::Succeeded as i32,
        "error: {}",
        model.error
    );
    assert!(model.model_id.starts_with("bkt-"), "{}", model.model_id);
    assert_eq!(model.attempts, 150 * 2 * 15);
    assert!(
        model.cv_auc > 0.6 && model.cv_auc <= 1.0,
        "auc {}",
        model.cv_auc
    );
    let a = model
        .skills
        .iter()
        .find(|s| s.skill_id == "a")
        .expect("skill a fitted");
    for (name, got, truth) in [
        ("prior", a.prior, 0.3),
        ("learn", a.learn, 0.2),
        ("guess", a.guess, 0.15),
        ("slip", a.slip, 0.1),
    ] {
        assert!(
            (got - truth).abs() < 0.12,
            "{name}: fitted {got}, truth {truth}"
        );
    }
    assert!(
        server
            .data_dir
            .join("models")
            .join(&model.model_id)
            .exists()
    );

    // Mastery was recomputed with the fitted parameters.
    let after = p_mastered_l0_a(&mut mastery).await;
    assert_ne!(after, before);

    let dir = server.data_dir.clone();
    let temp = server.stop().await;
    let server = TestServer::start_in(&dir).await;
    let mut mastery = server.mastery().await;
    let reloaded = mastery
        .get_model(pb::GetModelRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reloaded.model_id, model.model_id);
    assert_eq!(reloaded.skills, model.skills);
    server.stop().await;
    drop(temp);
}

/// Bad fit options are refused with the field named.
#[tokio::test]
async fn fit_options_are_validated() {
    let server = TestServer::start().await;
    let mut mastery = server.mastery().await;
    for (request, field) in [
        (
            pb::FitModelRequest {
                folds: 21,
                ..Default::default()
            },
            "folds",
        ),
        (
            pb::FitModelRequest {
                restarts: -1,
                ..Default::default()
            },
            "restarts",
        ),
        (
            pb::FitModelRequest {
                multilearn: true,
                multigs: true,
                ..Default::default()
            },
            "multigs",
        ),
    ]
    .into_iter()
    .chain([0.5, 0.0, -0.1, f64::NAN].into_iter().flat_map(|bad| {
        [
            (
                pb::FitModelRequest {
                    max_guess: Some(bad),
                    ..Default::default()
                },
                "max_guess",
            ),
            (
                pb::FitModelRequest {
                    max_slip: Some(bad),
                    ..Default::default()
                },
                "max_slip",
            ),
        ]
    })) {
        let err = mastery.fit_model(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains(field), "{}", err.message());
    }
    server.stop().await;
}

/// P(mastered) of every (learner, skill) of `synthetic_attempts(learners)`,
/// as served.
async fn served_mastery(channel: AuthChannel, learners: usize) -> Vec<f64> {
    let mut client = pb::mastery_service_client::MasteryServiceClient::new(channel);
    let mut out = Vec::new();
    for l in 0..learners {
        let reply = client
            .get_mastery(pb::GetMasteryRequest {
                learner_id: format!("l{l}"),
                skill_ids: vec!["a".into(), "b".into()],
            })
            .await
            .unwrap()
            .into_inner();
        out.extend(reply.skills.iter().map(|s| s.p_mastered));
    }
    out
}

/// The fold of `attempts` with the parameters of model `model_id` (a file
/// of `dir/models`, or the shipped defaults), in the order of
/// [`served_mastery`].
fn expected_mastery(
    dir: &std::path::Path,
    model_id: &str,
    attempts: &[pb::Attempt],
    learners: usize,
) -> Vec<f64> {
    use spoc_engine::domain::bkt::Observation;
    use spoc_engine::engine::params::ParamSet;
    let defaults = ParamSet::load(None).unwrap();
    let params = if model_id == "defaults" {
        defaults
    } else {
        let text = std::fs::read(dir.join("models").join(model_id)).unwrap();
        let fitted = serde_json::from_slice(&text).unwrap();
        ParamSet::from_fitted(&defaults, &fitted)
    };
    let mut out = Vec::new();
    for l in 0..learners {
        for skill in ["a", "b"] {
            let mut answers: Vec<_> = attempts
                .iter()
                .filter(|a| a.learner_id == format!("l{l}") && a.skill_ids[0] == skill)
                .map(|a| (a.occurred_at.unwrap().seconds, a.correct))
                .collect();
            answers.sort();
            let belief = params
                .for_skill(skill)
                .replay(answers.iter().map(|&(_, c)| Observation {
                    correct: c,
                    score: None,
                }));
            out.push(belief.p_known());
        }
    }
    out
}

/// Whether two served vectors agree (to rounding), and how many pairs differ.
fn stale_pairs(got: &[f64], want: &[f64]) -> usize {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .filter(|(g, w)| (*g - *w).abs() > 1e-9)
        .count()
}

/// A model activation survives SIGKILL of the real binary, at two points:
/// while the activation recomputes mastery (the new model already in
/// force), and right after FitModel reports SUCCEEDED. After each restart
/// the served mastery of every (learner, skill) is the fold of its attempts
/// under the model the server loaded, and a SUCCEEDED model's mastery is
/// exactly what was served before the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_activation_survives_sigkill() {
    const LEARNERS: usize = 300;
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let attempts = synthetic_attempts(LEARNERS);
    let start = || {
        let addr = free_addr();
        let spoc = Spoc::start(dir, addr, "127.0.0.1:0", &[]);
        (spoc, addr)
    };
    let connect = |addr: std::net::SocketAddr| async move {
        authed(connect_when_up(addr).await, Some(&admin_key_in(dir)))
    };

    let (spoc, addr) = start();
    let channel = connect(addr).await;
    pb::catalog_service_client::CatalogServiceClient::new(channel.clone())
        .import_catalog(crate::common::skills_a_b())
        .await
        .unwrap();
    record(channel.clone(), LEARNERS, &attempts).await;
    let mut mastery = pb::mastery_service_client::MasteryServiceClient::new(channel.clone());

    // Kill point 1: the fitted model is in force, its activation running.
    let fit = pb::FitModelRequest {
        restarts: 1,
        seed: 1,
        ..Default::default()
    };
    mastery.fit_model(fit).await.unwrap();
    loop {
        let model = mastery
            .get_model(pb::GetModelRequest {})
            .await
            .unwrap()
            .into_inner();
        if model.model_id != "defaults" {
            break;
        }
        assert_eq!(
            model.fit_state,
            pb::FitState::Running as i32,
            "{}",
            model.error
        );
    }
    spoc.kill();

    let (spoc, addr) = start();
    let channel = connect(addr).await;
    let mut mastery = pb::mastery_service_client::MasteryServiceClient::new(channel.clone());
    let loaded = mastery
        .get_model(pb::GetModelRequest {})
        .await
        .unwrap()
        .into_inner()
        .model_id;
    let want = expected_mastery(dir, &loaded, &attempts, LEARNERS);
    let got = served_mastery(channel.clone(), LEARNERS).await;
    assert_eq!(
        stale_pairs(&got, &want),
        0,
        "killed during activation: pairs not folded with {loaded}"
    );

    // Kill point 2: right after SUCCEEDED (a second fit, another model).
    let model = fit_to_success(
        &mut mastery,
        pb::FitModelRequest {
            restarts: 2,
            seed: 2,
            forgets: true,
            ..Default::default()
        },
    )
    .await;
    assert_ne!(model.model_id, loaded);
    let before = served_mastery(channel.clone(), LEARNERS).await;
    spoc.kill();

    let (spoc, addr) = start();
    let channel = connect(addr).await;
    let after = served_mastery(channel.clone(), LEARNERS).await;
    let want = expected_mastery(dir, &model.model_id, &attempts, LEARNERS);
    assert_eq!(stale_pairs(&before, &want), 0, "served before the kill");
    assert_eq!(stale_pairs(&after, &want), 0, "served after the restart");
    drop(spoc);
}

/// P(mastered) of learner l0 on skill a, as served.
async fn p_mastered_l0_a(
    mastery: &mut pb::mastery_service_client::MasteryServiceClient<AuthChannel>,
) -> f64 {
    mastery
        .get_mastery(pb::GetMasteryRequest {
            learner_id: "l0".into(),
            skill_ids: vec!["a".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .skills[0]
        .p_mastered
}

/// FitModel's parameters decide mastery, so it fits within the
/// plausibility bounds (guess at most 0.3, slip at most 0.1) even where
/// the data pull the guess up; a caller may raise them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fit_model_keeps_guess_and_slip_plausible() {
    let server = TestServer::start().await;
    seed(&server).await;
    record(server.channel().await, 400, &graded_attempts(400)).await;
    let mut mastery = server.mastery().await;
    let request = pb::FitModelRequest {
        seed: 42,
        ..Default::default()
    };
    let model = fit_to_success(&mut mastery, request).await;
    assert_eq!(model.skills.len(), 2, "{:?}", model.skills);
    for skill in &model.skills {
        assert!(skill.guess <= 0.3 + 1e-9, "{skill:?}");
        assert!(skill.slip <= 0.1 + 1e-9, "{skill:?}");
    }
    // A caller whose items are true/false raises the bounds.
    let request = pb::FitModelRequest {
        seed: 42,
        max_guess: Some(0.49),
        max_slip: Some(0.3),
        ..Default::default()
    };
    let model = fit_to_success(&mut mastery, request).await;
    assert!(
        model.skills.iter().any(|s| s.guess > 0.3),
        "{:?}",
        model.skills
    );
    for skill in &model.skills {
        assert!(skill.guess <= 0.49 + 1e-9, "{skill:?}");
        assert!(skill.slip <= 0.3 + 1e-9, "{skill:?}");
    }
    server.stop().await;
}
