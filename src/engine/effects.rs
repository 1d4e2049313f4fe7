//! Crediting modules with the answers that follow them, and the evidence
//! certification counts.
//!
//! When a learner completes a module, a *window* opens for each skill it
//! teaches, holding P(mastered) just before it. The next answers on that
//! skill fill it; at [`EVIDENCE_ANSWERS`] answers it closes and credits the
//! module (`domain::remediation::effects`). Only answers on the module's own
//! skills, given after it, count: an answer on skill B after a module on
//! skill A credits nothing to A. When several modules on a skill were done
//! before the same answers, each is credited with a share (`1 / k`). A
//! module's `tried_by` counts learners: only a learner's first go at it
//! (the store is asked when the window opens).
//!
//! Windows live in memory (a restart forgets the few open ones; the
//! population keeps bringing evidence), at most [`WINDOWS_PER_LEARNER`] per
//! learner; the effects themselves are stored.

use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::Engine;
use crate::domain::activity::StoredActivity;
use crate::domain::learner::Micros;
use crate::domain::mastery::Attempt;
use crate::domain::remediation::effects::{
    EVIDENCE_ANSWERS, EffectEvidence, Effects, ModuleEffect,
};
use crate::domain::remediation::{
    AnswerSeen, EVIDENCE_DEPTH, ModuleOutcome, SkillEvidence, latest_module_on,
};
use crate::error::Result;
use crate::store::Store;

/// Open windows kept per learner (the oldest go first).
pub const WINDOWS_PER_LEARNER: usize = 8;

/// A completed module waiting for the answers on one of its skills.
#[derive(Debug, Clone)]
struct Window {
    module: String,
    skill: String,
    before: f64,
    /// (right, wrong) among the latest answers before the module.
    level: (u32, u32),
    completed_at: Micros,
    /// Whether the learner had not completed the module before.
    first_go: bool,
    right: u32,
    wrong: u32,
}

impl Window {
    fn answers(&self) -> u32 {
        self.right + self.wrong
    }
}

/// The population's module effects and the open windows.
#[derive(Default)]
pub struct EffectsState {
    table: RwLock<Effects>,
    windows: Mutex<HashMap<String, Vec<Window>>>,
}

impl EffectsState {
    /// Loads the stored effects.
    pub fn load(store: &Store) -> Result<Self> {
        Ok(Self {
            table: RwLock::new(store.all_effects()?),
            windows: Mutex::new(HashMap::new()),
        })
    }

    /// The effects, for a recommendation (held for microseconds).
    pub fn read(&self) -> RwLockReadGuard<'_, Effects> {
        self.table.read()
    }

    fn windows(&self) -> MutexGuard<'_, HashMap<String, Vec<Window>>> {
        self.windows.lock()
    }

    /// Forgets the open windows of erased learners.
    pub fn forget<'a>(&self, learners: impl IntoIterator<Item = &'a str>) {
        let mut windows = self.windows();
        for learner in learners {
            windows.remove(learner);
        }
    }
}

/// A window that closed, to be credited.
struct Closed {
    module: String,
    skill: String,
    before: f64,
    level: (u32, u32),
    first_go: bool,
    right: u32,
    wrong: u32,
    weight: f64,
}

/// Closes the windows of `learner` on `skill` that have their answers (or
/// all of them, `force`), sharing the credit between modules that saw the
/// same answers.
fn close(list: &mut Vec<Window>, skill: &str, force: bool, out: &mut Vec<Closed>) {
    let ready = |w: &Window| w.skill == skill && (w.answers() >= EVIDENCE_ANSWERS || force);
    let closing: Vec<Window> = list.iter().filter(|w| ready(w)).cloned().collect();
    list.retain(|w| !ready(w));
    let with_answers: Vec<&Window> = closing.iter().filter(|w| w.answers() > 0).collect();
    let k = with_answers.len().max(1) as f64;
    for w in with_answers {
        out.push(Closed {
            module: w.module.clone(),
            skill: w.skill.clone(),
            before: w.before,
            level: w.level,
            first_go: w.first_go,
            right: w.right,
            wrong: w.wrong,
            weight: 1.0 / k,
        });
    }
}

