//! The demo world: a catalog, two programs, companies, learners and a few
//! weeks of their quiz and module history, drawn from a seed.
//!
//! Pure: no I/O, no gRPC. The catalog's prerequisite DAG and its modules
//! come from the simulator ([`World::generate`]), renamed into a data
//! literacy curriculum; each learner's hidden knowledge, speed, slip and
//! guess come from the simulator's learners. What happens over the weeks is
//! played here with timestamps: learners work in sessions on working days,
//! follow their program's skills in prerequisite order (what a plain LMS
//! course does), pass a skill's quiz or retry with another module, and
//! some of them struggle, forget, or stop coming. Only what an LMS would
//! send (attempts, module events) leaves this file; the hidden truth stays.

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::domain::catalog::{Format, Item, Module, Skill};
use crate::domain::learner::{CohortRules, Learner, Micros, Program, RiskRules};
use crate::domain::remediation::language_matches;
use crate::domain::risk::signals::MICROS_PER_DAY;
use crate::domain::simulator::world::SimLearner;
use crate::domain::simulator::{SimOptions, World};

/// Skill names, from basics to advanced: the simulator's skill `i` (whose
/// prerequisites are among the ten before it) becomes `SKILL_NAMES[i]`.
pub const SKILL_NAMES: [&str; 30] = [
    "Spreadsheet basics",
    "Cell references",
    "Formulas",
    "Sorting and filtering",
    "Conditional formatting",
    "Lookup functions",
    "Text functions",
    "Date functions",
    "Charts",
    "Pivot tables",
    "Data cleaning",
    "Data validation",
    "Descriptive statistics",
    "Dashboards",
    "Power Query",
    "Relational data",
    "SQL SELECT",
    "SQL WHERE",
    "SQL joins",
    "SQL aggregation",
    "Sampling",
    "Hypothesis tests",
    "Correlation",
    "Linear regression",
    "Forecasting",
    "Visualisation design",
    "Data storytelling",
    "Data privacy (GDPR)",
    "Macros and automation",
    "Python for analysts",
];

/// The companies: (id, name, weight in the population).
pub const COMPANIES: [(&str, &str, f64); 12] = [
    ("northwind", "Northwind Retail", 1.4),
    ("aubepine", "Aubépine Assurances", 1.3),
    ("blue-harbour", "Blue Harbour Bank", 1.2),
    ("cimentis", "Cimentis", 1.1),
    ("kestrel", "Kestrel Engineering", 1.0),
    ("lumiere", "Lumière Énergie", 1.0),
    ("tulip", "Tulip Logistics", 0.9),
    ("vallee-sante", "Vallée Santé", 0.9),
    ("fjord", "Fjord Analytics", 0.8),
    ("rhone-banque", "Banque du Rhône", 0.8),
    ("oakridge", "Oakridge Foods", 0.8),
    ("helvetia-pharma", "Helvetia Pharma", 0.8),
];

/// Share of French speakers (the others speak English).
const FRENCH_SHARE: f64 = 0.45;

/// Time zones per language, with weights: all within an hour, so cohorts
/// split by language only.
const FR_ZONES: [(&str, f64); 3] = [
    ("Europe/Paris", 0.7),
    ("Europe/Brussels", 0.2),
    ("Europe/Luxembourg", 0.1),
];
const EN_ZONES: [(&str, f64); 3] = [
    ("Europe/London", 0.6),
    ("Europe/Dublin", 0.25),
    ("Europe/Amsterdam", 0.15),
];

const FIRST_FR: [&str; 12] = [
    "Camille", "Louis", "Chloé", "Hugo", "Léa", "Jules", "Manon", "Lucas", "Inès", "Nathan",
    "Sarah", "Théo",
];
const LAST_FR: [&str; 12] = [
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Simon", "Laurent",
];
const FIRST_EN: [&str; 12] = [
    "Olivia", "Jack", "Amelia", "Harry", "Isla", "Oscar", "Emily", "George", "Ava", "Noah",
    "Sophie", "Leo",
];
const LAST_EN: [&str; 12] = [
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Murphy",
    "Walsh", "Evans", "Kelly",
];

