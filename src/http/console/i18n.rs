//! English and French: the language of a page from the browser's
//! `Accept-Language`, and the one message catalogue the templates read
//! (`{{ t.key }}`).
//!
//! The SPOCs this serves are largely French-speaking; every message exists
//! in both languages (a unit test checks that the templates use no key the
//! catalogue lacks).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::{HeaderMap, header};

/// A language of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English, the default.
    En,
    /// French.
    Fr,
}

impl Lang {
    /// The `lang` attribute of a page.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
        }
    }

    /// The browser's preferred language among ours: the highest `q` of
    /// `Accept-Language` whose primary subtag is `en` or `fr` (ties: the
    /// first listed); English when none is.
    pub fn from_accept_language(value: &str) -> Self {
        let mut best: Option<(f32, Lang)> = None;
        for entry in value.split(',') {
            let mut parts = entry.split(';');
            let tag = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let lang = if primary.eq_ignore_ascii_case("fr") {
                Lang::Fr
            } else if primary.eq_ignore_ascii_case("en") {
                Lang::En
            } else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::En, |(_, lang)| lang)
    }

    /// [`Lang::from_accept_language`] of a request's headers.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map_or(Lang::En, Self::from_accept_language)
    }

    /// The message `key` in this language (the key itself if unknown, so
    /// that a slip shows rather than hides).
    pub fn text(self, key: &'static str) -> &'static str {
        self.catalogue().get(key).copied().unwrap_or(key)
    }

    /// Every message in this language, by key (what templates get as `t`).
    pub fn catalogue(self) -> &'static BTreeMap<&'static str, &'static str> {
        static EN: OnceLock<BTreeMap<&str, &str>> = OnceLock::new();
        static FR: OnceLock<BTreeMap<&str, &str>> = OnceLock::new();
        match self {
            Lang::En => EN.get_or_init(|| MESSAGES.iter().map(|(k, en, _)| (*k, *en)).collect()),
            Lang::Fr => FR.get_or_init(|| MESSAGES.iter().map(|(k, _, fr)| (*k, *fr)).collect()),
        }
    }
}

