//! `spoc cohorts ...`: form a program's cohorts through a running service
//! (`form --program P`), write them out (`export`, in `learners.rs`), or
//! form cohorts offline from a CSV that carries mastery itself (`form
//! --input F --output F`, issue 4's command, also `form-offline`).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::client::{BoxError, ClientArgs, Service, describe, runtime};
use super::output::{self, OutputFormat};
use crate::api::pb;
use crate::domain::cohorts::{
    CohortConstraints, Objective, OfflineOptions, assignment_csv, run_offline,
};

/// `spoc cohorts ...`
#[derive(Debug, Subcommand)]
pub enum CohortsCommand {
    /// Form a program's cohorts in a running service (CohortService) and
    /// print them with their balance report (`--program`); or, with
    /// `--input`, split the learners of a CSV offline as `form-offline`
    /// does.
    Form(ServiceFormArgs),
    /// Write a program's current cohorts from a running service as
    /// `learner_id,cohort_id`.
    Export(super::learners::ExportArgs),
    /// Split learners from a CSV (mastery columns included) into cohorts
    /// and write `learner_id,cohort_id`, without a service (the same as
    /// `form --input`).
    #[command(name = "form-offline", alias = "form-csv")]
    FormOffline(FormArgs),
}

/// Smallest cohort by default (offline).
const DEFAULT_MIN: usize = 15;
/// Largest cohort by default (offline).
const DEFAULT_MAX: usize = 50;
/// Largest share of one company in a cohort by default (offline).
const DEFAULT_COMPANY_CAP: f64 = 0.3;
/// Largest spread of UTC offsets in a cohort by default, hours (offline).
const DEFAULT_TZ_SPREAD: f64 = 3.0;

/// Options of `spoc cohorts form`: `--program` against a running service,
/// or `--input` (and the offline flags) without one. Both forms are
/// contracts: issue 4 spells the offline one, issue 7 the other.
#[derive(Debug, Args)]
pub struct ServiceFormArgs {
    /// The program whose enrolled learners are split into cohorts.
    #[arg(long, required_unless_present = "input", conflicts_with = "input")]
    pub program: Option<String>,
    /// What to optimise.
    #[arg(long, value_enum, default_value_t = ObjectiveArg::Balanced)]
    pub objective: ObjectiveArg,
    /// Seed: the same seed on the same data gives the same cohorts.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Compute and print, but store nothing.
    #[arg(long, conflicts_with = "input")]
    pub dry_run: bool,
    /// Also write the cohorts as `learner_id,cohort_id` to this file
    /// (offline: where to write them, required).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Tables for people or JSON for scripts (with `--program`).
    #[arg(long, value_enum, default_value_t = OutputFormat::Table, conflicts_with = "input")]
    pub format: OutputFormat,
    /// Offline: a CSV with header `learner_id,company_id,language,timezone,`
    /// then one mastery column per skill; no service is called.
    #[arg(long, requires = "output")]
    pub input: Option<PathBuf>,
    /// Offline: the rules of the cohorts.
    #[command(flatten)]
    pub offline: OfflineRules,
    /// Where the service listens, and the key.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// What cohorts optimise.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ObjectiveArg {
    /// Every cohort as close as possible to the whole population.
    Balanced,
    /// Cohorts homogeneous in level.
    Leveled,
}

/// Options of `spoc cohorts form-offline` (the flags of the former
/// offline `spoc cohorts form`, unchanged).
#[derive(Debug, Args)]
pub struct FormArgs {
    /// CSV with header `learner_id,company_id,language,timezone,` then one
    /// mastery column per skill (values in [0, 1]).
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write `learner_id,cohort_id`.
    #[arg(long)]
    pub output: PathBuf,
    /// The rules of the cohorts.
    #[command(flatten)]
    pub rules: OfflineRules,
    /// What to optimise.
    #[arg(long, value_enum, default_value_t = ObjectiveArg::Balanced)]
    pub objective: ObjectiveArg,
    /// Seed: the same seed gives the same cohorts.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The offline mode's cohort rules, shared by `form --input` and
/// `form-offline`; a flag not given takes its default.
#[derive(Debug, Args)]
pub struct OfflineRules {
    /// Smallest cohort (15..50; default 15).
    #[arg(long)]
    pub min: Option<usize>,
    /// Largest cohort (min..50; default 50).
    #[arg(long)]
    pub max: Option<usize>,
    /// Largest share of one company in a cohort, in (0, 1] (default 0.3).
    #[arg(long)]
    pub company_cap: Option<f64>,
    /// Largest spread of UTC offsets in a cohort, in hours (default 3).
    #[arg(long)]
    pub max_tz_spread: Option<f64>,
    /// Number of cohorts wanted (default: sizes near (min+max)/2).
    #[arg(long)]
    pub cohorts: Option<usize>,
    /// Allow cohorts that mix languages.
    #[arg(long)]
    pub mixed_languages: bool,
}

impl OfflineRules {
    /// The constraints, defaults filled in.
    fn constraints(&self) -> CohortConstraints {
        CohortConstraints {
            min_size: self.min.unwrap_or(DEFAULT_MIN),
            max_size: self.max.unwrap_or(DEFAULT_MAX),
            max_company_share: self.company_cap.unwrap_or(DEFAULT_COMPANY_CAP),
            single_language: !self.mixed_languages,
            max_tz_spread_hours: self.max_tz_spread.unwrap_or(DEFAULT_TZ_SPREAD),
            target_cohorts: self.cohorts,
        }
    }