/// Quiz items per skill after a module or in a review.
const QUIZ_ITEMS: u32 = 3;
/// Placement items per skill on day 0.
const PLACEMENT_ITEMS: u32 = 2;
/// Distinct items in each skill's bank.
const ITEM_BANK: u32 = 8;

/// How a learner behaves over the weeks (hidden from the engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Persona {
    /// Works most working days and learns at their own pace.
    Steady,
    /// Works less often and learns slower.
    Slow,
    /// Comes often but learns slowly and fails a lot.
    Struggling,
    /// Starts well, then stops coming.
    Stalling,
}

/// What the demo draws.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoOptions {
    /// Learners (the 600 by default).
    pub learners: usize,
    /// Weeks of history before now.
    pub weeks: u32,
    /// Seed of every draw.
    pub seed: u64,
    /// The present: the history ends before it.
    pub now: Micros,
}

/// One learner of the demo and the program they follow.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoLearner {
    /// The learner as the LMS knows them.
    pub learner: Learner,
    /// The program they are enrolled in.
    pub program_id: String,
    /// How they behave (for picking whom to show; never sent).
    pub persona: Persona,
    /// Skills of their path passed so far (by the LMS's quiz rule).
    pub passed: usize,
    /// Skills on their path (program skills and their prerequisites).
    pub path: usize,
}

/// A quiz answer as the LMS sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoAttempt {
    /// Unique attempt id.
    pub id: String,
    /// Who answered.
    pub learner_id: String,
    /// The quiz item.
    pub item_id: String,
    /// The skill it tests.
    pub skill_id: String,
    /// Whether the answer was right.
    pub correct: bool,
    /// When.
    pub at: Micros,
    /// Seconds spent on the item.
    pub seconds: i64,
}

/// A module event as the LMS sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoActivity {
    /// Unique event id.
    pub id: String,
    /// Who.
    pub learner_id: String,
    /// Which module.
    pub module_id: String,
    /// In which program.
    pub program_id: String,
    /// Completed (else started).
    pub completed: bool,
    /// When.
    pub at: Micros,
    /// Minutes spent in the module (0 when it starts).
    pub minutes: i64,
}

/// Everything the demo loads.
#[derive(Debug, Clone)]
pub struct DemoWorld {
    /// The catalog's skills.
    pub skills: Vec<Skill>,
    /// The catalog's modules.
    pub modules: Vec<Module>,
    /// The catalog's item bank: [`ITEM_BANK`] questions per skill, the ones
    /// the answers are on (so that checks and certification ask items).
    pub items: Vec<Item>,
    /// The two programs.
    pub programs: Vec<Program>,
    /// Company id → display name.
    pub companies: BTreeMap<String, String>,
    /// The learners, in id order.
    pub learners: Vec<DemoLearner>,
    /// Day-0 placement answers.
    pub placement: Vec<DemoAttempt>,
    /// Answers after placement, by learner then time.
    pub attempts: Vec<DemoAttempt>,
    /// Module events, by learner then time.
    pub activities: Vec<DemoActivity>,
    /// Midnight UTC of the programs' first day.
    pub start: Micros,
}

/// The two programs: (id, name, first skill, last skill exclusive).
const PROGRAMS: [(&str, &str, usize, usize); 2] = [
    (
        "excel-essentials",
        "Excel essentials for business teams",
        0,
        15,
    ),
    (
        "data-analysis",
        "Data analysis with SQL and statistics",
        12,
        30,
    ),
];

/// A skill name as an id: `Pivot tables` → `pivot-tables`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// The format as a module title says it in the module's language.
fn format_word(format: Format, french: bool) -> &'static str {
    match (format, french) {
        (Format::Video, false) => "Video",
        (Format::Video, true) => "Vidéo",
        (Format::Document, _) => "Document",
        (Format::Quiz, _) => "Quiz",
        (Format::Exercise, false) => "Exercise",
        (Format::Exercise, true) => "Exercice",
        (Format::SeriousGame, _) => "Serious game",
        (Format::Workshop, false) => "Workshop",
        (Format::Workshop, true) => "Atelier",
        (Format::LiveSession, false) => "Live session",
        (Format::LiveSession, true) => "Classe virtuelle",
        (Format::Podcast, _) => "Podcast",
    }
}

fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xde30_de30);
    rng.set_stream(stream);
    rng
}

fn weighted<'a, T>(rng: &mut ChaCha8Rng, items: &'a [(T, f64)]) -> &'a T {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random_range(0.0..total);
    for (item, w) in items {
        if x < *w {
            return item;
        }
        x -= w;
    }
    &items[items.len() - 1].0
}

/// Day of the week of a time, Monday = 0.
fn weekday(at: Micros) -> i64 {
    (at.div_euclid(MICROS_PER_DAY) + 3).rem_euclid(7)
}

/// Minutes as microseconds.
fn minutes(m: f64) -> Micros {
    (m * 60_000_000.0) as Micros
}

/// Builds the whole demo world. Deterministic for given options.
pub fn generate(options: &DemoOptions) -> DemoWorld {
    let sim_options = SimOptions {
        seed: options.seed,
        skills: SKILL_NAMES.len(),
        modules: 120,
        world: crate::domain::simulator::WorldKind::Bkt,
        ..SimOptions::default()
    };
    let world = World::generate(&sim_options);
    let ids: Vec<String> = SKILL_NAMES.iter().map(|n| slug(n)).collect();
    let (skills, modules) = catalog(&world, &ids);
    let start = options.now.div_euclid(MICROS_PER_DAY) * MICROS_PER_DAY
        - i64::from(options.weeks.max(1)) * 7 * MICROS_PER_DAY;
    let programs = programs(&ids, start);
    let paths = paths(&world);
    let company_weights: Vec<(usize, f64)> = COMPANIES
        .iter()
        .enumerate()
        .map(|(i, c)| (i, c.2))
        .collect();
    let items = item_bank(&skills);
    let mut out = DemoWorld {
        skills,
        modules,
        items,
        programs: Vec::new(),
        companies: COMPANIES
            .iter()
            .map(|(id, name, _)| (id.to_string(), name.to_string()))
            .collect(),
        learners: Vec::with_capacity(options.learners),
        placement: Vec::new(),
        attempts: Vec::new(),
        activities: Vec::new(),
        start,
    };
    let width = options.learners.to_string().len().max(4);
    for i in 0..options.learners {
        let mut r = rng(options.seed, i as u64);
        let (learner, persona, program) = draw_learner(&mut r, i, width, &company_weights);
        let mut sim = world.learner(&sim_options, i);
        sim.speed *= match persona {
            Persona::Steady => 1.0,
            Persona::Slow => 0.6,
            Persona::Struggling => 0.3,
            Persona::Stalling => 0.8,
        };
        if persona == Persona::Struggling {
            sim.slip = sim.slip.max(0.2);
        }
        let mut play = Play {
            world: &world,
            ids: &ids,
            modules: &out.modules,
            learner: &learner,
            program_id: PROGRAMS[program].0,
            sim,
            rng: r,
            now: options.now,
            attempts: 0,
            events: 0,
            placement: Vec::new(),
            history: Vec::new(),
            activities: Vec::new(),
        };
        let passed = play.run(&paths[program], persona, start, options.weeks);
        out.placement.extend(play.placement);
        out.attempts.extend(play.history);
        out.activities.extend(play.activities);
        out.learners.push(DemoLearner {
            learner,
            program_id: PROGRAMS[program].0.to_string(),
            persona,
            passed,
            path: paths[program].len(),
        });
    }
    out.programs = programs;
    out
}

