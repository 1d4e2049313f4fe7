//! Synthetic attempts drawn from known BKT parameters.
//!
//! Why: the only way to know a fitter is right is to give it data whose
//! truth is known and check it recovers it; the same data, written as CSV,
//! feeds the side-by-side benchmark against pyBKT.

use std::collections::BTreeMap;
use std::io::{self, Write};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::data::{AttemptRecord, Dataset};
use super::report::FittedModel;
use crate::domain::bkt::BktParams;

/// Size and shape of a synthetic data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthSpec {
    /// Number of learners.
    pub learners: usize,
    /// Number of skills (`s0`, `s1`, ...).
    pub skills: usize,
    /// Attempts of every learner on every skill.
    pub attempts_per_skill: usize,
    /// Templates per skill (`s0_t0`, ...), drawn uniformly per attempt; 0
    /// for no `template_id`.
    pub templates_per_skill: usize,
    /// Give each template its own learn rate (the multilearn truth).
    pub multilearn: bool,
    /// Draw a non-zero forget rate.
    pub forgets: bool,
    /// Groups (`g0`, ...; learner `uN` is in group `N % groups`), each with
    /// its own prior (the multiprior truth); 0 for no `group_id`.
    pub groups: usize,
    /// Seed of parameters and answers.
    pub seed: u64,
}

impl Default for SynthSpec {
    fn default() -> Self {
        Self {
            learners: 100,
            skills: 1,
            attempts_per_skill: 20,
            templates_per_skill: 0,
            multilearn: false,
            forgets: false,
            groups: 0,
            seed: 7,
        }
    }
}

impl SynthSpec {
    /// Total attempts the spec generates.
    pub fn attempts(&self) -> usize {
        self.learners * self.skills * self.attempts_per_skill
    }
}

/// The true parameters of one synthetic skill.
#[derive(Debug, Clone, PartialEq)]
pub struct TrueSkill {
    /// Parameters (with multilearn, `learn` is the mean of `learns`).
    pub params: BktParams,
    /// Learn rate per template (multilearn only).
    pub learns: BTreeMap<String, f64>,
    /// Prior per group (when the spec has groups; `params.prior` is their mean).
    pub priors: BTreeMap<String, f64>,
}

/// Truth of a synthetic data set, per skill name.
pub type SynthTruth = BTreeMap<String, TrueSkill>;

