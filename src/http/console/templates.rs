//! The console's templates (minijinja, HTML auto-escaping), compiled into
//! the binary from `templates/` so that the service stays one file.

use std::sync::OnceLock;

use minijinja::Environment;

/// (name, source) of every template.
pub const SOURCES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("signin.html", include_str!("templates/signin.html")),
    ("error.html", include_str!("templates/error.html")),
    ("home.html", include_str!("templates/home.html")),
    ("cohort.html", include_str!("templates/cohort.html")),
    ("alert_row.html", include_str!("templates/alert_row.html")),
    ("learner.html", include_str!("templates/learner.html")),
    ("program.html", include_str!("templates/program.html")),
    ("formation.html", include_str!("templates/formation.html")),
];

/// The environment, built once: a template that does not parse is a bug
/// caught by the first page (and by this module's test).
pub fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in SOURCES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("console template {name}: {e}"));
        }
        env
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_parses() {
        let env = super::environment();
        for (name, _) in super::SOURCES {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
    }
}