/// The catalog: the simulator's skills under the demo's names, and its
/// modules titled by format and skills.
fn catalog(world: &World, ids: &[String]) -> (Vec<Skill>, Vec<Module>) {
    let rename = |sim_id: &str| ids[world.skill_index[sim_id]].clone();
    let skills: Vec<Skill> = world
        .skill_ids
        .iter()
        .enumerate()
        .map(|(i, sim_id)| Skill {
            id: ids[i].clone(),
            name: SKILL_NAMES[i].to_string(),
            prerequisite_ids: world.skills[sim_id]
                .prerequisite_ids
                .iter()
                .map(|p| rename(p))
                .collect(),
        })
        .collect();
    let modules: Vec<Module> = world
        .modules
        .iter()
        .map(|m| {
            let french = m.language.starts_with("fr");
            let names: Vec<&str> = m
                .skill_ids
                .iter()
                .map(|s| SKILL_NAMES[world.skill_index[s]])
                .collect();
            Module {
                external_ids: Vec::new(),
                id: m.id.clone(),
                title: format!("{}: {}", format_word(m.format, french), names.join(" + ")),
                skill_ids: m.skill_ids.iter().map(|s| rename(s)).collect(),
                format: m.format,
                duration_minutes: m.duration_minutes,
                language: m.language.clone(),
            }
        })
        .collect();
    (skills, modules)
}

/// [`ITEM_BANK`] questions on each skill, `{skill}-q0` upwards: the ids the
/// answers carry ([`Play::attempt`]).
fn item_bank(skills: &[Skill]) -> Vec<Item> {
    skills
        .iter()
        .flat_map(|skill| {
            (0..ITEM_BANK).map(move |k| Item {
                id: item_id(&skill.id, k),
                skill_ids: vec![skill.id.clone()],
                title: format!("{}: question {}", skill.name, k + 1),
                external_ids: Vec::new(),
                pass_mark: None,
            })
        })
        .collect()
}

/// The id of question `k` of `skill`'s bank.
fn item_id(skill: &str, k: u32) -> String {
    format!("{skill}-q{k}")
}

/// The demo's programs, all started at `start`.
fn programs(ids: &[String], start: Micros) -> Vec<Program> {
    PROGRAMS
        .iter()
        .map(|(id, name, lo, hi)| Program {
            external_ids: Vec::new(),
            id: id.to_string(),
            name: name.to_string(),
            skill_ids: ids[*lo..*hi].to_vec(),
            cohort_rules: CohortRules {
                min_size: 15,
                max_size: 30,
                ..CohortRules::default()
            },
            start_date: Some(start),
            // No planned end: the demo simulates no calendar, so the pace
            // signal (program skills covered by a completed module against
            // the time elapsed) stays neutral.
            end_date: None,
            // The program's own thresholds: a quiz right after a lucky
            // placement guess moves P(mastered) by 0.3, so only a fall of
            // 0.45 from the peak (forgetting) alerts; one failed 3-item quiz
            // is not yet a blocking point, five failures in a row are.
            risk_rules: RiskRules {
                mastery_drop: Some(0.45),
                blocking_failures: Some(5),
                ..RiskRules::default()
            },
        })
        .collect()
}

/// Each program's path: its skills and their prerequisites, in
/// topological order (a learner cannot skip what a skill builds on).
fn paths(world: &World) -> Vec<Vec<usize>> {
    PROGRAMS
        .iter()
        .map(|(_, _, lo, hi)| {
            let mut closure: BTreeSet<usize> = (*lo..*hi).collect();
            let mut stack: Vec<usize> = closure.iter().copied().collect();
            while let Some(s) = stack.pop() {
                for &p in &world.prereqs[s] {
                    if closure.insert(p) {
                        stack.push(p);
                    }
                }
            }
            world
                .topo
                .iter()
                .map(|id| world.skill_index[id])
                .filter(|s| closure.contains(s))
                .collect()
        })
        .collect()
}

/// Learner `i` as drawn from `r`: who they are, their persona and the
/// index of their program (the draws in a fixed order, so a seed gives
/// the same world).
fn draw_learner(
    r: &mut ChaCha8Rng,
    i: usize,
    width: usize,
    company_weights: &[(usize, f64)],
) -> (Learner, Persona, usize) {
    let french = r.random_bool(FRENCH_SHARE);
    let company = *weighted(r, company_weights);
    let zone = if french {
        *weighted(r, &FR_ZONES)
    } else {
        *weighted(r, &EN_ZONES)
    };
    let (first, last) = if french {
        (FIRST_FR, LAST_FR)
    } else {
        (FIRST_EN, LAST_EN)
    };
    let display_name = format!(
        "{} {}",
        first[r.random_range(0..first.len())],
        last[r.random_range(0..last.len())]
    );
    let persona = match r.random_range(0..100) {
        0..55 => Persona::Steady,
        55..75 => Persona::Slow,
        75..90 => Persona::Struggling,
        _ => Persona::Stalling,
    };
    let program = usize::from(r.random_bool(0.5));
    let learner = Learner {
        id: format!("l{i:0width$}"),
        company_id: COMPANIES[company].0.to_string(),
        language: if french { "fr" } else { "en" }.to_string(),
        time_zone: zone.to_string(),
        display_name,
    };
    (learner, persona, program)
}

