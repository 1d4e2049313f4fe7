//! The fitted model as a serialisable value, and the `spoc fit` command body.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::csv::{CsvError, read_csv_sized};
use super::cv::{CvReport, cross_validate};
use super::data::{DataSummary, Dataset};
use super::em::{self, FitError, SkillFit, fit_layout};
use super::variants::{FitOptions, Variants};
use crate::domain::bkt::{Belief, BktParams, Observation};

/// Version of the model file layout; bump on any incompatible change so a
/// server can refuse a file it would misread.
pub const FORMAT_VERSION: u32 = 1;

/// Key used in per-template / per-group maps for attempts without one.
pub const NONE_KEY: &str = "(none)";

/// Fitted parameters of one skill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkillModel {
    /// Summary parameters: with a multi variant, the count-weighted average
    /// of the per-template / per-group values (also the fallback for a
    /// template or group the fit never saw).
    pub params: BktParams,
    /// Learn rate per template (multilearn only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub learns: BTreeMap<String, f64>,
    /// Guess per item template (multigs only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub guesses: BTreeMap<String, f64>,
    /// Slip per item template (multigs only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slips: BTreeMap<String, f64>,
    /// Prior per group (multiprior only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub priors: BTreeMap<String, f64>,
    /// Log-likelihood of this skill's data under these parameters.
    pub log_likelihood: f64,
    /// EM iterations of the winning restart.
    pub iterations: usize,
    /// Whether the winning restart met the tolerance (rather than the cap).
    pub converged: bool,
    /// Attempts this skill was fitted on.
    pub attempts: usize,
}

impl SkillModel {
    /// The plain BKT parameters to use for an attempt of `template` by a
    /// learner of `group`: what the tracing code feeds to
    /// [`BktParams::update`] (with multilearn, `learn` is the rate of the
    /// transition *after* this attempt).
    pub fn params_for(&self, template: Option<&str>, group: Option<&str>) -> BktParams {
        let pick = |map: &BTreeMap<String, f64>, key: Option<&str>, dflt: f64| {
            map.get(key.unwrap_or(NONE_KEY)).copied().unwrap_or(dflt)
        };
        let p = self.params;
        BktParams {
            prior: pick(&self.priors, group, p.prior),
            learn: pick(&self.learns, template, p.learn),
            guess: pick(&self.guesses, template, p.guess),
            slip: pick(&self.slips, template, p.slip),
            forget: p.forget,
        }
    }
}

/// A fitted model: what `spoc fit` saves and the server loads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedModel {
    /// [`FORMAT_VERSION`] at the time of writing.
    pub format_version: u32,
    /// Options of the fit (variants, restarts, tolerance, seed, bounds, pins).
    pub options: FitOptions,
    /// Parameters per skill name.
    pub skills: BTreeMap<String, SkillModel>,
    /// Total log-likelihood of the data (sum over skills).
    pub log_likelihood: f64,
    /// What the fit saw.
    pub data: DataSummary,
    /// Cross-validated scores, when computed.
    pub cv: Option<CvReport>,
    /// Wall-clock seconds of the fit itself (not the CV).
    pub fit_seconds: f64,
}

impl FittedModel {
    /// Per module, the mean of its fitted learn rates over the skills it
    /// was seen with (multilearn fits; empty otherwise): what the policy
    /// reads as the module's prior rate.
    pub fn module_learn_rates(&self) -> BTreeMap<String, f64> {
        let mut rates: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        for skill in self.skills.values() {
            for (module, rate) in &skill.learns {
                if module != NONE_KEY {
                    let entry = rates.entry(module.clone()).or_default();
                    entry.0 += rate;
                    entry.1 += 1;
                }
            }
        }
        rates
            .into_iter()
            .map(|(m, (sum, n))| (m, sum / n as f64))
            .collect()
    }
}

