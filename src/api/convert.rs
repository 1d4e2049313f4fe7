//! Conversions between protobuf messages and domain types.
//!
//! Inbound conversions validate as they go and name the offending field
//! with its full path (`attempts[2].score`); they destructure every field so
//! that a field added to the proto breaks the build until someone decides
//! what it means. Outbound conversions are plain `From` impls.

use super::pb;
use super::validate as check;
use crate::domain::catalog::{Format, Item, Module, Skill};
use crate::domain::learner::{CohortRules, Enrolment, Learner, Micros, Program, RiskRules};
use crate::domain::limits::{MAX_ATTEMPT_TIME_MS, MAX_MODULE_MINUTES};
use crate::domain::mastery::Attempt;
use crate::engine::mapping::{MapTarget, UnmappedActivity};
use crate::engine::mastery::SkillMastery;
use crate::error::{Error, Result};

/// Largest number of attempts in one `RecordAttempts` call.
pub const MAX_ATTEMPTS_PER_CALL: usize = 1000;
/// Largest number of skills or modules in one `ImportCatalog` call.
pub const MAX_IMPORT_OBJECTS: usize = 10_000;

/// Unwraps a required sub-message.
pub fn required<T>(field: &str, value: Option<T>) -> Result<T> {
    value.ok_or_else(|| Error::invalid(field, "is required"))
}

/// Checks a skill; `at` is its path in the request. Its prerequisites stay
/// in request order, repeats included, so that the engine names a bad one
/// by its position in the request; the engine stores them sorted.
pub fn skill(at: &str, value: pb::Skill) -> Result<Skill> {
    let pb::Skill {
        id,
        name,
        prerequisite_ids,
    } = value;
    Ok(Skill {
        id: check::id(format_args!("{at}.id"), &id)?,
        name: check::text(format_args!("{at}.name"), &name)?,
        prerequisite_ids: skill_refs(at, "prerequisite_ids", prerequisite_ids)?,
    })
}

/// The skill ids a catalog entry names (`prerequisite_ids`, `skill_ids`),
/// kept in request order with repeats ([`check::id_list`]): the engine
/// checks them against the catalog, names a bad one by its position in the
/// request, and stores them sorted and deduplicated.
fn skill_refs(at: &str, field: &str, ids: Vec<String>) -> Result<Vec<String>> {
    check::id_list(format_args!("{at}.{field}"), &ids)
}

/// Checks a module; `at` is its path in the request.
pub fn module(at: &str, value: pb::Module) -> Result<Module> {
    let pb::Module {
        id,
        title,
        skill_ids,
        format,
        duration_minutes,
        language,
        external_ids,
    } = value;
    let skill_ids = some_skill_refs(at, skill_ids)?;
    if !(1..=MAX_MODULE_MINUTES).contains(&duration_minutes) {
        return Err(Error::invalid(
            format!("{at}.duration_minutes"),
            format!("must be in 1..={MAX_MODULE_MINUTES}, got {duration_minutes}"),
        ));
    }
    Ok(Module {
        id: check::iri_id(format_args!("{at}.id"), &id)?,
        title: check::text(format_args!("{at}.title"), &title)?,
        skill_ids,
        format: format_from_pb(&format!("{at}.format"), format)?,
        duration_minutes,
        language: check::language(format_args!("{at}.language"), &language, true)?,
        external_ids: check::external_ids(format_args!("{at}.external_ids"), &external_ids)?,
    })
}

/// The `skill_ids` of a module or item: [`skill_refs`], at least one.
fn some_skill_refs(at: &str, skill_ids: Vec<String>) -> Result<Vec<String>> {
    at_least_one(at, skill_refs(at, "skill_ids", skill_ids)?)
}

/// The `skill_ids` of a program: checked, deduplicated, at least one.
fn some_skills(at: &str, skill_ids: &[String]) -> Result<Vec<String>> {
    at_least_one(
        at,
        check::id_set(format_args!("{at}.skill_ids"), skill_ids)?,
    )
}