impl Engine {
    /// Opens windows for newly completed modules (live ingestion only), and
    /// counts the answers already stored after them (an xAPI batch stores
    /// its answers before its module events).
    pub(crate) fn open_effect_windows(&self, fresh: &[StoredActivity]) -> Result<()> {
        let mut closed = Vec::new();
        for done in fresh {
            let event = &done.activity;
            if event.kind != crate::domain::activity::ActivityKind::Completed
                || done.mastery_before.is_empty()
            {
                continue;
            }
            let first_go = !self.store.completed_before(
                &event.learner_id,
                &event.module_id,
                event.occurred_at,
            )?;
            for (skill, before) in &done.mastery_before {
                let observations = self.store.observations(&event.learner_id, skill)?;
                let (earlier, later): (Vec<_>, Vec<_>) = observations
                    .iter()
                    .partition(|(at, _)| at.occurred_at <= event.occurred_at);
                let tally = |answers: &mut dyn Iterator<Item = bool>| {
                    answers.fold(
                        (0, 0),
                        |(r, w), right| {
                            if right { (r + 1, w) } else { (r, w + 1) }
                        },
                    )
                };
                let n = EVIDENCE_ANSWERS as usize;
                let level = tally(&mut earlier.iter().rev().take(n).map(|(_, o)| o.correct));
                let (right, wrong) = tally(&mut later.iter().take(n).map(|(_, o)| o.correct));
                let window = Window {
                    module: event.module_id.clone(),
                    skill: skill.clone(),
                    before: *before,
                    level,
                    completed_at: event.occurred_at,
                    first_go,
                    right,
                    wrong,
                };
                let mut windows = self.effects.windows();
                let list = windows.entry(event.learner_id.clone()).or_default();
                // A new module on the skill ends the older windows on it:
                // the answers after it belong to both only if none came in
                // between.
                if list.iter().any(|w| w.skill == *skill && w.answers() > 0) {
                    close(list, skill, true, &mut closed);
                }
                list.push(window);
                close(list, skill, false, &mut closed);
                if list.len() > WINDOWS_PER_LEARNER {
                    let drop = list.len() - WINDOWS_PER_LEARNER;
                    list.drain(..drop);
                }
                if list.is_empty() {
                    windows.remove(&event.learner_id);
                }
            }
        }
        self.credit(closed)
    }

    /// Counts live answers into the open windows of their learners.
    pub(crate) fn effect_answers(&self, attempts: &[Attempt]) -> Result<()> {
        let mut closed = Vec::new();
        {
            let mut windows = self.effects.windows();
            if windows.is_empty() {
                return Ok(());
            }
            for attempt in attempts {
                let Some(list) = windows.get_mut(&attempt.learner_id) else {
                    continue;
                };
                let mut touched: BTreeSet<String> = BTreeSet::new();
                for w in list.iter_mut() {
                    if w.completed_at < attempt.occurred_at
                        && attempt.skill_ids.contains(&w.skill)
                        && w.answers() < EVIDENCE_ANSWERS
                    {
                        if attempt.correct {
                            w.right += 1;
                        } else {
                            w.wrong += 1;
                        }
                        touched.insert(w.skill.clone());
                    }
                }
                for skill in &touched {
                    close(list, skill, false, &mut closed);
                }
                if list.is_empty() {
                    windows.remove(&attempt.learner_id);
                }
            }
        }
        self.credit(closed)
    }