fn name_of(ds: &Dataset, id: Option<u32>, table: fn(&Dataset, u32) -> &str) -> String {
    id.map_or_else(|| NONE_KEY.to_owned(), |i| table(ds, i).to_owned())
}

fn skill_model(ds: &Dataset, fit: &SkillFit) -> SkillModel {
    let (prior, learn, forget, guess, slip) = fit.base();
    let v = fit.shape.v;
    let per =
        |split: bool, names: &[Option<u32>], values: &[f64], table| -> BTreeMap<String, f64> {
            if !split {
                return BTreeMap::new();
            }
            names
                .iter()
                .zip(values)
                .map(|(n, v)| (name_of(ds, *n, table), *v))
                .collect()
        };
    let t = &fit.tmpl_names;
    SkillModel {
        params: BktParams {
            prior,
            learn,
            guess,
            slip,
            forget,
        },
        learns: per(v.multilearn, t, &fit.theta.learn, Dataset::template_name),
        guesses: per(v.multigs, t, &fit.theta.guess, Dataset::template_name),
        slips: per(v.multigs, t, &fit.theta.slip, Dataset::template_name),
        priors: per(
            v.multiprior,
            &fit.group_names,
            &fit.theta.prior,
            Dataset::group_name,
        ),
        log_likelihood: fit.ll,
        iterations: fit.iterations,
        converged: fit.converged,
        attempts: fit.attempts,
    }
}

/// Fits BKT to every skill of `ds` by EM (see [`FitOptions`]); no CV.
pub fn fit(ds: &Dataset, opts: &FitOptions) -> Result<FittedModel, FitError> {
    em::validate(opts)?;
    if ds.is_empty() {
        return Err(FitError::Empty);
    }
    let start = Instant::now();
    let fits = fit_layout(ds, &ds.layout(None), opts);
    let skills: BTreeMap<String, SkillModel> = fits
        .iter()
        .flatten()
        .map(|f| (ds.skill_name(f.skill).to_owned(), skill_model(ds, f)))
        .collect();
    let fit_seconds = start.elapsed().as_secs_f64();
    Ok(FittedModel {
        format_version: FORMAT_VERSION,
        options: opts.clone(),
        log_likelihood: skills.values().map(|s| s.log_likelihood).sum(),
        skills,
        data: ds.summary(),
        cv: None,
        fit_seconds,
    })
}

/// Builds the model file: a fit on all of `ds` plus, when `folds >= 2`, its
/// `folds`-fold cross-validation split by learner with `cv_seed`.
pub fn build_model(
    ds: &Dataset,
    opts: &FitOptions,
    folds: usize,
    cv_seed: u64,
) -> Result<FittedModel, FitError> {
    let mut model = fit(ds, opts)?;
    if folds >= 2 {
        model.cv = Some(cross_validate(ds, opts, folds, cv_seed)?);
    }
    Ok(model)
}

/// P(correct) of every attempt of `ds` (in row order) before it is observed,
/// from that learner's earlier attempts of the same skill: pyBKT's `predict`.
/// A skill the model does not know is traced with [`BktParams::default`].
pub fn predict(model: &FittedModel, ds: &Dataset) -> Vec<f64> {
    let mut state: std::collections::HashMap<(u32, u32), Belief> = Default::default();
    let skills: Vec<Option<&SkillModel>> = (0..ds.num_skills())
        .map(|s| model.skills.get(ds.skill_name(s as u32)))
        .collect();
    ds.attempts()
        .iter()
        .map(|a| {
            let template = a.template().map(|t| ds.template_name(t));
            let group = a.group().map(|g| ds.group_name(g));
            let p = skills[a.skill as usize]
                .map_or_else(BktParams::default, |m| m.params_for(template, group));
            let known = state
                .entry((a.learner, a.skill))
                .or_insert_with(|| p.prior_belief());
            let pc = p.p_correct(*known);
            *known = p.update(
                *known,
                Observation {
                    correct: a.correct,
                    score: None,
                },
            );
            pc
        })
        .collect()
}