/// `skill_ids`, refused when empty.
fn at_least_one(at: &str, skill_ids: Vec<String>) -> Result<Vec<String>> {
    if skill_ids.is_empty() {
        return Err(Error::invalid(
            format!("{at}.skill_ids"),
            "must name at least one skill",
        ));
    }
    Ok(skill_ids)
}

/// Checks an item (a row of the Q-matrix); `at` is its path in the request.
pub fn item(at: &str, value: pb::Item) -> Result<Item> {
    let pb::Item {
        id,
        skill_ids,
        title,
        external_ids,
        pass_mark,
    } = value;
    let skill_ids = some_skill_refs(at, skill_ids)?;
    if let Some(mark) = pass_mark {
        if !(0.0..=1.0).contains(&mark) {
            return Err(Error::invalid(
                format!("{at}.pass_mark"),
                format!("must be in [0, 1], got {mark}"),
            ));
        }
    }
    Ok(Item {
        id: check::iri_id(format_args!("{at}.id"), &id)?,
        skill_ids,
        title: check::text(format_args!("{at}.title"), &title)?,
        external_ids: check::external_ids(format_args!("{at}.external_ids"), &external_ids)?,
        pass_mark,
    })
}

impl From<Item> for pb::Item {
    fn from(item: Item) -> Self {
        Self {
            id: item.id,
            skill_ids: item.skill_ids,
            title: item.title,
            external_ids: item.external_ids,
            pass_mark: item.pass_mark,
        }
    }
}

fn format_from_pb(field: &str, value: i32) -> Result<Format> {
    use pb::ModuleFormat as F;
    match F::try_from(value) {
        Ok(F::Video) => Ok(Format::Video),
        Ok(F::Document) => Ok(Format::Document),
        Ok(F::Quiz) => Ok(Format::Quiz),
        Ok(F::Exercise) => Ok(Format::Exercise),
        Ok(F::SeriousGame) => Ok(Format::SeriousGame),
        Ok(F::Workshop) => Ok(Format::Workshop),
        Ok(F::LiveSession) => Ok(Format::LiveSession),
        Ok(F::Podcast) => Ok(Format::Podcast),
        Ok(F::Unspecified) => Err(Error::invalid(field, "must be set")),
        Err(_) => Err(Error::invalid(field, format!("unknown format {value}"))),
    }
}

impl From<Format> for pb::ModuleFormat {
    fn from(format: Format) -> Self {
        match format {
            Format::Video => Self::Video,
            Format::Document => Self::Document,
            Format::Quiz => Self::Quiz,
            Format::Exercise => Self::Exercise,
            Format::SeriousGame => Self::SeriousGame,
            Format::Workshop => Self::Workshop,
            Format::LiveSession => Self::LiveSession,
            Format::Podcast => Self::Podcast,
        }
    }
}

impl From<Skill> for pb::Skill {
    fn from(skill: Skill) -> Self {
        Self {
            id: skill.id,
            name: skill.name,
            prerequisite_ids: skill.prerequisite_ids,
        }
    }
}

impl From<Module> for pb::Module {
    fn from(module: Module) -> Self {
        Self {
            id: module.id,
            title: module.title,
            skill_ids: module.skill_ids,
            format: pb::ModuleFormat::from(module.format) as i32,
            duration_minutes: module.duration_minutes,
            language: module.language,
            external_ids: module.external_ids,
        }
    }
}

/// Checks a learner.
pub fn learner(at: &str, value: pb::Learner) -> Result<Learner> {
    let pb::Learner {
        id,
        company_id,
        language,
        time_zone,
        display_name,
    } = value;
    let raw = Learner {
        id,
        company_id,
        language,
        time_zone,
        display_name,
    };
    check::learner(raw, |field| format!("{at}.{field}"))
}

