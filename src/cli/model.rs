//! `spoc model ...`: fit the BKT model of a running service on its stored
//! attempts (MasteryService.FitModel) and show the model in force.
//!
//! A fit runs in the background on the service; `GetModel` only says
//! whether it is still running (no fraction done), so the CLI shows a
//! spinner with the elapsed time while it polls.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::client::{BoxError, ClientArgs, Service, describe, runtime};
use super::output::{self, OutputFormat};
use crate::api::pb;

/// How often a running fit is polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// `spoc model ...`
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Fit BKT on the service's stored attempts, wait, print the result.
    Fit(FitArgs),
    /// Print the model in force and the state of the last fit.
    Show(ShowArgs),
}

/// Options of `spoc model fit` (the fields of `FitModelRequest`).
#[derive(Debug, Args)]
pub struct FitArgs {
    /// Fit a forgetting rate per skill.
    #[arg(long)]
    pub forgets: bool,
    /// Fit a learn rate per module ("multilearn").
    #[arg(long)]
    pub multilearn: bool,
    /// Fit guess and slip per item ("multigs").
    #[arg(long)]
    pub multigs: bool,
    /// Cross-validation folds, split by learner (0 = the service's 5).
    #[arg(long, default_value_t = 0)]
    pub folds: i32,
    /// Random restarts of EM per skill (0 = the service's 5).
    #[arg(long, default_value_t = 0)]
    pub restarts: i32,
    /// Seed of the restarts and folds.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Upper bound of every fitted guess, below 0.5 (the service's 0.3
    /// when absent; raise it for true/false items).
    #[arg(long)]
    pub max_guess: Option<f64>,
    /// Upper bound of every fitted slip, below 0.5 (the service's 0.1
    /// when absent).
    #[arg(long)]
    pub max_slip: Option<f64>,
    /// Start the fit and return at once, without waiting.
    #[arg(long)]
    pub no_wait: bool,
    /// Tables for people or JSON for scripts.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Where the service listens, and the key.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of `spoc model show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Tables for people or JSON for scripts.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Where the service listens, and the key.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs a model subcommand.
pub fn run(command: ModelCommand) -> Result<(), BoxError> {
    match command {
        ModelCommand::Fit(args) => fit(args),
        ModelCommand::Show(args) => show(args),
    }
}

fn fit(args: FitArgs) -> Result<(), BoxError> {
    let request = pb::FitModelRequest {
        forgets: args.forgets,
        multilearn: args.multilearn,
        multigs: args.multigs,
        folds: args.folds,
        restarts: args.restarts,
        seed: args.seed,
        max_guess: args.max_guess,
        max_slip: args.max_slip,
    };
    let (client, no_wait) = (args.client.clone(), args.no_wait);
    let model = runtime()?.block_on(async move {
        let mut mastery = Service::connect(&client).await?.mastery();
        let started = mastery
            .fit_model(request)
            .await
            .map_err(|s| describe("starting the fit", &s))?
            .into_inner();
        if no_wait {
            return Ok::<_, BoxError>(started);
        }
        let spinner = output::spinner("fitting BKT on the stored attempts");
        let mut model = started;
        while model.fit_state == pb::FitState::Running as i32 {
            tokio::time::sleep(POLL_INTERVAL).await;
            model = mastery
                .get_model(pb::GetModelRequest {})
                .await
                .map_err(|s| describe("reading the model", &s))?
                .into_inner();
        }
        spinner.finish_and_clear();
        Ok(model)
    })?;
    if model.fit_state == pb::FitState::Failed as i32 {
        return Err(format!("the fit failed: {}", model.error).into());
    }
    print_model(&model, args.format);
    Ok(())
}

fn show(args: ShowArgs) -> Result<(), BoxError> {
    let client = args.client.clone();
    let model = runtime()?
        .block_on(async move {
            Service::connect(&client)
                .await?
                .mastery()
                .get_model(pb::GetModelRequest {})
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| describe("reading the model", &s).into())
        })
        .map_err(|e: BoxError| e)?;
    print_model(&model, args.format);
    Ok(())
}

/// The short name of a fit state (`succeeded`).
fn state_name(model: &pb::Model) -> String {
    output::enum_name(
        pb::FitState::try_from(model.fit_state)
            .unwrap_or_default()
            .as_str_name(),
        "FIT_STATE_",
    )
}

/// A model for scripts: every field by name.
pub fn model_json(m: &pb::Model) -> serde_json::Value {
    serde_json::json!({
        "model_id": m.model_id,
        "fit_state": state_name(m),
        "error": m.error,
        "fitted_at": output::time(m.fitted_at.as_ref()),
        "log_likelihood": m.log_likelihood,
        "cv_auc": m.cv_auc,
        "cv_rmse": m.cv_rmse,
        "attempts": m.attempts,
        "learners": m.learners,
        "fit_seconds": m.fit_seconds,
        "skills": m.skills.iter().map(|s| serde_json::json!({
            "skill_id": s.skill_id,
            "prior": s.prior,
            "learn": s.learn,
            "guess": s.guess,
            "slip": s.slip,
            "forget": s.forget,
            "attempts": s.attempts,
        })).collect::<Vec<_>>(),
        "module_learn_rates": m.module_learn_rates,
    })
}

fn print_model(m: &pb::Model, format: OutputFormat) {
    if format == OutputFormat::Json {
        output::print_json(&model_json(m));
        return;
    }
    let mut summary = output::table([
        "model", "last fit", "attempts", "learners", "CV AUC", "CV RMSE", "fit time",
    ]);
    summary.add_row(vec![
        if m.model_id.is_empty() {
            "shipped defaults".to_string()
        } else {
            m.model_id.clone()
        },
        if m.error.is_empty() {
            state_name(m)
        } else {
            format!("{}: {}", state_name(m), m.error)
        },
        m.attempts.to_string(),
        m.learners.to_string(),
        format!("{:.3}", m.cv_auc),
        format!("{:.3}", m.cv_rmse),
        format!("{:.1} s", m.fit_seconds),
    ]);
    output::align_right(&mut summary, &[2, 3, 4, 5, 6]);
    output::emit(summary);
    if m.skills.is_empty() {
        return;
    }
    let mut skills = output::table([
        "skill", "prior", "learn", "guess", "slip", "forget", "attempts",
    ]);
    for s in &m.skills {
        skills.add_row(vec![
            s.skill_id.clone(),
            format!("{:.3}", s.prior),
            format!("{:.3}", s.learn),
            format!("{:.3}", s.guess),
            format!("{:.3}", s.slip),
            format!("{:.3}", s.forget),
            s.attempts.to_string(),
        ]);
    }
    output::align_right(&mut skills, &[1, 2, 3, 4, 5, 6]);
    output::emit(skills);
    if !m.module_learn_rates.is_empty() {
        output::emit(format!(
            "{} per-module learn rates (see --format json)",
            m.module_learn_rates.len()
        ));
    }
}
