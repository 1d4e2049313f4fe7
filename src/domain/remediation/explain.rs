//! The trainer-facing reasons of the recommendations: each names the skill,
//! where the learner stands, why this and not something else, and what the
//! population's evidence on the module is.

use std::collections::BTreeMap;

use super::beliefs::Beliefs;
use super::record::SkillRecord;
use super::{Candidate, Scored, Target};
use crate::domain::catalog::Skill;

/// Names a skill for a trainer: its name, or its id when unknown.
fn name<'a>(skills: &'a BTreeMap<String, Skill>, id: &'a str) -> &'a str {
    skills.get(id).map_or(id, |s| s.name.as_str())
}

/// A skill's name in quotes.
pub(super) fn quoted(skills: &BTreeMap<String, Skill>, id: &str) -> String {
    format!("'{}'", name(skills, id))
}

/// "a video", "an exercise": the format names all start as they sound.
fn with_article(noun: &str) -> String {
    let vowel = noun.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {noun}", if vowel { "an" } else { "a" })
}

/// Joins names as "A", "A and B", "A, B and C".
pub(super) fn join_names(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A P(mastered) beside the threshold, with enough digits that a value
/// below it never prints as the threshold ("0.9457", not "0.95").
pub(super) fn shown(p: f64, threshold: f64) -> String {
    let consistent = |text: &str| (p < threshold) == (text.parse().unwrap_or(p) < threshold);
    for digits in 2..=4usize {
        let text = format!("{p:.digits$}");
        if consistent(&text) {
            return text;
        }
    }
    // Still rounds onto the threshold: cut instead of rounding.
    let cut = format!("{:.4}", (p * 1e4).floor() / 1e4);
    if consistent(&cut) {
        return cut;
    }
    format!("{p}")
}

/// "its prerequisite 'A' is mastered", or nothing for a skill without any.
fn prerequisites_mastered(skills: &BTreeMap<String, Skill>, skill: &str) -> String {
    let prereqs: Vec<String> = skills
        .get(skill)
        .map(|s| {
            s.prerequisite_ids
                .iter()
                .map(|q| quoted(skills, q))
                .collect()
        })
        .unwrap_or_default();
    match prereqs.len() {
        0 => "; it has no prerequisites".to_string(),
        1 => format!("; its prerequisite {} is mastered", prereqs[0]),
        _ => format!("; its prerequisites {} are mastered", join_names(&prereqs)),
    }
}

/// What were tried on each skill, as the reasons read it.
type Records<'a> = BTreeMap<&'a str, SkillRecord<'a>>;

/// The reason of a module recommendation for candidate `cand`: why its
/// skill, then what the module brings. The request is the one `beliefs`
/// were drawn from.
pub(super) fn explain_module(
    beliefs: &Beliefs<'_>,
    records: &Records<'_>,
    scored: &Scored<'_>,
    cand: &Candidate<'_>,
) -> String {
    let mut text = why_the_skill(beliefs, records, scored.primary, cand);
    text.push_str(&what_the_module_brings(beliefs, records, scored));
    text
}

/// Why `primary` is worked on: where the learner stands on it (or, for a
/// prerequisite review, what did not improve), and what it is needed for.
fn why_the_skill(
    beliefs: &Beliefs<'_>,
    records: &Records<'_>,
    primary: &str,
    cand: &Candidate<'_>,
) -> String {
    let input = beliefs.input;
    let (skills, for_skills) = (input.skills, cand.for_skills.as_slice());
    let p = shown(beliefs.p(primary), input.threshold);
    match cand.target {
        Target::PrerequisiteReview => {
            let resisting: Vec<String> = for_skills.iter().map(|s| quoted(skills, s)).collect();
            let why = if cand.reteach {
                "a check of it did not explain it, so it is taught again"
            } else {
                "the bank has no item to check it, so it is taught again"
            };
            format!(
                "re-teaching prerequisite {} (at {p}): {} did not improve after {} modules, and {why}",
                quoted(skills, primary),
                join_names(&resisting),
                streak(records, for_skills),
            )
        }
        _ => {
            let mut t = match beliefs.doubtful.get(primary) {
                None if beliefs.refuted.contains(primary) => format!(
                    "skill {} at {p} does not count as mastered: the answers since the latest module say otherwise",
                    quoted(skills, primary)
                ),
                Some(q) => format!(
                    "skill {} at {p} does not count as mastered: its answers came before its prerequisite {} was learnt",
                    quoted(skills, primary),
                    quoted(skills, q)
                ),
                None => format!(
                    "skill {} at {p}, below {}",
                    quoted(skills, primary),
                    input.threshold
                ),
            };
            t.push_str(&prerequisites_mastered(skills, primary));
            if cand.target == Target::DeepPrerequisite {
                let needed: Vec<String> = for_skills.iter().map(|s| quoted(skills, s)).collect();
                t.push_str(&format!(
                    "; needed first for program skill{} {}",
                    if needed.len() == 1 { "" } else { "s" },
                    join_names(&needed)
                ));
            }
            t
        }
    }
}

/// The rest of the reason, from "; also teaches": the other skills the
/// module teaches, its format, length and gain, the population's evidence,
/// the formats that failed before, and why a failed or other-language
/// module is given.
fn what_the_module_brings(
    beliefs: &Beliefs<'_>,
    records: &Records<'_>,
    scored: &Scored<'_>,
) -> String {
    let input = beliefs.input;
    let skills = input.skills;
    let primary = scored.primary;
    let mut text = String::new();
    if !scored.others.is_empty() {
        let names: Vec<String> = scored
            .others
            .iter()
            .map(|s| {
                format!(
                    "{} ({})",
                    quoted(skills, s),
                    shown(beliefs.p(s), input.threshold)
                )
            })
            .collect();
        text.push_str(&format!("; also teaches {}", join_names(&names)));
    }
    let module = scored.module;
    text.push_str(&format!(
        "; {}, {} min, expected gain {:.2}",
        module.format.name(),
        module.duration_minutes,
        scored.gain
    ));
    match scored.effect {
        Some(e) if e.tried > 0 => text.push_str(&format!(
            "; tried by {} learner{}, moved mastery for {}",
            e.tried,
            if e.tried == 1 { "" } else { "s" },
            e.moved
        )),
        _ => text.push_str("; not tried by other learners yet"),
    }
    if let Some(rec) = records.get(primary) {
        let failed_formats: Vec<String> = rec
            .format_failures
            .keys()
            .filter(|f| **f != module.format)
            .map(|f| f.name().to_string())
            .collect();
        if !failed_formats.is_empty() {
            text.push_str(&format!(
                "; trying {} after {} did not move it",
                with_article(module.format.name()),
                join_names(&failed_formats)
            ));
        }
    }
    if scored.repeated {
        let language = if input.language.is_empty() {
            String::new()
        } else {
            format!(" in '{}'", input.language)
        };
        text.push_str(&format!(
            "; repeated although it just failed: no other module{language} that the learner has not failed teaches it as well"
        ));
    }
    if scored.fallback {
        text.push_str(&format!(
            "; no module in language '{}' teaches it, this one is in '{}'",
            input.language, module.language
        ));
    }
    text
}

/// The longest failure streak among `skills`.
fn streak(records: &Records<'_>, skills: &[&str]) -> u32 {
    skills
        .iter()
        .map(|s| records.get(s).map_or(0, |r| r.streak))
        .max()
        .unwrap_or(0)
}

/// The reason of a diagnostic check of `skill`, candidate `cand` (a
/// review or a doubtful skill).
pub(super) fn explain_diagnostic(
    beliefs: &Beliefs<'_>,
    records: &Records<'_>,
    skill: &str,
    cand: &Candidate<'_>,
) -> String {
    let input = beliefs.input;
    let (skills, for_skills) = (input.skills, cand.for_skills.as_slice());
    let p = shown(beliefs.p(skill), input.threshold);
    match (cand.target, beliefs.doubtful.get(skill)) {
        (Target::PrerequisiteReview, _) => {
            let resisting: Vec<String> = for_skills.iter().map(|s| quoted(skills, s)).collect();
            format!(
                "checking prerequisite {} (at {p}) with a few questions: {} did not improve after {} modules, and a prerequisite that only looks mastered would explain it",
                quoted(skills, skill),
                join_names(&resisting),
                streak(records, for_skills),
            )
        }
        (_, Some(q)) => format!(
            "checking skill {} (at {p}) with a few questions: its answers came before its prerequisite {} was learnt, so they may have been lucky",
            quoted(skills, skill),
            quoted(skills, q)
        ),
        _ => format!(
            "checking skill {} (at {p}) with a few questions",
            quoted(skills, skill)
        ),
    }
}

/// The reason of a certification check.
pub(super) fn explain_certification(beliefs: &Beliefs<'_>, skill: &str, joint: f64) -> String {
    let input = beliefs.input;
    let evidence = input.evidence.get(skill);
    let have = evidence.map_or(0, |e| e.items.len());
    let fresh = evidence.map_or(0, |e| {
        e.answers_after(super::beliefs::latest_module_at(input))
    });
    format!(
        "checking skill {} (at {}) before the program is certified: {have} answer{} on distinct items since its latest module (certification needs {}), {fresh} since the latest module of the program (they must show mastery on their own), and every skill mastered jointly at {joint:.2}",
        quoted(input.skills, skill),
        shown(beliefs.p(skill), input.threshold),
        if have == 1 { "" } else { "s" },
        input.config.certify_items,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_below_the_threshold_never_prints_as_it() {
        assert_eq!(shown(0.9457, 0.95), "0.946");
        assert_eq!(shown(0.41, 0.95), "0.41");
        assert_eq!(shown(0.95, 0.95), "0.95");
        assert_eq!(shown(0.949_999_9, 0.95), "0.9499");
        assert_eq!(shown(0.2, 0.95), "0.20");
    }

    #[test]
    fn format_names_take_the_right_article() {
        assert_eq!(with_article("exercise"), "an exercise");
        assert_eq!(with_article("video"), "a video");
    }
}