/// Draws parameters, then answers, learner by learner (interleaving skills).
pub fn generate(spec: &SynthSpec) -> (Dataset, SynthTruth) {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut truth = SynthTruth::new();
    let mut tables = Vec::new();
    for s in 0..spec.skills {
        let mut u = |lo: f64, hi: f64| lo + (hi - lo) * rng.random::<f64>();
        let mut params = BktParams {
            prior: u(0.1, 0.5),
            learn: u(0.05, 0.3),
            guess: u(0.1, 0.3),
            slip: u(0.05, 0.2),
            forget: if spec.forgets { u(0.01, 0.06) } else { 0.0 },
        };
        let names: Vec<String> = (0..spec.templates_per_skill)
            .map(|t| format!("s{s}_t{t}"))
            .collect();
        let rates: Vec<f64> = names
            .iter()
            .map(|_| {
                if spec.multilearn {
                    u(0.05, 0.35)
                } else {
                    params.learn
                }
            })
            .collect();
        let mut learns = BTreeMap::new();
        if spec.multilearn && !names.is_empty() {
            params.learn = rates.iter().sum::<f64>() / rates.len() as f64;
            learns = names.iter().cloned().zip(rates.iter().copied()).collect();
        }
        let group_priors: Vec<f64> = (0..spec.groups).map(|_| u(0.05, 0.7)).collect();
        let mut priors = BTreeMap::new();
        if !group_priors.is_empty() {
            params.prior = group_priors.iter().sum::<f64>() / group_priors.len() as f64;
            priors = (0..spec.groups)
                .map(|g| format!("g{g}"))
                .zip(group_priors.iter().copied())
                .collect();
        }
        truth.insert(
            format!("s{s}"),
            TrueSkill {
                params,
                learns,
                priors,
            },
        );
        tables.push((format!("s{s}"), params, names, rates, group_priors));
    }
    let mut ds = Dataset::new();
    let mut known = vec![false; spec.skills];
    for l in 0..spec.learners {
        let learner = format!("u{l}");
        let group = (spec.groups > 0).then(|| format!("g{}", l % spec.groups));
        for (s, (_, p, _, _, gp)) in tables.iter().enumerate() {
            let prior = if gp.is_empty() {
                p.prior
            } else {
                gp[l % gp.len()]
            };
            known[s] = rng.random::<f64>() < prior;
        }
        for _ in 0..spec.attempts_per_skill {
            for (s, (skill, p, names, rates, _)) in tables.iter().enumerate() {
                let t = (!names.is_empty()).then(|| rng.random_range(0..names.len()));
                let correct = if known[s] {
                    rng.random::<f64>() >= p.slip
                } else {
                    rng.random::<f64>() < p.guess
                };
                ds.push(AttemptRecord {
                    learner: &learner,
                    skill,
                    correct,
                    template: t.map(|t| names[t].as_str()),
                    group: group.as_deref(),
                    timestamp: None,
                });
                let learn = t.map_or(p.learn, |t| rates[t]);
                known[s] = if known[s] {
                    rng.random::<f64>() >= p.forget
                } else {
                    rng.random::<f64>() < learn
                };
            }
        }
    }
    (ds, truth)
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Writes `ds` in pyBKT's CSV layout (`order_id` = row number), with
/// `template_id` / `group_id` columns when any row has one.
pub fn write_csv(ds: &Dataset, out: impl Write) -> io::Result<()> {
    let mut out = io::BufWriter::new(out);
    let has_t = ds.attempts().iter().any(|a| a.template().is_some());
    let has_g = ds.attempts().iter().any(|a| a.group().is_some());
    write!(out, "order_id,user_id,skill_name,correct")?;
    if has_t {
        write!(out, ",template_id")?;
    }
    if has_g {
        write!(out, ",group_id")?;
    }
    writeln!(out)?;
    for (i, a) in ds.attempts().iter().enumerate() {
        write!(
            out,
            "{},{},{},{}",
            i + 1,
            quote(ds.learner_name(a.learner)),
            quote(ds.skill_name(a.skill)),
            u8::from(a.correct)
        )?;
        if has_t {
            let t = a.template().map(|t| quote(ds.template_name(t)));
            write!(out, ",{}", t.unwrap_or_default())?;
        }
        if has_g {
            let g = a.group().map(|g| quote(ds.group_name(g)));
            write!(out, ",{}", g.unwrap_or_default())?;
        }
        writeln!(out)?;
    }
    out.flush()
}

/// The columns of the ASSISTments 2009 skill-builder file, as pyBKT reads it.
const ASSISTMENTS_COLUMNS: &str = "order_id,assignment_id,user_id,assistment_id,problem_id,\
original,correct,attempt_count,ms_first_response,tutor_mode,answer_type,sequence_id,\
student_class_id,position,type,base_sequence_id,skill_id,skill_name,teacher_id,school_id,\
hint_count,hint_total,overlap_time,template_id,answer_id,answer_text,first_action,\
bottom_hint,opportunity,opportunity_original";

/// Writes `ds` as the ASSISTments 2009 skill-builder file pyBKT reads
/// (30 columns, quoted multi-word skill names, numeric ids): the shape of
/// the real file, for measuring `spoc fit` on it. Learners are numbered,
/// skills get a descriptive name, every other column a plausible filler.
pub fn write_assistments_csv(ds: &Dataset, out: impl Write) -> io::Result<()> {
    let mut out = io::BufWriter::with_capacity(1 << 16, out);
    writeln!(out, "{ASSISTMENTS_COLUMNS}")?;
    for (i, a) in ds.attempts().iter().enumerate() {
        let n = i as u64;
        let skill = a.skill;
        let template = a.template().map_or(30_000 + skill, |t| 40_000 + t);
        writeln!(
            out,
            "{order},{assignment},{user},{assistment},{problem},1,{correct},1,{ms},tutor,\
             algebra,{sequence},{class},{position},MasteryAssignment,{sequence},{skill_id},\
             \"Equation Solving, Skill {skill} of the Unit\",{teacher},{school},0,3,{overlap},\
             {template},{answer},{answer_text},0,,{opportunity},{opportunity}",
            order = 20_000_000 + n,
            assignment = 270_000 + skill * 7,
            user = 64_000 + a.learner,
            assistment = 33_000 + n % 9_000,
            problem = 51_000 + n % 26_000,
            correct = u8::from(a.correct),
            ms = 8_000 + (n * 37) % 40_000,
            sequence = 5_900 + skill,
            class = 11_000 + a.learner % 300,
            position = 1 + n % 40,
            skill_id = 10 + skill,
            teacher = 22_000 + a.learner % 150,
            school = 73 + a.learner % 60,
            overlap = 8_000 + (n * 53) % 60_000,
            answer = 176_000 + n % 5_000,
            answer_text = (n * 7) % 100,
            opportunity = 1 + n % 25,
        )?;
    }
    out.flush()
}

/// Largest absolute gap between a fitted and a true parameter (prior,
/// learn, guess, slip, forget, and per-template learns when both have them);
/// infinite when a skill is missing from the model.
pub fn max_error(truth: &SynthTruth, model: &FittedModel) -> f64 {
    let mut worst = 0.0f64;
    for (name, t) in truth {
        let Some(m) = model.skills.get(name) else {
            return f64::INFINITY;
        };
        let (a, b) = (t.params, m.params);
        // With groups the fitted summary prior is weighted by sequences, the
        // true one is a plain mean over equal-sized groups: compare per group.
        let prior_gap = if t.priors.is_empty() {
            (a.prior, b.prior)
        } else {
            (0.0, 0.0)
        };
        for (x, y) in [
            prior_gap,
            (a.learn, b.learn),
            (a.guess, b.guess),
            (a.slip, b.slip),
            (a.forget, b.forget),
        ] {
            worst = worst.max((x - y).abs());
        }
        for (k, v) in t.learns.iter().chain(&t.priors) {
            if let Some(f) = m.learns.get(k).or_else(|| m.priors.get(k)) {
                worst = worst.max((v - f).abs());
            }
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fit::csv::read_csv;
    use crate::domain::fit::report::fit;
    use crate::domain::fit::variants::{FitOptions, Variants};

    #[test]
    fn csv_round_trip_keeps_every_attempt() {
        let spec = SynthSpec {
            learners: 5,
            skills: 2,
            attempts_per_skill: 3,
            templates_per_skill: 2,
            ..SynthSpec::default()
        };
        let (ds, _) = generate(&spec);
        let mut buf = Vec::new();
        write_csv(&ds, &mut buf).unwrap();
        let back = read_csv(&buf[..]).unwrap();
        assert_eq!(back.attempts(), ds.attempts());
    }

    #[test]
    fn the_assistments_layout_reads_back() {
        let spec = SynthSpec {
            learners: 4,
            skills: 3,
            attempts_per_skill: 2,
            ..SynthSpec::default()
        };
        let (ds, _) = generate(&spec);
        let mut buf = Vec::new();
        write_assistments_csv(&ds, &mut buf).unwrap();
        let back = read_csv(&buf[..]).unwrap();
        assert_eq!(back.len(), ds.len());
        assert_eq!(back.num_learners(), 4);
        assert_eq!(back.num_skills(), 3);
        let corrects = |d: &Dataset| d.attempts().iter().map(|a| a.correct).collect::<Vec<_>>();
        assert_eq!(corrects(&back), corrects(&ds));
    }

    #[test]
    fn recovers_known_parameters() {
        // 40k attempts: fast enough in debug builds, tight enough to fail
        // if the E-step or M-step were wrong.
        let spec = SynthSpec {
            learners: 2000,
            skills: 1,
            attempts_per_skill: 20,
            seed: 3,
            ..SynthSpec::default()
        };
        let (ds, truth) = generate(&spec);
        let model = fit(&ds, &FitOptions::default()).unwrap();
        let err = max_error(&truth, &model);
        assert!(
            err < 0.04,
            "max error {err}: {truth:?} vs {:?}",
            model.skills
        );
    }

    #[test]
    fn recovers_per_template_learn_rates() {
        let spec = SynthSpec {
            learners: 3000,
            skills: 1,
            attempts_per_skill: 15,
            templates_per_skill: 3,
            multilearn: true,
            seed: 11,
            ..SynthSpec::default()
        };
        let (ds, truth) = generate(&spec);
        let opts = FitOptions {
            variants: Variants {
                multilearn: true,
                ..Variants::default()
            },
            ..FitOptions::default()
        };
        let model = fit(&ds, &opts).unwrap();
        assert_eq!(model.skills["s0"].learns.len(), 3);
        let err = max_error(&truth, &model);
        assert!(
            err < 0.06,
            "max error {err}: {truth:?} vs {:?}",
            model.skills
        );
    }

    #[test]
    fn recovers_per_group_priors() {
        let spec = SynthSpec {
            learners: 3000,
            skills: 1,
            attempts_per_skill: 15,
            groups: 3,
            seed: 5,
            ..SynthSpec::default()
        };
        let (ds, truth) = generate(&spec);
        let opts = FitOptions {
            variants: Variants {
                multiprior: true,
                ..Variants::default()
            },
            ..FitOptions::default()
        };
        let model = fit(&ds, &opts).unwrap();
        assert_eq!(model.skills["s0"].priors.len(), 3);
        let err = max_error(&truth, &model);
        assert!(
            err < 0.06,
            "max error {err}: {truth:?} vs {:?}",
            model.skills
        );
    }
}