impl From<Learner> for pb::Learner {
    fn from(learner: Learner) -> Self {
        Self {
            id: learner.id,
            company_id: learner.company_id,
            language: learner.language,
            time_zone: learner.time_zone,
            display_name: learner.display_name,
        }
    }
}

/// Checks a program and fills unset cohort rules with their defaults.
pub fn program(at: &str, value: pb::Program) -> Result<Program> {
    let pb::Program {
        id,
        name,
        skill_ids,
        cohort_rules,
        start_date,
        end_date,
        risk_rules,
        external_ids,
    } = value;
    let skill_ids = some_skills(at, &skill_ids)?;
    let start_date = start_date
        .map(|t| date(&format!("{at}.start_date"), &t))
        .transpose()?;
    let end_date = end_date
        .map(|t| date(&format!("{at}.end_date"), &t))
        .transpose()?;
    if let (Some(start), Some(end)) = (start_date, end_date) {
        if end <= start {
            return Err(Error::invalid(
                format!("{at}.end_date"),
                "must be after start_date",
            ));
        }
    }
    Ok(Program {
        id: check::id(format_args!("{at}.id"), &id)?,
        name: check::text(format_args!("{at}.name"), &name)?,
        skill_ids,
        cohort_rules: rules(
            &format!("{at}.cohort_rules"),
            cohort_rules.unwrap_or_default(),
        )?,
        start_date,
        end_date,
        risk_rules: risk_rules_from_pb(
            &format!("{at}.risk_rules"),
            risk_rules.unwrap_or_default(),
        )?,
        external_ids: check::external_ids(format_args!("{at}.external_ids"), &external_ids)?,
    })
}

/// Latest accepted program date: 9999-12-31T23:59:59Z.
const MAX_DATE_SECONDS: i64 = 253_402_300_799;

/// A program date: a valid timestamp between 1970 and 9999.
fn date(field: &str, value: &prost_types::Timestamp) -> Result<Micros> {
    if !(0..1_000_000_000).contains(&value.nanos) {
        return Err(Error::invalid(field, "nanos must be in [0, 1e9)"));
    }
    if !(0..=MAX_DATE_SECONDS).contains(&value.seconds) {
        return Err(Error::invalid(
            field,
            "must be between 1970-01-01 and 9999-12-31",
        ));
    }
    Ok(value.seconds * 1_000_000 + i64::from(value.nanos / 1000))
}

/// Checks a program's alert thresholds; unset ones stay unset (defaults).
fn risk_rules_from_pb(at: &str, value: pb::RiskRules) -> Result<RiskRules> {
    let pb::RiskRules {
        inactivity_days,
        blocking_failures,
        mastery_drop,
    } = value;
    if let Some(days) = inactivity_days {
        if !days.is_finite() || days <= 0.0 || days > 365.0 {
            return Err(Error::invalid(
                format!("{at}.inactivity_days"),
                format!("must be in (0, 365], got {days}"),
            ));
        }
    }
    if let Some(n) = blocking_failures {
        if !(1..=100).contains(&n) {
            return Err(Error::invalid(
                format!("{at}.blocking_failures"),
                format!("must be in 1..=100, got {n}"),
            ));
        }
    }
    if let Some(drop) = mastery_drop {
        if !drop.is_finite() || drop <= 0.0 || drop >= 1.0 {
            return Err(Error::invalid(
                format!("{at}.mastery_drop"),
                format!("must be in (0, 1), got {drop}"),
            ));
        }
    }
    Ok(RiskRules {
        inactivity_days,
        blocking_failures,
        mastery_drop,
    })
}

