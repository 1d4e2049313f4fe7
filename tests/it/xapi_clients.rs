//! Real xAPI clients against the real server (`spoc serve`): TinCanPython
//! (PyPI `tincan`), TinCanJS (npm `tincanjs`) and xAPI.js (npm
//! `@xapi/xapi`) send statements with `sendStatement(s)` (and their
//! equivalents), with and without ids, with attachments where the client
//! can; each must report success, and the mastery of its learner must
//! have changed, read through gRPC.
//!
//! The clients are the scripts of `tests/clients/xapi/`, installed by the
//! test itself into `target/tmp/xapi-clients/` (`npm ci` from the lock
//! file; a virtual environment with `pip install -r requirements.txt`),
//! once per lock or requirements file. A test whose tool (node and npm,
//! python3) is missing says so and passes; `SPOC_SKIP_XAPI_CLIENTS=1`
//! skips them all. A failed install fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::common::hand_bkt;
use crate::common::outside::{
    Served, cache, have, install_step, installed, mark_installed, run_bounded, skipped,
};

/// The activity every client answers: an item of the served catalog.
const ITEM: &str = "https://lms.example.com/xapi/clients/question/1";
/// How long one install or client run may take before it is killed.
const LIMIT: Duration = Duration::from_secs(300);

fn sources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/xapi")
}

/// The folder where the npm clients are installed, or `None` without
/// node and npm. Installs once per lock file.
fn node_clients() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        if !have("node") || !have("npm") {
            return None;
        }
        let dir = cache("xapi-clients/js");
        for file in [
            "package.json",
            "package-lock.json",
            "env.js",
            "send_tincanjs.js",
            "send_xapijs.js",
        ] {
            std::fs::copy(sources().join(file), dir.join(file)).expect("copy client file");
        }
        let lock = std::fs::read_to_string(dir.join("package-lock.json")).expect("lock");
        if !installed(&dir, &lock) {
            install_step(
                Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                    .current_dir(&dir),
                LIMIT,
            );
            mark_installed(&dir, &lock);
        }
        Some(dir)
    })
    .as_deref()
}

/// The Python of a virtual environment holding TinCanPython, or `None`
/// without a python3 that can make one. Installs once per requirements.
fn python_client() -> Option<&'static Path> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            if !have("python3") {
                return None;
            }
            let dir = cache("xapi-clients/venv");
            let python = dir.join("bin/python");
            let requirements =
                std::fs::read_to_string(sources().join("requirements.txt")).expect("requirements");
            if !installed(&dir, &requirements) {
                let venv = run_bounded(
                    Command::new("python3")
                        .args(["-m", "venv", "--clear"])
                        .arg(&dir),
                    LIMIT,
                );
                if !venv.status.success() {
                    eprintln!(
                        "python3 cannot make a virtual environment: {}",
                        String::from_utf8_lossy(&venv.stderr)
                    );
                    return None;
                }
                install_step(
                    Command::new(&python)
                        .args([
                            "-m",
                            "pip",
                            "install",
                            "--quiet",
                            "--disable-pip-version-check",
                            "-r",
                        ])
                        .arg(sources().join("requirements.txt")),
                    LIMIT,
                );
                mark_installed(&dir, &requirements);
            }
            Some(python)
        })
        .as_deref()
}

/// Runs one client against a fresh server; checks that it reported
/// success for `expected` answers and that its learner's mastery moved.
async fn run_client(name: &str, learner: &str, command: Command, expected: i32) {
    let served = Served::start(&[ITEM]).await;
    let mut command = command;
    command
        .env("XAPI_ENDPOINT", served.endpoint())
        .env("XAPI_USERNAME", "lms")
        .env("XAPI_PASSWORD", &served.lms_key)
        .env("XAPI_LEARNER", learner)
        .env("XAPI_ITEM", ITEM);
    let output = tokio::task::spawn_blocking(move || run_bounded(&mut command, LIMIT))
        .await
        .expect("client thread");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{name} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let report: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("{name} printed no report:\n{stdout}\n{stderr}"));
    assert_eq!(report["client"], name);
    assert_eq!(report["answers"], expected, "{name}: {report}");
    let (p, attempts) = served.mastery(learner).await;
    assert_eq!(attempts, expected, "{name}: attempts stored");
    assert!(
        (p - hand_bkt(&[])).abs() > 1e-6,
        "{name}: mastery did not move from the prior ({p})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tincanpython_save_statement_and_save_statements() {
    if skipped("SPOC_SKIP_XAPI_CLIENTS", "TinCanPython") {
        return;
    }
    let Some(python) = python_client() else {
        eprintln!("TinCanPython: skipped (no python3 with venv)");
        return;
    };
    let mut command = Command::new(python);
    command.arg(sources().join("send_tincanpython.py"));
    run_client("tincanpython", "tincanpython@example.com", command, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tincanjs_send_statement_and_send_statements() {
    if skipped("SPOC_SKIP_XAPI_CLIENTS", "TinCanJS") {
        return;
    }
    let Some(dir) = node_clients() else {
        eprintln!("TinCanJS: skipped (no node and npm)");
        return;
    };
    let mut command = Command::new("node");
    command.arg("send_tincanjs.js").current_dir(dir);
    run_client("tincanjs", "tincanjs@example.com", command, 7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xapijs_send_statement_and_send_statements() {
    if skipped("SPOC_SKIP_XAPI_CLIENTS", "xAPI.js") {
        return;
    }
    let Some(dir) = node_clients() else {
        eprintln!("xAPI.js: skipped (no node and npm)");
        return;
    };
    let mut command = Command::new("node");
    command.arg("send_xapijs.js").current_dir(dir);
    run_client("xapijs", "xapijs@example.com", command, 28).await;
}