/// (key, English, French).
pub const MESSAGES: &[(&str, &str, &str)] = &[
    ("console", "SPOC console", "Console SPOC"),
    ("skip", "Skip to content", "Aller au contenu"),
    ("nav", "Main navigation", "Navigation principale"),
    ("home", "Home", "Accueil"),
    ("signin_title", "Sign in", "Connexion"),
    (
        "signin_intro",
        "Sign in with your API key (trainer, manager or administrator).",
        "Connectez-vous avec votre clé d’API (formateur, responsable ou administrateur).",
    ),
    ("api_key", "API key", "Clé d’API"),
    ("signin", "Sign in", "Se connecter"),
    ("signout", "Sign out", "Se déconnecter"),
    (
        "bad_key",
        "This key is unknown or revoked.",
        "Cette clé est inconnue ou révoquée.",
    ),
    (
        "role_refused",
        "This key's role has no access to the console (trainer, manager or administrator keys only).",
        "Le rôle de cette clé n’a pas accès à la console (clés de formateur, de responsable ou d’administrateur uniquement).",
    ),
    (
        "too_many_sessions",
        "Too many open sessions: try again later.",
        "Trop de sessions ouvertes : réessayez plus tard.",
    ),
    (
        "too_many_streams",
        "This session already follows too many live pages: close some tabs and reload.",
        "Cette session suit déjà trop de pages en direct : fermez quelques onglets et rechargez.",
    ),
    (
        "csrf_refused",
        "This form expired or did not come from the console: reload the page and try again.",
        "Ce formulaire a expiré ou ne vient pas de la console : rechargez la page et réessayez.",
    ),
    ("signed_in_as", "Signed in as", "Connecté en tant que"),
    ("role", "Role", "Rôle"),
    ("role_trainer", "trainer", "formateur"),
    ("role_manager", "manager", "responsable"),
    ("role_admin", "administrator", "administrateur"),
    ("my_cohorts", "My cohorts", "Mes cohortes"),
    (
        "no_cohorts",
        "No cohort to show.",
        "Aucune cohorte à afficher.",
    ),
    ("cohort", "Cohort", "Cohorte"),
    ("program", "Program", "Programme"),
    ("programs", "Programs", "Programmes"),
    (
        "no_programs",
        "No program yet.",
        "Aucun programme pour l’instant.",
    ),
    ("learners", "Learners", "Apprenants"),
    ("learner", "Learner", "Apprenant"),
    ("skills", "Skills", "Compétences"),
    ("skill", "Skill", "Compétence"),
    ("open_alerts", "Open alerts", "Alertes ouvertes"),
    ("no_alerts", "No open alert.", "Aucune alerte ouverte."),
    ("alert", "Alert", "Alerte"),
    ("kind", "Kind", "Type"),
    ("severity", "Severity", "Gravité"),
    ("reason", "Reason", "Motif"),
    ("status", "Status", "Statut"),
    ("raised", "Raised", "Levée le"),
    ("actions", "Actions", "Actions"),
    ("acknowledge", "Acknowledge", "Prendre en charge"),
    ("resolve", "Resolve", "Clore"),
    ("note", "Note (optional)", "Note (facultative)"),
    ("status_open", "open", "ouverte"),
    ("status_acknowledged", "acknowledged", "prise en charge"),
    ("status_resolved", "resolved", "close"),
    ("severity_info", "info", "information"),
    ("severity_warning", "check in", "à contacter"),
    ("severity_critical", "probably lost", "probablement perdu"),
    ("kind_blocking_point", "blocking point", "point de blocage"),
    ("kind_inactivity", "inactivity", "inactivité"),
    ("kind_mastery_drop", "mastery drop", "baisse de maîtrise"),
    (
        "kind_predicted_dropout",
        "predicted dropout",
        "abandon prévu",
    ),
    (
        "kind_behind_schedule",
        "behind schedule",
        "en retard sur le calendrier",
    ),
    ("kind_stopping", "stopping", "en train d’arrêter"),
    ("heat_map", "Mastery by skill", "Maîtrise par compétence"),
    (
        "heat_map_caption",
        "P(mastered) per learner and skill, in percent; ✓ marks a mastered skill.",
        "P(maîtrisé) par apprenant et compétence, en pourcentage ; ✓ signale une compétence maîtrisée.",
    ),
    (
        "live_on",
        "Live updates on: new alerts appear without reloading.",
        "Mises à jour en direct : les nouvelles alertes apparaissent sans recharger.",
    ),
    (
        "live_off",
        "Live updates stopped (too many open pages, or the session ended): reload the page.",
        "Mises à jour en direct interrompues (trop de pages ouvertes, ou session terminée) : rechargez la page.",
    ),
    ("new_alert", "Alert updated:", "Alerte mise à jour :"),
    (
        "cohort_report",
        "Cohort report (HTML)",
        "Rapport de cohorte (HTML)",
    ),
    (
        "program_report",
        "Program report (HTML)",
        "Rapport de programme (HTML)",
    ),
    ("mastery", "Mastery", "Maîtrise"),
    ("attempts", "Answers", "Réponses"),
    ("updated", "Updated", "Mis à jour"),
    ("mastered", "mastered", "maîtrisée"),
    ("not_mastered", "not yet", "pas encore"),
    ("recent_answers", "Recent answers", "Réponses récentes"),
    (
        "no_answers",
        "No answer yet.",
        "Aucune réponse pour l’instant.",
    ),
    ("when", "When", "Quand"),
    ("item", "Item", "Question"),
    ("correct", "correct", "juste"),
    ("wrong", "wrong", "fausse"),
    ("result", "Result", "Résultat"),
    ("recent_modules", "Recent modules", "Modules récents"),
    (
        "no_modules",
        "No module activity yet.",
        "Aucune activité sur les modules pour l’instant.",
    ),
    ("module", "Module", "Module"),
    ("event", "Event", "Événement"),
    (
        "next_modules",
        "Next recommended modules",
        "Prochains modules recommandés",
    ),
    (
        "no_recommendation",
        "Nothing to recommend:",
        "Rien à recommander :",
    ),
    ("why", "Why", "Pourquoi"),
    ("questions", "Questions", "Questions"),
    (
        "module_or_questions",
        "Module or questions",
        "Module ou questions",
    ),
    (
        "mastery_history",
        "Mastery over time",
        "Maîtrise au fil du temps",
    ),
    (
        "mastery_history_caption",
        "P(mastered) after each answer, oldest first.",
        "P(maîtrisé) après chaque réponse, de la plus ancienne à la plus récente.",
    ),
    ("after_answer", "After answer", "Après la réponse"),
    ("cohorts", "Cohorts", "Cohortes"),
    ("version", "Formation version", "Version de la formation"),
    ("size", "Size", "Taille"),
    ("companies", "Companies", "Entreprises"),
    ("language", "Language", "Langue"),
    ("locked", "Locked", "Verrouillée"),
    ("yes", "yes", "oui"),
    ("no", "no", "non"),
    ("lock", "Lock", "Verrouiller"),
    ("unlock", "Unlock", "Déverrouiller"),
    ("violations", "Rules broken", "Règles enfreintes"),
    ("form_cohorts", "Form cohorts", "Former les cohortes"),
    (
        "form_intro",
        "Preview a formation first (nothing is stored), then commit it.",
        "Prévisualisez d’abord une formation (rien n’est enregistré), puis validez-la.",
    ),
    ("objective", "Objective", "Objectif"),
    (
        "balanced",
        "balanced (mixed levels)",
        "équilibrée (niveaux mélangés)",
    ),
    (
        "leveled",
        "leveled (similar levels)",
        "par niveau (niveaux proches)",
    ),
    ("seed", "Seed", "Graine"),
    ("preview", "Preview", "Prévisualiser"),
    ("commit", "Commit this formation", "Valider cette formation"),
    (
        "preview_title",
        "Formation preview",
        "Aperçu de la formation",
    ),
    (
        "preview_note",
        "Preview only: nothing was stored. Commit to replace the program's unlocked cohorts.",
        "Aperçu seulement : rien n’a été enregistré. Validez pour remplacer les cohortes non verrouillées du programme.",
    ),
    ("balance", "Balance report", "Rapport d’équilibre"),
    (
        "balance_caption",
        "Gap between each cohort's mean mastery and the program's, formed against a random draw of the same sizes.",
        "Écart entre la maîtrise moyenne de chaque cohorte et celle du programme : formation comparée à un tirage aléatoire de mêmes tailles.",
    ),
    ("formed", "Formed", "Formation"),
    ("random_draw", "Random draw", "Tirage aléatoire"),
    ("mean_gap", "mean gap", "écart moyen"),
    ("sd_gap", "sd of gap", "écart-type"),
    ("objective_value", "Objective value", "Valeur de l’objectif"),
    (
        "max_company_share",
        "Largest company share",
        "Part maximale d’une entreprise",
    ),
    ("unplaced", "Not placed", "Non placés"),
    (
        "committed",
        "Formation committed: version",
        "Formation validée : version",
    ),
    ("move_learner", "Move a learner", "Déplacer un apprenant"),
    ("target_cohort", "Target cohort", "Cohorte cible"),
    ("move", "Move", "Déplacer"),
    ("moved", "Learner moved.", "Apprenant déplacé."),
    (
        "lock_changed",
        "Cohort lock changed.",
        "Verrouillage de la cohorte modifié.",
    ),
    ("members", "Members", "Membres"),
    ("error", "Error", "Erreur"),
    ("not_found", "Not found.", "Introuvable."),
    (
        "forbidden",
        "Your key may not do this.",
        "Votre clé ne permet pas cette action.",
    ),
    ("back", "Back", "Retour"),
    ("generated_in", "Rendered in", "Page générée en"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_preference_decides_with_q_values() {
        assert_eq!(
            Lang::from_accept_language("fr-FR,fr;q=0.9,en;q=0.8"),
            Lang::Fr
        );
        assert_eq!(Lang::from_accept_language("en-GB,fr;q=0.5"), Lang::En);
        assert_eq!(
            Lang::from_accept_language("de, fr;q=0.3, en;q=0.2"),
            Lang::Fr
        );
        assert_eq!(Lang::from_accept_language("fr;q=0, en;q=0.1"), Lang::En);
        assert_eq!(Lang::from_accept_language("de"), Lang::En);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
        assert_eq!(Lang::from_accept_language("FR-ca"), Lang::Fr);
    }

    #[test]
    fn every_key_is_unique_and_translated() {
        let mut seen = std::collections::BTreeSet::new();
        for (key, en, fr) in MESSAGES {
            assert!(seen.insert(key), "{key} twice");
            assert!(!en.is_empty() && !fr.is_empty(), "{key} untranslated");
        }
        // Proper French: typographic apostrophes, accents present.
        assert!(MESSAGES.iter().all(|(_, _, fr)| !fr.contains('\'')));
        assert_eq!(Lang::Fr.text("signin"), "Se connecter");
    }

    /// Every `t.key` a template names exists in the catalogue.
    #[test]
    fn templates_name_only_known_messages() {
        for (name, source) in super::super::templates::SOURCES {
            let mut rest = *source;
            while let Some(at) = rest.find("t.") {
                let before = rest[..at].chars().last();
                rest = &rest[at + 2..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                    continue;
                }
                let key: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    Lang::En.catalogue().contains_key(key.as_str()),
                    "template {name} names unknown message t.{key}"
                );
            }
        }
    }
}