/// What a learner knows and has shown, as the weeks go (by skill index).
struct Progress {
    /// Skills the learner knows now.
    known: Vec<bool>,
    /// Skills whose last quiz (or the placement) they passed.
    passed: Vec<bool>,
    /// Skills passed at placement.
    placed: Vec<bool>,
    /// Times each module was started.
    tries: BTreeMap<usize, u32>,
}

/// One learner's weeks, played forward.
struct Play<'a> {
    world: &'a World,
    ids: &'a [String],
    modules: &'a [Module],
    learner: &'a Learner,
    program_id: &'a str,
    sim: SimLearner,
    rng: ChaCha8Rng,
    now: Micros,
    attempts: usize,
    events: usize,
    placement: Vec<DemoAttempt>,
    history: Vec<DemoAttempt>,
    activities: Vec<DemoActivity>,
}

impl Play<'_> {
    /// Plays placement then the sessions; returns the skills passed.
    fn run(&mut self, path: &[usize], persona: Persona, start: Micros, weeks: u32) -> usize {
        let known: Vec<bool> = self.sim.theta.iter().map(|t| *t >= 0.0).collect();
        let passed = self.placement_quiz(path, &known, start);
        let mut progress = Progress {
            known,
            placed: passed.clone(),
            passed,
            tries: BTreeMap::new(),
        };
        let days = i64::from(weeks.max(1)) * 7;
        let stop_day = match persona {
            Persona::Stalling => self.rng.random_range(3..(days / 2).max(4)),
            _ => days + 1,
        };
        let (p_day, forget) = match persona {
            Persona::Steady => (0.55, 0.001),
            Persona::Slow => (0.3, 0.006),
            Persona::Struggling => (0.5, 0.006),
            Persona::Stalling => (0.45, 0.003),
        };
        let course = self.course(path);
        for day in 1..days.min(stop_day) {
            let day_start = start + day * MICROS_PER_DAY;
            let p = if weekday(day_start) >= 5 {
                p_day * 0.15
            } else {
                p_day
            };
            if !self.rng.random_bool(p) {
                continue;
            }
            // Some skills fade between sessions.
            let pr = &mut progress;
            for s in 0..pr.known.len() {
                if pr.known[s] && pr.passed[s] && self.rng.random_bool(forget) {
                    pr.known[s] = false;
                }
            }
            if !self.session(path, persona, &course, &mut progress, day_start) {
                break;
            }
        }
        path.iter().filter(|&&s| progress.passed[s]).count()
    }

    /// Day 0: a placement quiz on every skill of the path; which skills the
    /// learner passed.
    fn placement_quiz(&mut self, path: &[usize], known: &[bool], start: Micros) -> Vec<bool> {
        let mut passed = vec![false; known.len()];
        let mut t = start + minutes(60.0 * self.rng.random_range(8.0..11.0));
        for &s in path {
            let mut right = 0;
            for _ in 0..PLACEMENT_ITEMS {
                let correct = self.answer(known[s]);
                right += u32::from(correct);
                let a = self.attempt(s, correct, t);
                self.placement.push(a);
                t += minutes(self.rng.random_range(0.5..2.0));
            }
            passed[s] = right == PLACEMENT_ITEMS;
        }
        passed
    }

    /// The modules in the learner's language that teach a skill of `path`.
    fn course(&self, path: &[usize]) -> Vec<usize> {
        let on_path: BTreeSet<&str> = path.iter().map(|&s| self.ids[s].as_str()).collect();
        (0..self.modules.len())
            .filter(|&m| {
                let module = &self.modules[m];
                language_matches(&self.learner.language, &module.language)
                    && module
                        .skill_ids
                        .iter()
                        .any(|s| on_path.contains(s.as_str()))
            })
            .collect()
    }

    /// One study session on the day that starts at `day_start`: sometimes a
    /// review quiz, then modules and their quizzes. `false` once the
    /// learner reaches the present or has nothing left to take: the play
    /// ends there.
    fn session(
        &mut self,
        path: &[usize],
        persona: Persona,
        course: &[usize],
        pr: &mut Progress,
        day_start: Micros,
    ) -> bool {
        let mut t = day_start + minutes(60.0 * self.rng.random_range(7.0..17.0));
        // Sometimes the LMS opens with a review of a skill passed in
        // the course (not at placement).
        let reviewed: Vec<usize> = path
            .iter()
            .copied()
            .filter(|&s| pr.passed[s] && !pr.placed[s])
            .collect();
        if !reviewed.is_empty() && self.rng.random_bool(0.2) {
            let s = reviewed[self.rng.random_range(0..reviewed.len())];
            for _ in 0..QUIZ_ITEMS {
                if t >= self.now - minutes(10.0) {
                    return false;
                }
                let correct = self.answer(pr.known[s]);
                let a = self.attempt(s, correct, t);
                self.history.push(a);
                t += minutes(self.rng.random_range(1.0..3.0));
            }
        }
        let count = match persona {
            Persona::Steady => self.rng.random_range(2..=3),
            _ => self.rng.random_range(1..=2),
        };
        for _ in 0..count {
            // The next skill of the path not passed yet; once all are,
            // the course's modules in the learner's language not done.
            let m = match path.iter().find(|&&s| !pr.passed[s]) {
                Some(&target) => self.pick_module(target, &pr.tries),
                None => match course.iter().find(|m| !pr.tries.contains_key(m)) {
                    Some(&m) => m,
                    None => return false,
                },
            };
            *pr.tries.entry(m).or_default() += 1;
            let module = &self.modules[m];
            let spent = f64::from(module.duration_minutes) * self.rng.random_range(0.7..1.4);
            let done_at = t + minutes(spent);
            if done_at >= self.now - minutes(10.0) {
                return false;
            }
            self.activity(m, false, t, 0);
            let abandon = match persona {
                Persona::Stalling => 0.2,
                Persona::Struggling => 0.1,
                _ => 0.03,
            };
            if self.rng.random_bool(abandon) {
                break;
            }
            self.activity(m, true, done_at, spent.round() as i64);
            // Learning happens only where the prerequisites are known.
            let p_learn = self.world.p_learn(&self.sim, m);
            let taught = self.world.module_skills[m].clone();
            for &s in &taught {
                let ready = self.world.prereqs[s].iter().all(|&q| pr.known[q]);
                if !pr.known[s] && ready && self.rng.random_bool(p_learn) {
                    pr.known[s] = true;
                }
            }
            t = done_at + minutes(1.0);
            for &s in &taught {
                let mut right = 0;
                for _ in 0..QUIZ_ITEMS {
                    let correct = self.answer(pr.known[s]);
                    right += u32::from(correct);
                    let a = self.attempt(s, correct, t);
                    self.history.push(a);
                    t += minutes(self.rng.random_range(1.0..3.0));
                }
                if right + 1 >= QUIZ_ITEMS {
                    pr.passed[s] = true;
                }
            }
            t += minutes(self.rng.random_range(2.0..10.0));
        }
        true
    }

    /// A module teaching `skill`, in the learner's language when there is
    /// one, least tried first (an LMS's "try another module").
    fn pick_module(&mut self, skill: usize, tries: &BTreeMap<usize, u32>) -> usize {
        let id = &self.ids[skill];
        let teaching: Vec<usize> = (0..self.modules.len())
            .filter(|&m| self.modules[m].skill_ids.contains(id))
            .collect();
        let in_language: Vec<usize> = teaching
            .iter()
            .copied()
            .filter(|&m| language_matches(&self.learner.language, &self.modules[m].language))
            .collect();
        let pool = if in_language.is_empty() {
            teaching
        } else {
            in_language
        };
        let fewest = pool
            .iter()
            .map(|m| tries.get(m).copied().unwrap_or(0))
            .min()
            .unwrap_or(0);
        let least: Vec<usize> = pool
            .into_iter()
            .filter(|m| tries.get(m).copied().unwrap_or(0) == fewest)
            .collect();
        least[self.rng.random_range(0..least.len())]
    }

    /// An answer: right with 1 − slip when the skill is known, with guess
    /// otherwise.
    fn answer(&mut self, known: bool) -> bool {
        if known {
            !self.rng.random_bool(self.sim.slip)
        } else {
            self.rng.random_bool(self.sim.guess)
        }
    }

    fn attempt(&mut self, skill: usize, correct: bool, at: Micros) -> DemoAttempt {
        self.attempts += 1;
        let skill_id = self.ids[skill].clone();
        DemoAttempt {
            id: format!("{}-a{:04}", self.learner.id, self.attempts),
            learner_id: self.learner.id.clone(),
            item_id: item_id(&skill_id, self.rng.random_range(0..ITEM_BANK)),
            skill_id,
            correct,
            at,
            seconds: self.rng.random_range(30..150),
        }
    }

    fn activity(&mut self, m: usize, completed: bool, at: Micros, minutes: i64) {
        self.events += 1;
        self.activities.push(DemoActivity {
            id: format!("{}-e{:04}", self.learner.id, self.events),
            learner_id: self.learner.id.clone(),
            module_id: self.modules[m].id.clone(),
            program_id: self.program_id.to_string(),
            completed,
            at,
            minutes,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> DemoOptions {
        DemoOptions {
            learners: 120,
            weeks: 4,
            seed: 7,
            now: 1_790_000_000_000_000,
        }
    }

    #[test]
    fn world_has_the_promised_shape_and_is_deterministic() {
        let a = generate(&small());
        let b = generate(&small());
        assert_eq!(a.skills.len(), 30);
        assert_eq!(a.modules.len(), 120);
        assert_eq!(a.programs.len(), 2);
        assert_eq!(a.learners.len(), 120);
        assert_eq!(a.attempts, b.attempts);
        assert_eq!(a.activities, b.activities);
        let languages: BTreeSet<&str> = a
            .modules
            .iter()
            .map(|m| m.language.split('-').next().unwrap())
            .collect();
        assert_eq!(languages, BTreeSet::from(["en", "fr"]));
        let companies: BTreeSet<&str> = a
            .learners
            .iter()
            .map(|l| l.learner.company_id.as_str())
            .collect();
        assert_eq!(companies.len(), 12);
        let formats: BTreeSet<Format> = a.modules.iter().map(|m| m.format).collect();
        assert!(formats.len() >= 6);
        crate::domain::catalog::check_graph(
            &a.skills.iter().map(|s| (s.id.clone(), s.clone())).collect(),
        )
        .unwrap();
    }

    #[test]
    fn history_lies_in_the_past_weeks_in_learner_order() {
        let o = small();
        let w = generate(&o);
        assert!(
            w.attempts.len() > 20 * w.learners.len(),
            "{}",
            w.attempts.len()
        );
        for a in w.placement.iter().chain(&w.attempts) {
            assert!(a.at >= w.start && a.at < o.now, "{a:?}");
        }
        for pair in w.attempts.windows(2) {
            if pair[0].learner_id == pair[1].learner_id {
                assert!(pair[0].at <= pair[1].at);
            }
        }
        let ids: BTreeSet<&str> = w.attempts.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids.len(), w.attempts.len(), "attempt ids are unique");
        for p in &w.programs {
            assert_eq!(p.start_date, Some(w.start), "{p:?}");
        }
        // Some learners stopped coming: their last event is a week old.
        let last: BTreeMap<&str, Micros> = w
            .activities
            .iter()
            .map(|a| (a.learner_id.as_str(), a.at))
            .collect();
        assert!(last.values().any(|&t| o.now - t > 7 * MICROS_PER_DAY));
    }
}