/// How `spoc fit` prints its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned human-readable table.
    #[default]
    Table,
    /// `{"skills": {..}, "cv": {"auc", "rmse"}, "fit_seconds"}`.
    Json,
}

/// Options of `spoc fit`, one field per flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliOptions {
    /// `--multilearn`: one learn rate per `template_id`.
    pub multilearn: bool,
    /// `--forgets`: fit P(F).
    pub forgets: bool,
    /// `--multigs`: one guess/slip per `template_id`.
    pub multigs: bool,
    /// `--multiprior`: one prior per `group_id`.
    pub multiprior: bool,
    /// `--folds K`: cross-validation folds; below 2, no CV (`"cv": null`).
    pub folds: usize,
    /// `--format`.
    pub format: OutputFormat,
    /// `--restarts`: random restarts per skill.
    pub restarts: usize,
    /// `--seed`: seed of the restarts and of the fold split.
    pub seed: u64,
    /// Size of the input in bytes, when known (a file): the rows are
    /// allocated once, from it, instead of growing with the reading.
    pub input_bytes: Option<u64>,
}

impl Default for CliOptions {
    fn default() -> Self {
        Self {
            multilearn: false,
            forgets: false,
            multigs: false,
            multiprior: false,
            folds: 5,
            format: OutputFormat::Table,
            restarts: 5,
            seed: 42,
            input_bytes: None,
        }
    }
}

/// Why `spoc fit` failed.
#[derive(Debug, Error)]
pub enum CliError {
    /// The CSV was refused.
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// The fit was refused.
    #[error(transparent)]
    Fit(#[from] FitError),
    /// The output could not be written.
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
    /// JSON serialisation failed.
    #[error("cannot serialise output: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Serialize)]
struct JsonSkill<'a> {
    prior: f64,
    learn: f64,
    guess: f64,
    slip: f64,
    forget: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    learns: Option<&'a BTreeMap<String, f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    guesses: Option<&'a BTreeMap<String, f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    slips: Option<&'a BTreeMap<String, f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priors: Option<&'a BTreeMap<String, f64>>,
}

#[derive(Serialize)]
struct JsonCv {
    auc: f64,
    rmse: f64,
}

#[derive(Serialize)]
struct JsonOut<'a> {
    skills: BTreeMap<&'a str, JsonSkill<'a>>,
    cv: Option<JsonCv>,
    fit_seconds: f64,
}

impl CliOptions {
    /// The fit options these flags stand for.
    pub fn fit_options(&self) -> FitOptions {
        FitOptions {
            variants: Variants {
                forgets: self.forgets,
                multilearn: self.multilearn,
                multigs: self.multigs,
                multiprior: self.multiprior,
            },
            restarts: self.restarts,
            seed: self.seed,
            ..FitOptions::default()
        }
    }
}

/// Body of `spoc fit`: reads a pyBKT-layout CSV, fits, cross-validates and
/// prints the parameters and CV scores to `out`. Returns the model so the
/// caller can also save it.
pub fn run_cli(
    input: impl Read,
    options: &CliOptions,
    mut out: impl Write,
) -> Result<FittedModel, CliError> {
    let ds = read_csv_sized(input, options.input_bytes)?;
    let model = build_model(&ds, &options.fit_options(), options.folds, options.seed)?;
    match options.format {
        OutputFormat::Json => {
            let v = model.options.variants;
            let json = JsonOut {
                skills: model
                    .skills
                    .iter()
                    .map(|(name, s)| {
                        let skill = JsonSkill {
                            prior: s.params.prior,
                            learn: s.params.learn,
                            guess: s.params.guess,
                            slip: s.params.slip,
                            forget: s.params.forget,
                            learns: v.multilearn.then_some(&s.learns),
                            guesses: v.multigs.then_some(&s.guesses),
                            slips: v.multigs.then_some(&s.slips),
                            priors: v.multiprior.then_some(&s.priors),
                        };
                        (name.as_str(), skill)
                    })
                    .collect(),
                cv: model.cv.as_ref().map(|c| JsonCv {
                    auc: c.auc,
                    rmse: c.rmse,
                }),
                fit_seconds: model.fit_seconds,
            };
            serde_json::to_writer_pretty(&mut out, &json)?;
            writeln!(out)?;
        }
        OutputFormat::Table => write_table(&model, &mut out)?,
    }
    Ok(model)
}