    /// Folds closed windows into the effects and stores the pairs changed.
    fn credit(&self, closed: Vec<Closed>) -> Result<()> {
        if closed.is_empty() {
            return Ok(());
        }
        let params = self.params();
        let threshold = self.mastery_threshold();
        let mut changed: BTreeMap<(String, String), ModuleEffect> = BTreeMap::new();
        {
            let mut table = self.effects.table.write();
            for c in closed {
                let p = params.for_skill(&c.skill);
                let evidence = EffectEvidence {
                    before: c.before,
                    right_before: c.level.0,
                    wrong_before: c.level.1,
                    right: c.right,
                    wrong: c.wrong,
                    guess: p.guess,
                    slip: p.slip,
                    weight: c.weight,
                    first_go: c.first_go,
                };
                let effect = table.observe(&c.module, &c.skill, &evidence, threshold);
                changed.insert((c.module, c.skill), effect.clone());
            }
        }
        for ((module, skill), effect) in changed {
            self.store.put_effect(&module, &skill, &effect)?;
        }
        Ok(())
    }

    /// What the learner answered on every skill they answered (see
    /// [`SkillEvidence::from_answers`]), with `history` (their latest
    /// modules, oldest first) telling which answers came after each skill's
    /// latest module.
    pub(crate) fn learner_evidence(
        &self,
        learner: &str,
        history: &[ModuleOutcome],
    ) -> Result<BTreeMap<String, SkillEvidence>> {
        let answers = self.store.learner_answers(learner)?;
        Ok(answers
            .into_iter()
            .map(|(skill, rows)| {
                let tail = &rows[rows.len().saturating_sub(EVIDENCE_DEPTH)..];
                let seen: Vec<AnswerSeen<'_>> = tail
                    .iter()
                    .map(|a| (a.at.occurred_at, a.observation.correct, &*a.item_id))
                    .collect();
                let evidence =
                    SkillEvidence::from_answers(&seen, latest_module_on(history, &skill));
                (skill, evidence)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::activity::{Activity, ActivityKind};
    use crate::domain::catalog::{Format, Module, Skill};
    use crate::domain::mastery::test_attempt;
    use crate::engine::testing;

    fn module(id: &str, skill: &str) -> Module {
        Module {
            external_ids: Vec::new(),
            id: id.into(),
            title: id.into(),
            skill_ids: vec![skill.into()],
            format: Format::Video,
            duration_minutes: 10,
            language: "en".into(),
        }
    }

    fn completed(id: &str, module: &str, at: Micros) -> Activity {
        Activity {
            event_id: id.into(),
            learner_id: "l".into(),
            module_id: module.into(),
            program_id: String::new(),
            kind: ActivityKind::Completed,
            occurred_at: at,
            time_spent_ms: 0,
        }
    }

    /// Records learner `l`'s completion of `module` at `at`.
    async fn complete(engine: &Engine, id: &str, module: &str, at: Micros) {
        engine
            .record_activity(vec![completed(id, module, at)])
            .await
            .unwrap();
    }

    fn on(skill: &str, id: &str, at: Micros, correct: bool) -> Attempt {
        Attempt {
            skill_ids: vec![skill.into()],
            ..test_attempt(id, at, correct)
        }
    }

    #[tokio::test]
    async fn answers_credit_only_the_modules_that_teach_their_skill() {
        let dir = tempfile::tempdir().unwrap();
        let engine = testing::engine(dir.path());
        testing::skill_s_and_learner_l(&engine, vec![module("ms", "s")]).await;
        engine
            .import_catalog(
                vec![Skill {
                    id: "b".into(),
                    name: "B".into(),
                    prerequisite_ids: vec![],
                }],
                vec![module("mb", "b")],
            )
            .await
            .unwrap();
        let t = 1_700_000_000_000_000;
        complete(&engine, "e1", "ms", t).await;
        // Answers on b after a module on s: nothing for ms.
        let on_b: Vec<Attempt> = (0..3)
            .map(|i| on("b", &format!("b{i}"), t + 10 + i, true))
            .collect();
        engine.record_attempts(on_b).await.unwrap();
        assert!(engine.effects.read().get("ms", "s").is_none());
        assert!(engine.effects.read().get("mb", "b").is_none());
        // Two answers on s: still open; the third closes it.
        let on_s: Vec<Attempt> = (0..3)
            .map(|i| on("s", &format!("s{i}"), t + 20 + i, true))
            .collect();
        engine.record_attempts(on_s[..2].to_vec()).await.unwrap();
        assert!(engine.effects.read().get("ms", "s").is_none());
        engine.record_attempts(on_s[2..].to_vec()).await.unwrap();
        let effect = engine.effects.read().get("ms", "s").cloned().unwrap();
        assert_eq!((effect.tried, effect.moved), (1, 1));
        assert!(effect.sum > 0.0, "three right after it: {effect:?}");
        // Answers before a module do not count for it; the effect is
        // stored and comes back at the next start.
        drop(engine);
        let engine = testing::engine(dir.path());
        assert_eq!(engine.effects.read().get("ms", "s"), Some(&effect));
        complete(&engine, "e2", "ms", t + 100).await;
        engine
            .record_attempts(vec![on("s", "late", t + 50, false)])
            .await
            .unwrap();
        assert_eq!(engine.effects.read().get("ms", "s"), Some(&effect));
    }

    /// A learner's second go at a module is evidence, not a second learner
    /// in `tried`; a completion of another module, or a start of this one,
    /// does not make a go a second one.
    #[tokio::test]
    async fn a_second_go_at_a_module_is_not_a_second_learner() {
        let dir = tempfile::tempdir().unwrap();
        let engine = testing::engine(dir.path());
        skills_s_and_b(&engine).await;
        let t = 1_700_000_000_000_000;
        let wrong = |from: Micros, tag: &str| -> Vec<Attempt> {
            (0..3)
                .map(|i| on("s", &format!("{tag}{i}"), from + i, false))
                .collect()
        };
        let mut started = completed("e0", "ms", t - 10);
        started.kind = ActivityKind::Started;
        engine
            .record_activity(vec![started, completed("e1", "mb", t - 5)])
            .await
            .unwrap();
        complete(&engine, "e2", "ms", t).await;
        engine.record_attempts(wrong(t + 10, "a")).await.unwrap();
        let first = engine.effects.read().get("ms", "s").cloned().unwrap();
        assert_eq!((first.tried, first.weight), (1, 1.0));
        complete(&engine, "e3", "ms", t + 50).await;
        engine.record_attempts(wrong(t + 60, "b")).await.unwrap();
        let effect = engine.effects.read().get("ms", "s").cloned().unwrap();
        assert_eq!((effect.tried, effect.moved, effect.weight), (1, 0, 2.0));
    }

    /// Skill `s` taught by `ms`, learner `l`, and skill `b` taught by `mb`.
    async fn skills_s_and_b(engine: &Engine) {
        testing::skill_s_and_learner_l(engine, vec![module("ms", "s")]).await;
        let b = Skill {
            id: "b".into(),
            name: "B".into(),
            prerequisite_ids: vec![],
        };
        engine
            .import_catalog(vec![b], vec![module("mb", "b")])
            .await
            .unwrap();
    }

    /// Every answered skill has its evidence, with the items answered since
    /// its latest module, whatever its mastery: a check on an unmastered
    /// skill (a doubt, a prerequisite review) asks other items than the last
    /// one did. (The service once read items only when every program skill
    /// looked mastered, and re-asked the same ones.)
    #[tokio::test]
    async fn evidence_names_the_items_of_every_answered_skill() {
        let dir = tempfile::tempdir().unwrap();
        let engine = testing::engine(dir.path());
        skills_s_and_b(&engine).await;
        let t = 1_700_000_000_000_000;
        let answer = |id: &str, item: &str, at: Micros, correct: bool| Attempt {
            item_id: item.into(),
            ..test_attempt(id, at, correct)
        };
        engine
            .record_attempts(vec![
                answer("a1", "i1", t, false),
                answer("a2", "i2", t + 1, true),
                on("b", "b1", t + 5, true),
            ])
            .await
            .unwrap();
        complete(&engine, "e1", "ms", t + 10).await;
        engine
            .record_attempts(vec![answer("a3", "i3", t + 20, false)])
            .await
            .unwrap();
        let p = engine.store.learner_p_mastered("l").unwrap()["s"];
        assert!(p < engine.mastery_threshold(), "s unmastered: {p}");
        let module_on = |skill: &str| ModuleOutcome {
            module_id: format!("m{skill}"),
            completed_at: t + 10,
            changes: vec![crate::domain::remediation::SkillChange {
                skill_id: skill.into(),
                before: 0.2,
                after: 0.2,
            }],
        };
        let ever = engine.learner_evidence("l", &[]).unwrap();
        let items: Vec<&str> = ever["s"].items.iter().map(String::as_str).collect();
        assert_eq!(items, ["i1", "i2", "i3"]);
        assert_eq!(
            ever["s"].recent,
            [(t, false), (t + 1, true), (t + 20, false)]
        );
        // Skill b, answered once and never taught, has its evidence too.
        assert_eq!(ever["b"].recent, [(t + 5, true)]);
        assert_eq!(ever["b"].items.len(), 1);
        // A module on b makes b's answer old, not s's.
        let on_b = engine.learner_evidence("l", &[module_on("b")]).unwrap();
        assert_eq!(on_b["s"], ever["s"]);
        assert!(on_b["b"].items.is_empty() && on_b["b"].recent.len() == 1);
        let since = engine.learner_evidence("l", &[module_on("s")]).unwrap();
        let items: Vec<&str> = since["s"].items.iter().map(String::as_str).collect();
        assert_eq!(items, ["i3"]);
    }

    /// The store's answers per skill merge rows already in sled with rows
    /// still waiting in memory, in time order, once each, an attempt on two
    /// skills under both, each with its item.
    #[tokio::test]
    async fn answers_merge_stored_and_waiting_rows_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let engine = testing::engine(dir.path());
        skills_s_and_b(&engine).await;
        let t = 1_700_000_000_000_000;
        let answer = |id: &str, at: Micros, skills: &[&str]| Attempt {
            item_id: format!("item-{id}"),
            skill_ids: skills.iter().map(|s| s.to_string()).collect(),
            ..test_attempt(id, at, true)
        };
        let early = vec![answer("a2", t + 2, &["s"]), answer("a0", t, &["b", "s"])];
        engine.record_attempts(early.clone()).await.unwrap();
        engine.store.settle().unwrap();
        // Waiting rows: one before the stored ones, one after, and a resend.
        let late = vec![answer("a1", t + 1, &["s"]), answer("a3", t + 3, &["b"])];
        engine.record_attempts(late).await.unwrap();
        engine.record_attempts(early).await.unwrap();
        let answers = engine.store.learner_answers("l").unwrap();
        let rows = |skill: &str| -> Vec<(String, i64, String)> {
            answers[skill]
                .iter()
                .map(|a| {
                    let id = a.at.attempt_id.clone();
                    (id, a.at.occurred_at - t, a.item_id.to_string())
                })
                .collect()
        };
        let row = |id: &str, dt: i64| (id.to_string(), dt, format!("item-{id}"));
        assert_eq!(rows("s"), [row("a0", 0), row("a1", 1), row("a2", 2)]);
        assert_eq!(rows("b"), [row("a0", 0), row("a3", 3)]);
    }

    #[tokio::test]
    async fn two_modules_before_the_same_answers_share_the_credit() {
        let dir = tempfile::tempdir().unwrap();
        let engine = testing::engine(dir.path());
        testing::skill_s_and_learner_l(&engine, vec![module("m1", "s"), module("m2", "s")]).await;
        let t = 1_700_000_000_000_000;
        engine
            .record_activity(vec![completed("e1", "m1", t), completed("e2", "m2", t + 1)])
            .await
            .unwrap();
        let answers: Vec<Attempt> = (0..3)
            .map(|i| on("s", &format!("a{i}"), t + 10 + i, true))
            .collect();
        engine.record_attempts(answers).await.unwrap();
        let effects = engine.effects.read();
        let (a, b) = (
            effects.get("m1", "s").unwrap(),
            effects.get("m2", "s").unwrap(),
        );
        assert!((a.weight - 0.5).abs() < 1e-12 && (b.weight - 0.5).abs() < 1e-12);
    }
}