    /// The first flag given, if any (refused beside `--program`).
    fn first_given(&self) -> Option<&'static str> {
        [
            ("--min", self.min.is_some()),
            ("--max", self.max.is_some()),
            ("--company-cap", self.company_cap.is_some()),
            ("--max-tz-spread", self.max_tz_spread.is_some()),
            ("--cohorts", self.cohorts.is_some()),
            ("--mixed-languages", self.mixed_languages),
        ]
        .into_iter()
        .find_map(|(flag, given)| given.then_some(flag))
    }
}

/// Runs a cohorts subcommand.
pub fn run(command: CohortsCommand) -> Result<(), BoxError> {
    match command {
        CohortsCommand::Form(args) => match args.input.clone() {
            Some(input) => form(offline(args, input)?),
            None => form_in_service(args),
        },
        CohortsCommand::Export(args) => super::learners::export_cohorts(args),
        CohortsCommand::FormOffline(args) => form(args),
    }
}

/// `spoc cohorts form`: one FormCohorts call (a spinner while the service
/// searches), then the cohorts and the balance report; the CSV is written
/// only when the call succeeded.
fn form_in_service(args: ServiceFormArgs) -> Result<(), BoxError> {
    let program = args
        .program
        .clone()
        .ok_or("--program (or --input for the offline mode) is required")?;
    // The offline flags are refused here, not by clap: its `requires` is
    // not checked beside `--program`, which conflicts with `--input`.
    if let Some(flag) = args.offline.first_given() {
        return Err(format!(
            "{flag} belongs to the offline mode (--input F --output F); a service forms cohorts with the program's own rules"
        )
        .into());
    }
    let request = pb::FormCohortsRequest {
        program_id: program.clone(),
        objective: match args.objective {
            ObjectiveArg::Balanced => pb::CohortObjective::Balanced,
            ObjectiveArg::Leveled => pb::CohortObjective::Leveled,
        } as i32,
        seed: args.seed,
        dry_run: args.dry_run,
    };
    let response = runtime()?.block_on(async move {
        let mut client = Service::connect(&args.client).await?.cohorts();
        let spinner = output::spinner(&format!("forming the cohorts of {program}"));
        let response = client.form_cohorts(request).await;
        spinner.finish_and_clear();
        response
            .map(tonic::Response::into_inner)
            .map_err(|s| BoxError::from(describe(&format!("forming cohorts of {program:?}"), &s)))
    })?;
    if let Some(path) = &args.output {
        let text = assignment_csv(response.cohorts.iter().flat_map(|c| {
            c.learner_ids
                .iter()
                .map(move |l| (l.as_str(), c.id.as_str()))
        }));
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    match args.format {
        OutputFormat::Json => output::print_json(&formation_json(&response)),
        OutputFormat::Table => output::write_out(&formation_text(&response)),
    }
    Ok(())
}

/// A formation for scripts: the response's fields by name.
pub fn formation_json(r: &pb::FormCohortsResponse) -> serde_json::Value {
    let report = r.report.as_ref().map(|q| {
        serde_json::json!({
            "objective": output::enum_name(
                pb::CohortObjective::try_from(q.objective)
                    .unwrap_or_default()
                    .as_str_name(),
                "COHORT_OBJECTIVE_",
            ),
            "learner_count": q.learner_count,
            "new_cohort_count": q.new_cohort_count,
            "locked_cohort_count": q.locked_cohort_count,
            "min_cohort_size": q.min_cohort_size,
            "max_cohort_size": q.max_cohort_size,
            "objective_value": q.objective_value,
            "random_objective_value": q.random_objective_value,
            "max_company_share": q.max_company_share,
            "company_share_cap": q.company_share_cap,
            "skills": q.skills.iter().map(|s| serde_json::json!({
                "skill_id": s.skill_id,
                "mean_gap": s.mean_gap,
                "sd_gap": s.sd_gap,
                "random_mean_gap": s.random_mean_gap,
                "random_sd_gap": s.random_sd_gap,
            })).collect::<Vec<_>>(),
        })
    });
    serde_json::json!({
        "program_id": r.program_id,
        "version": r.version,
        "dry_run": r.dry_run,
        "cohorts": r.cohorts.iter().map(cohort_json).collect::<Vec<_>>(),
        "report": report,
    })
}

/// One cohort for scripts.
pub fn cohort_json(c: &pb::Cohort) -> serde_json::Value {
    serde_json::json!({
        "id": c.id,
        "program_id": c.program_id,
        "size": c.size,
        "company_count": c.company_count,
        "language": c.language,
        "locked": c.locked,
        "version": c.version,
        "learner_ids": c.learner_ids,
        "violations": c.violations.iter().map(|v| serde_json::json!({
            "rule": v.rule,
            "message": v.message,
            "learner_ids": v.learner_ids,
            "company_ids": v.company_ids,
            "value": v.value,
            "limit": v.limit,
        })).collect::<Vec<_>>(),
    })
}

/// A formation for people: the cohorts, then the balance report next to
/// what drawing lots would have given.
pub fn formation_text(r: &pb::FormCohortsResponse) -> String {
    let mut out = String::new();
    let mut cohorts = output::table(["cohort", "learners", "companies", "language", "locked"]);
    for c in &r.cohorts {
        cohorts.add_row(vec![
            c.id.clone(),
            c.size.to_string(),
            c.company_count.to_string(),
            c.language.clone(),
            if c.locked { "yes" } else { "" }.to_string(),
        ]);
    }
    output::align_right(&mut cohorts, &[1, 2]);
    out.push_str(&format!(
        "{} cohorts of program {} (version {}{})\n{cohorts}\n",
        r.cohorts.len(),
        r.program_id,
        r.version,
        if r.dry_run {
            ", dry run: nothing stored"
        } else {
            ""
        }
    ));
    // Locked cohorts kept while breaking a rule (tightened since, or a
    // member's language or time zone changed).
    for v in r.cohorts.iter().flat_map(|c| &c.violations) {
        out.push_str(&format!("breaks {}: {}\n", v.rule, v.message));
    }
    if let Some(q) = &r.report {
        out.push_str(&balance_text(q));
    }
    out
}

/// The balance report as a table: formed vs random for the objective, the
/// per-skill gaps (mean over skills and worst skill) and the company share.
pub fn balance_text(q: &pb::CohortQualityReport) -> String {
    let n = q.skills.len().max(1) as f64;
    let mean = |f: fn(&pb::SkillSpread) -> f64| q.skills.iter().map(f).sum::<f64>() / n;
    let worst = q
        .skills
        .iter()
        .max_by(|a, b| a.mean_gap.total_cmp(&b.mean_gap));
    let mut t = output::table(["balance", "formed", "random draw"]);
    t.add_row(vec![
        "objective (lower is better)".to_string(),
        format!("{:.2}", q.objective_value),
        format!("{:.2}", q.random_objective_value),
    ]);
    t.add_row(vec![
        "gap of cohort mean mastery (avg over skills)".to_string(),
        format!("{:.3}", mean(|s| s.mean_gap)),
        format!("{:.3}", mean(|s| s.random_mean_gap)),
    ]);
    t.add_row(vec![
        "gap of cohort SD (avg over skills)".to_string(),
        format!("{:.3}", mean(|s| s.sd_gap)),
        format!("{:.3}", mean(|s| s.random_sd_gap)),
    ]);
    if let Some(w) = worst {
        t.add_row(vec![
            format!("gap of cohort mean on worst skill ({})", w.skill_id),
            format!("{:.3}", w.mean_gap),
            format!("{:.3}", w.random_mean_gap),
        ]);
    }
    t.add_row(vec![
        format!(
            "largest company share (cap {:.0} %)",
            100.0 * q.company_share_cap
        ),
        format!("{:.0} %", 100.0 * q.max_company_share),
        String::new(),
    ]);
    output::align_right(&mut t, &[1, 2]);
    let objective = output::enum_name(
        pb::CohortObjective::try_from(q.objective)
            .unwrap_or_default()
            .as_str_name(),
        "COHORT_OBJECTIVE_",
    );
    format!(
        "balance report ({objective}): {} learners in {} new cohorts of {} to {}, {} locked kept\n{t}\n",
        q.learner_count,
        q.new_cohort_count,
        q.min_cohort_size,
        q.max_cohort_size,
        q.locked_cohort_count
    )
}

/// `spoc cohorts form --input F` as the `form-offline` it is.
fn offline(args: ServiceFormArgs, input: PathBuf) -> Result<FormArgs, BoxError> {
    Ok(FormArgs {
        input,
        output: args
            .output
            .ok_or("--output is required with --input: where to write learner_id,cohort_id")?,
        rules: args.offline,
        objective: args.objective,
        seed: args.seed,
    })
}

/// `spoc cohorts form-offline` (or `form --input`): read, form, write;
/// the report on stderr.
fn form(args: FormArgs) -> Result<(), BoxError> {
    let input = std::fs::File::open(&args.input)
        .map_err(|e| format!("cannot open {}: {e}", args.input.display()))?;
    let mut output = Vec::new();
    let options = OfflineOptions {
        constraints: args.rules.constraints(),
        objective: match args.objective {
            ObjectiveArg::Balanced => Objective::Balanced,
            ObjectiveArg::Leveled => Objective::Leveled,
        },
        seed: args.seed,
        reference_instant: jiff::Timestamp::now(),
    };
    let (report, unplaced) = run_offline(std::io::BufReader::new(input), &mut output, &options)?;
    // Written only once formation succeeded: a refusal leaves no half file.
    std::fs::write(&args.output, output)
        .map_err(|e| format!("cannot write {}: {e}", args.output.display()))?;
    eprintln!("{report}");
    for u in &unplaced {
        eprintln!("unplaced {}: {}", u.id, u.reason);
    }
    Ok(())
}