fn write_table(model: &FittedModel, out: &mut impl Write) -> std::io::Result<()> {
    let width = model
        .skills
        .keys()
        .map(|k| k.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    writeln!(
        out,
        "{:<width$}  {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>5}",
        "skill", "prior", "learn", "guess", "slip", "forget", "attempts", "iters"
    )?;
    for (name, s) in &model.skills {
        let p = s.params;
        writeln!(
            out,
            "{name:<width$}  {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>7.4} {:>9} {:>5}",
            p.prior, p.learn, p.guess, p.slip, p.forget, s.attempts, s.iterations
        )?;
        for (label, map) in [
            ("learns", &s.learns),
            ("guesses", &s.guesses),
            ("slips", &s.slips),
            ("priors", &s.priors),
        ] {
            if !map.is_empty() {
                let items: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v:.4}")).collect();
                writeln!(out, "{:width$}    {label}: {}", "", items.join(" "))?;
            }
        }
    }
    let d = &model.data;
    writeln!(
        out,
        "data: {} attempts, {} learners, {} skills; log-likelihood {:.2}",
        d.attempts, d.learners, d.skills, model.log_likelihood
    )?;
    match &model.cv {
        Some(cv) => writeln!(
            out,
            "cv ({} folds by learner): auc {:.4}  rmse {:.4}  accuracy {:.4}",
            cv.folds, cv.auc, cv.rmse, cv.accuracy
        )?,
        None => writeln!(out, "cv: not run")?,
    }
    writeln!(out, "fit: {:.3} s", model.fit_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fit::AttemptRecord;
    use crate::domain::fit::synth::{SynthSpec, generate, write_csv};

    fn csv(spec: &SynthSpec) -> Vec<u8> {
        let (ds, _) = generate(spec);
        let mut buf = Vec::new();
        write_csv(&ds, &mut buf).unwrap();
        buf
    }

    fn assert_close(a: &serde_json::Value, b: &serde_json::Value) {
        use serde_json::Value;
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                assert!((x - y).abs() <= 1e-12 * x.abs().max(1.0), "{x} != {y}");
            }
            (Value::Object(x), Value::Object(y)) => {
                assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>());
                x.iter().for_each(|(k, v)| assert_close(v, &y[k]));
            }
            (Value::Array(x), Value::Array(y)) => {
                assert_eq!(x.len(), y.len());
                x.iter().zip(y).for_each(|(v, w)| assert_close(v, w));
            }
            _ => assert_eq!(a, b),
        }
    }

    /// Learners of graded ability (each answers right with their own
    /// probability, from 0.3 to 0.95): data BKT can only approximate, where
    /// its likelihood favours explaining knowledge as guessing. The mastery
    /// bounds keep the fit out of that corner; pyBKT's bounds do not.
    #[test]
    fn mastery_bounds_keep_guess_and_slip_plausible() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut ds = Dataset::new();
        for l in 0..400 {
            let learner = format!("u{l}");
            let ability: f64 = rng.random_range(0.3..0.95);
            for skill in ["a", "b"] {
                for _ in 0..12 {
                    ds.push(AttemptRecord {
                        learner: &learner,
                        skill,
                        correct: rng.random_bool(ability),
                        template: None,
                        group: None,
                        timestamp: None,
                    });
                }
            }
        }
        let wide = fit(&ds, &FitOptions::default()).unwrap();
        assert!(
            wide.skills.values().any(|s| s.params.guess > 0.3),
            "the test needs data that pulls the guess up: {:?}",
            wide.skills
        );
        let options = FitOptions::for_mastery(Variants::default(), 5, 42);
        let bounded = fit(&ds, &options).unwrap();
        for (skill, model) in &bounded.skills {
            let p = model.params;
            assert!(p.guess <= 0.3 + 1e-9, "{skill}: {p:?}");
            assert!(p.slip <= 0.1 + 1e-9, "{skill}: {p:?}");
        }
        assert!(bounded.log_likelihood <= wide.log_likelihood + 1e-6);
    }

    #[test]
    fn json_output_has_the_agreed_shape() {
        let spec = SynthSpec {
            learners: 60,
            skills: 2,
            attempts_per_skill: 8,
            templates_per_skill: 2,
            ..SynthSpec::default()
        };
        let input = csv(&spec);
        let opts = CliOptions {
            multilearn: true,
            folds: 3,
            format: OutputFormat::Json,
            ..CliOptions::default()
        };
        let mut out = Vec::new();
        run_cli(&input[..], &opts, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let top: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(top, ["cv", "fit_seconds", "skills"]);
        let skill = &v["skills"]["s0"];
        for k in ["prior", "learn", "guess", "slip", "forget"] {
            assert!(skill[k].as_f64().is_some(), "{k}");
        }
        assert_eq!(skill["learns"].as_object().unwrap().len(), 2);
        assert!(v["cv"]["auc"].as_f64().unwrap() > 0.5);
        assert!(v["cv"]["rmse"].as_f64().is_some());

        // Without multilearn there is no `learns`, and the table prints.
        let opts = CliOptions {
            folds: 0,
            format: OutputFormat::Json,
            ..CliOptions::default()
        };
        let mut out = Vec::new();
        run_cli(&input[..], &opts, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v["skills"]["s0"].get("learns").is_none());
        assert!(v["cv"].is_null());
        let mut out = Vec::new();
        run_cli(&input[..], &CliOptions::default(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("cv (5 folds by learner): auc"), "{text}");
    }

    #[test]
    fn model_round_trips_through_json_and_predicts_like_cv() {
        let (ds, _) = generate(&SynthSpec {
            learners: 50,
            skills: 2,
            attempts_per_skill: 6,
            templates_per_skill: 3,
            ..SynthSpec::default()
        });
        let opts = FitOptions {
            variants: Variants {
                multilearn: true,
                multigs: true,
                forgets: true,
                multiprior: false,
            },
            ..FitOptions::default()
        };
        let model = build_model(&ds, &opts, 2, 1).unwrap();
        let text = serde_json::to_string(&model).unwrap();
        let back: FittedModel = serde_json::from_str(&text).unwrap();
        // serde_json may round the last bit of a float: compare with tolerance.
        assert_close(
            &serde_json::to_value(&back).unwrap(),
            &serde_json::to_value(&model).unwrap(),
        );
        assert_eq!(back.format_version, FORMAT_VERSION);
        let preds = predict(&model, &ds);
        assert_eq!(preds.len(), ds.len());
        assert!(preds.iter().all(|p| (0.0..=1.0).contains(p)));
        // The public predict and the fast internal one agree.
        let fits = fit_layout(&ds, &ds.layout(None), &opts);
        let mut pairs = Vec::new();
        for (d, f) in ds.layout(None).iter().zip(&fits) {
            em::predict_layout(
                d,
                opts.variants,
                &f.as_ref().unwrap().align_to(d),
                &mut pairs,
            );
        }
        let mut a: Vec<f64> = pairs.iter().map(|p| p.0).collect();
        let mut b = preds.clone();
        a.sort_by(f64::total_cmp);
        b.sort_by(f64::total_cmp);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-9);
        }
    }
}