fn rules(at: &str, value: pb::CohortRules) -> Result<CohortRules> {
    let pb::CohortRules {
        min_size,
        max_size,
        max_company_share,
        single_language,
        max_timezone_spread_hours,
        target_cohort_count,
    } = value;
    let defaults = CohortRules::default();
    let min_size = min_size.unwrap_or(defaults.min_size);
    let max_size = max_size.unwrap_or(defaults.max_size);
    if !(15..=50).contains(&min_size) {
        return Err(Error::invalid(
            format!("{at}.min_size"),
            format!("must be in 15..=50, got {min_size}"),
        ));
    }
    if !(min_size..=50).contains(&max_size) {
        return Err(Error::invalid(
            format!("{at}.max_size"),
            format!("must be in min_size..=50 ({min_size}..=50), got {max_size}"),
        ));
    }
    let share = max_company_share.unwrap_or(defaults.max_company_share);
    if !share.is_finite() || share <= 0.0 || share > 1.0 {
        return Err(Error::invalid(
            format!("{at}.max_company_share"),
            format!("must be in (0, 1], got {share}"),
        ));
    }
    let spread = max_timezone_spread_hours.unwrap_or(defaults.max_timezone_spread_hours);
    if !spread.is_finite() || !(0.0..=26.0).contains(&spread) {
        return Err(Error::invalid(
            format!("{at}.max_timezone_spread_hours"),
            format!("must be in [0, 26], got {spread}"),
        ));
    }
    Ok(CohortRules {
        min_size,
        max_size,
        max_company_share: share,
        single_language: single_language.unwrap_or(defaults.single_language),
        max_timezone_spread_hours: spread,
        target_cohort_count: target_cohort_count.filter(|n| *n > 0),
    })
}

impl From<Program> for pb::Program {
    fn from(program: Program) -> Self {
        let r = program.cohort_rules;
        Self {
            id: program.id,
            name: program.name,
            skill_ids: program.skill_ids,
            cohort_rules: Some(pb::CohortRules {
                min_size: Some(r.min_size),
                max_size: Some(r.max_size),
                max_company_share: Some(r.max_company_share),
                single_language: Some(r.single_language),
                max_timezone_spread_hours: Some(r.max_timezone_spread_hours),
                target_cohort_count: r.target_cohort_count,
            }),
            start_date: program.start_date.map(timestamp),
            end_date: program.end_date.map(timestamp),
            risk_rules: Some(pb::RiskRules {
                inactivity_days: program.risk_rules.inactivity_days,
                blocking_failures: program.risk_rules.blocking_failures,
                mastery_drop: program.risk_rules.mastery_drop,
            }),
            external_ids: program.external_ids,
        }
    }
}

impl From<Enrolment> for pb::Enrolment {
    fn from(e: Enrolment) -> Self {
        Self {
            learner_id: e.learner_id,
            program_id: e.program_id,
            enrolled_at: Some(timestamp(e.enrolled_at)),
        }
    }
}

/// Checks a batch of attempts, all of it, before anything is stored.
pub fn attempts(values: &[pb::Attempt], now: Micros) -> Result<Vec<Attempt>> {
    if values.is_empty() {
        return Err(Error::invalid("attempts", "must hold at least one attempt"));
    }
    if values.len() > MAX_ATTEMPTS_PER_CALL {
        return Err(Error::invalid(
            "attempts",
            format!(
                "must hold at most {MAX_ATTEMPTS_PER_CALL} attempts, got {}",
                values.len()
            ),
        ));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, value)| attempt(i, value, now))
        .collect()
}

/// Adds the position in the request to a NOT_FOUND the engine raised on
/// the sorted copy of a list (`program.skill_ids` becomes
/// `program.skill_ids[2]`): `ids` is the list as the request held it.
pub fn locate_id(err: Error, list: &str, ids: &[String]) -> Error {
    match err {
        Error::NotFound {
            kind,
            id,
            field: Some(field),
        } if field == list => {
            let field = match ids.iter().position(|x| *x == id) {
                Some(j) => format!("{field}[{j}]"),
                None => field,
            };
            Error::not_found_at(field, kind, id)
        }
        other => other,
    }
}

/// [`locate_id`] over the `skill_ids` of every attempt of a request.
pub fn locate_attempt_skill(err: Error, attempts: &[pb::Attempt]) -> Error {
    let at = match &err {
        Error::NotFound {
            field: Some(field), ..
        } => attempts
            .iter()
            .enumerate()
            .find(|(i, _)| *field == format!("attempts[{i}].skill_ids")),
        _ => None,
    };
    match at {
        Some((i, a)) => locate_id(err, &format!("attempts[{i}].skill_ids"), &a.skill_ids),
        None => err,
    }
}

/// `attempts[i]`: field paths are formatted only for an error (see
/// `validate::invalid`), which keeps them off the cost of a valid call.
fn attempt(i: usize, value: &pb::Attempt, now: Micros) -> Result<Attempt> {
    let pb::Attempt {
        attempt_id,
        learner_id,
        item_id,
        skill_ids,
        correct,
        score,
        occurred_at,
        time_spent,
    } = value;
    // May be empty: the engine then takes the item's skills (Q-matrix).
    let skill_ids = check::id_set(format_args!("attempts[{i}].skill_ids"), skill_ids)?;
    Ok(Attempt {
        attempt_id: check::id(format_args!("attempts[{i}].attempt_id"), attempt_id)?,
        learner_id: check::id(format_args!("attempts[{i}].learner_id"), learner_id)?,
        item_id: check::iri_id(format_args!("attempts[{i}].item_id"), item_id)?,
        skill_ids,
        correct: *correct,
        score: score
            .map(|s| check::probability(format_args!("attempts[{i}].score"), s))
            .transpose()?,
        occurred_at: check::event_time(
            format_args!("attempts[{i}].occurred_at"),
            occurred_at.as_ref(),
            now,
        )?,
        time_spent_ms: check::duration_ms(
            format_args!("attempts[{i}].time_spent"),
            time_spent.as_ref(),
            MAX_ATTEMPT_TIME_MS,
        )?,
    })
}

impl From<SkillMastery> for pb::SkillMastery {
    fn from(m: SkillMastery) -> Self {
        Self {
            learner_id: m.learner_id,
            skill_id: m.skill_id,
            p_mastered: m.p_mastered,
            attempt_count: m.attempt_count as i32,
            mastered: m.mastered,
            updated_at: m.updated_at.map(timestamp),
        }
    }
}

/// A domain time as a protobuf timestamp.
pub fn timestamp(micros: Micros) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

/// Checks a `MapActivityRequest`: the activity id and exactly one target.
pub fn map_activity(value: pb::MapActivityRequest) -> Result<(String, MapTarget)> {
    use pb::map_activity_request::Target;
    let pb::MapActivityRequest {
        activity_id,
        target,
    } = value;
    let activity_id = check::iri_id("activity_id", &activity_id)?;
    let target = match target {
        Some(Target::ProgramId(id)) => MapTarget::Program(check::id("program_id", &id)?),
        Some(Target::ModuleId(id)) => MapTarget::Module(check::iri_id("module_id", &id)?),
        Some(Target::ItemId(id)) => MapTarget::Item(check::iri_id("item_id", &id)?),
        Some(Target::Ignore(true)) => MapTarget::Ignore,
        Some(Target::Ignore(false)) => {
            return Err(Error::invalid(
                "ignore",
                "must be true when set (to map the activity, set program_id, module_id or item_id)",
            ));
        }
        None => {
            return Err(Error::invalid(
                "target",
                "set one of program_id, module_id, item_id or ignore",
            ));
        }
    };
    Ok((activity_id, target))
}

impl From<UnmappedActivity> for pb::UnmappedActivity {
    fn from(value: UnmappedActivity) -> Self {
        let UnmappedActivity {
            activity_id,
            seen,
            waiting_statements,
            learners,
        } = value;
        Self {
            activity_id,
            name: seen.name,
            description: seen.description,
            r#type: seen.kind,
            interaction_type: seen.interaction_type,
            waiting_statements: waiting_statements as i64,
            learners: learners as i64,
            first_seen: Some(timestamp(seen.first_seen)),
            last_seen: Some(timestamp(seen.last_seen)),
        }
    }
}
