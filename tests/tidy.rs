//! Architecture invariants, enforced (in the spirit of rust-analyzer's tidy).

// Tests unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The domain core knows nothing of gRPC or storage.
#[test]
fn domain_knows_nothing_of_tonic_prost_or_sled() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/domain"),
        &mut files,
    );
    assert!(!files.is_empty());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Code only: doc comments may name what the module stays away from.
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for word in ["tonic", "prost", "sled"] {
                assert!(
                    !line.contains(word),
                    "{} uses {word}: {line}",
                    file.display()
                );
            }
        }
    }
}

/// Only the store knows sled.
#[test]
fn only_the_store_knows_sled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    for file in files {
        if file.starts_with(root.join("store")) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            !text.contains("sled::"),
            "{} uses sled directly",
            file.display()
        );
    }
}

/// The HTTP edge knows no generated protobuf type: the Connect bridge
/// works from the descriptor set and reaches the services through the
/// gRPC stack only.
#[test]
fn the_http_edge_knows_no_generated_type() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http"),
        &mut files,
    );
    assert!(!files.is_empty());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            let generated = line.match_indices("pb::").any(|(at, _)| {
                !line[at..].starts_with("pb::FILE_DESCRIPTOR_SET")
                    && !line[..at].ends_with("tonic_types::")
            });
            assert!(
                !generated,
                "{} uses a generated type: {line}",
                file.display()
            );
        }
    }
}

/// The source files of `src/`, with their path from the crate root, code
/// only (lines that are comments dropped).
fn code_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let rel = file
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&file).unwrap();
            let code: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect();
            (rel, code.join("\n"))
        })
        .collect()
}

/// Files outside `allowed` that use `word`.
fn users_of(word: &str, allowed: &[&str]) -> Vec<String> {
    code_files()
        .into_iter()
        .filter(|(rel, code)| code.contains(word) && !allowed.iter().any(|a| rel.starts_with(a)))
        .map(|(rel, _)| rel)
        .collect()
}

/// Work leaves the async runtime through `offload.rs` only (ARCHITECTURE.md,
/// cross-cutting concerns): its two entry points bound the jobs running.
#[test]
fn only_offload_leaves_the_runtime() {
    assert_eq!(
        users_of("spawn_blocking", &["src/offload.rs"]),
        Vec::<String>::new()
    );
}

/// An engine write is durable when it returns: the edges never wait for
/// the disk themselves.
#[test]
fn the_edges_do_not_wait_for_the_disk() {
    let edges = users_of(".durable()", &["src/store", "src/engine"]);
    assert_eq!(edges, Vec::<String>::new());
}

/// What `check` reports of every source file of `src/` (given its path
/// from the crate root and its whole text), in path order.
fn reports(check: impl Fn(&str, &str) -> Vec<String>) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(root).unwrap().to_string_lossy();
        let text = std::fs::read_to_string(file).unwrap();
        found.extend(check(&rel, &text));
    }
    found
}

/// Every path into the crate (`use crate::...`, `crate::x::y` in code,
/// `super::` resolved) points down the layers of ARCHITECTURE.md, and
/// protobuf types stay at the gRPC edge.
#[test]
fn imports_point_down_the_layers() {
    let found = reports(layers::violations);
    assert!(
        found.is_empty(),
        "imports against the layers:\n{}",
        found.join("\n")
    );
}

/// The checker itself, on sources held in memory: an upward import, a
/// proto type outside the gRPC edge and a `super::` path that climbs out
/// of its layer are each reported; comments, strings and imports within
/// the rules are not.
#[test]
fn the_layer_check_reports_an_upward_import() {
    let count = |file: &str, source: &str| layers::violations(file, source).len();
    // Upward: the domain naming the API, in every spelling.
    assert_eq!(
        count("src/domain/x.rs", "use crate::api::pb::Learner;\n"),
        1
    );
    assert_eq!(
        count(
            "src/domain/x.rs",
            "use crate::{domain::learner::Learner, engine::{Engine, now}};\n"
        ),
        2
    );
    assert_eq!(
        count(
            "src/domain/x.rs",
            "fn f() { let _ = crate::store::Store::open; }\n"
        ),
        1
    );
    assert_eq!(
        count(
            "src/domain/a/b.rs",
            "use super::super::super::engine::Engine;\n"
        ),
        1
    );
    assert_eq!(
        count("src/store/x.rs", "use crate::engine::now_micros;\n"),
        1
    );
    assert_eq!(
        count("src/engine/x.rs", "use crate::server::ApiStack;\n"),
        1
    );
    assert_eq!(
        count("src/api/x.rs", "use crate::store::backup::TempSnapshot;\n"),
        1
    );
    assert_eq!(
        count(
            "src/http/limits.rs",
            "use crate::server::REQUEST_TIMEOUT;\n"
        ),
        1
    );
    // Proto types: only the gRPC edge, its assembly and the CLI's clients.
    assert_eq!(count("src/http/admin.rs", "use crate::api::pb;\n"), 1);
    assert_eq!(
        count("src/engine/x.rs", "use crate::api::{pb, validate};\n"),
        2
    );
    assert_eq!(count("src/cli/x.rs", "use crate::api::pb;\n"), 0);
    assert_eq!(
        count("src/api/x.rs", "use super::pb::{self, Learner};\n"),
        0
    );
    assert_eq!(
        count(
            "src/http/connect/schema.rs",
            "fn f() { g(crate::api::pb::FILE_DESCRIPTOR_SET) }\n"
        ),
        0
    );
    // Within the rules, or not code at all.
    assert_eq!(
        count(
            "src/domain/x.rs",
            "//! See [`crate::api::pb`].\n/* crate::engine */ const S: &str = \"crate::store\";\n\
             use crate::error::Result;\nuse super::learner::Micros;\n\
             mod tests { use super::*; fn f<'a>(c: char) -> bool { c == '{' } }\n"
        ),
        0
    );
    assert_eq!(
        count("src/http/mod.rs", "use crate::server::ApiStack;\n"),
        0
    );
    assert_eq!(
        count("src/cli/x.rs", "use crate::{server, store, http};\n"),
        0
    );
    // A module no layer claims is reported, so a new one gets a place.
    assert_eq!(count("src/engine/x.rs", "use crate::newthing::X;\n"), 1);
    // The report names the file, the line and the path.
    let report = layers::violations("src/store/x.rs", "\n\nuse crate::engine::now_micros;\n");
    assert!(
        report[0].contains("src/store/x.rs:3") && report[0].contains("engine::now_micros"),
        "{report:?}"
    );
}

/// Locks are `parking_lot`'s, which do not poison (ARCHITECTURE.md,
/// cross-cutting concerns): one policy, no `expect` on a lock, no
/// recovery from a poisoned one.
#[test]
fn locks_come_from_parking_lot() {
    let found = reports(locks::std_locks);
    assert!(
        found.is_empty(),
        "std locks (use parking_lot's):\n{}",
        found.join("\n")
    );
}

/// The lock check itself, on sources held in memory: std's locks are
/// reported however they are named (a plain path, a `use` group over
/// several lines, nested groups, the `sync` module imported); tokio's
/// and parking_lot's locks, other std items and comments are not.
#[test]
fn the_lock_check_reports_std_locks() {
    let count = |source: &str| locks::std_locks("src/x.rs", source).len();
    assert_eq!(count("use std::sync::Mutex;\n"), 1);
    assert_eq!(count("struct S { gate: std::sync::RwLock<()> }\n"), 1);
    assert_eq!(
        count("use std::sync::{\n    Arc, Condvar, Mutex,\n    atomic::AtomicU64,\n};\n"),
        2
    );
    assert_eq!(
        count("use std::{collections::HashMap, sync::{Arc, RwLockReadGuard}};\n"),
        1
    );
    assert_eq!(
        count("fn f() -> std::sync::MutexGuard<'static, ()> {}\n"),
        1
    );
    assert_eq!(
        count("use std::sync::{self, Arc};\nstatic M: sync::Mutex<()> = sync::Mutex::new(());\n"),
        2
    );
    assert_eq!(
        count(
            "use std::sync::{Arc, OnceLock, atomic::Ordering};\nuse parking_lot::{Condvar, Mutex};\n\
             use tokio::sync::Mutex as AsyncMutex;\nstruct S { r: tokio::sync::RwLock<()> }\n\
             // std::sync::Mutex, once\nconst S: &str = \"std::sync::Condvar\";\n"
        ),
        0
    );
    // The report names the file, the line and the path.
    let report = locks::std_locks("src/store/x.rs", "\n\nuse std::sync::Mutex;\n");
    assert!(
        report[0].contains("src/store/x.rs:3") && report[0].contains("std::sync::Mutex"),
        "{report:?}"
    );
}

/// Finds std's locks in a source file, with the layer checker's reader.
mod locks {
    use super::layers::{blank, tokens, tree};

    /// The lock types of `std::sync` (their guards start the same way).
    const STD_LOCKS: &[&str] = &["Mutex", "RwLock", "Condvar"];

    /// Every use of a std lock in `source` (of `file`), as
    /// `file:line: path`.
    pub fn std_locks(file: &str, source: &str) -> Vec<String> {
        let tokens = tokens(&blank(source));
        let is = |i: usize, t: &str| tokens.get(i).is_some_and(|(_, x)| x == t);
        // Whether the file imports the `sync` module itself, so that
        // `sync::Mutex` in its code is std's.
        let mut sync_module = false;
        let mut found = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            // `std::...` (or `::std::...`), not the tail of another path.
            let tail = i >= 2 && is(i - 1, "::") && is_ident(&tokens[i - 2].1);
            let starts = is(i, "std") && is(i + 1, "::") && !tail;
            if !starts {
                i += 1;
                continue;
            }
            let mut paths = Vec::new();
            let end = tree(&tokens, i + 2, vec!["std".to_string()], &mut paths);
            for path in paths {
                if path == ["std", "sync"] {
                    sync_module = true;
                }
                if path.len() > 2 && path[1] == "sync" && is_lock(&path[2]) {
                    found.push(format!("{file}:{}: {}", tokens[i].0, path.join("::")));
                }
            }
            i = end;
        }
        if sync_module {
            for (i, (line, t)) in tokens.iter().enumerate() {
                let bare = i == 0 || !is(i - 1, "::");
                if t == "sync" && bare && is(i + 1, "::") {
                    if let Some((_, name)) = tokens.get(i + 2).filter(|(_, n)| is_lock(n)) {
                        found.push(format!("{file}:{line}: std::sync::{name}"));
                    }
                }
            }
        }
        found
    }

    fn is_lock(name: &str) -> bool {
        STD_LOCKS.iter().any(|lock| name.starts_with(lock))
    }

    fn is_ident(token: &str) -> bool {
        token.chars().all(|c| c.is_alphanumeric() || c == '_')
    }
}

/// The layer rules and a small reader of Rust paths (comments and
/// literals blanked, `use` trees expanded, `super::` and `self::`
/// resolved against the file's module and its inline modules).
mod layers {
    /// What each top-level module may import of the crate, lowest layer
    /// first. `cli` (and the crate root) may import anything.
    const ALLOWED: &[(&str, &[&str])] = &[
        ("error", &["error"]),
        ("clock", &["clock", "domain"]),
        ("offload", &["offload", "error"]),
        ("domain", &["domain", "error"]),
        ("store", &["store", "domain", "error", "clock", "offload"]),
        (
            "engine",
            &["engine", "store", "domain", "error", "clock", "offload"],
        ),
        (
            "api",
            &["api", "engine", "domain", "error", "clock", "offload"],
        ),
        (
            "server",
            &[
                "server", "api", "engine", "domain", "error", "clock", "offload",
            ],
        ),
        // `server` and `api` under the item rules below only.
        (
            "http",
            &[
                "http", "server", "api", "engine", "domain", "error", "clock", "offload",
            ],
        ),
    ];

    /// Layers that may name generated protobuf types (`api::pb`): the gRPC
    /// edge, the server that registers its services, and the CLI's
    /// clients.
    const PROTO: &[&str] = &["api", "server", "cli"];

    /// What the HTTP edge may name of the gRPC side: the service stack the
    /// Connect bridge calls in process, and the descriptor set it reads
    /// JSON with (ARCHITECTURE.md, `src/http/`).
    const HTTP_REACHES: &[&[&str]] = &[
        &["server", "ApiStack"],
        &["server", "InProcessService"],
        &["server", "InProcessRequest"],
        &["api", "pb", "FILE_DESCRIPTOR_SET"],
    ];

    /// Every import of `file` (a path such as `src/store/backup.rs`)
    /// against the rules, as `file:line: reason`.
    pub fn violations(file: &str, source: &str) -> Vec<String> {
        let module = module_of(file);
        let Some(layer) = module.first().map(String::as_str) else {
            return Vec::new(); // lib.rs and main.rs wire everything
        };
        let mut out = Vec::new();
        for (line, path) in crate_paths(&module, source) {
            if let Some(reason) = judge(layer, &path) {
                out.push(format!("{file}:{line}: {} ({reason})", path.join("::")));
            }
        }
        out
    }

    /// Why `layer` may not name `path`, if it may not.
    fn judge(layer: &str, path: &[String]) -> Option<String> {
        let target = path.first()?.as_str();
        let starts = |prefix: &[&str]| {
            path.len() >= prefix.len() && path.iter().zip(prefix).all(|(a, b)| a == b)
        };
        if !ALLOWED.iter().any(|(l, _)| *l == target) && target != "cli" {
            return Some(format!(
                "no layer claims module `{target}`: add it to tidy's table"
            ));
        }
        if starts(&["api", "pb"]) && !PROTO.contains(&layer) && layer != "http" {
            return Some(format!("protobuf types stay in {}", PROTO.join(", ")));
        }
        if layer == "cli" {
            return None;
        }
        let (_, allowed) = ALLOWED.iter().find(|(l, _)| *l == layer)?;
        if !allowed.contains(&target) {
            return Some(format!("{layer} imports only {}", allowed.join(", ")));
        }
        if layer == "http"
            && ["server", "api"].contains(&target)
            && !HTTP_REACHES.iter().any(|p| starts(p))
        {
            return Some(
                "the HTTP edge reaches the gRPC side only through ApiStack and the descriptor set"
                    .to_string(),
            );
        }
        None
    }

    /// The module path of a file under `src/`.
    fn module_of(file: &str) -> Vec<String> {
        let rel = file.strip_prefix("src/").unwrap_or(file);
        let rel = rel.strip_suffix(".rs").unwrap_or(rel);
        let mut parts: Vec<String> = rel.split('/').map(str::to_string).collect();
        if matches!(
            parts.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            parts.pop();
        }
        parts
    }

    /// Every path into the crate, resolved from the crate root, with its
    /// 1-based line.
    fn crate_paths(module: &[String], source: &str) -> Vec<(usize, Vec<String>)> {
        let tokens = tokens(&blank(source));
        let mut out = Vec::new();
        // The inline modules open at each brace depth.
        let mut inline: Vec<(usize, String)> = Vec::new();
        let mut depth = 0;
        let mut i = 0;
        while i < tokens.len() {
            let (_, t) = &tokens[i];
            match t.as_str() {
                "{" => depth += 1,
                "}" => {
                    depth -= 1;
                    if inline.last().is_some_and(|(d, _)| *d == depth) {
                        inline.pop();
                    }
                }
                "mod" if tokens.get(i + 2).is_some_and(|(_, t)| t == "{") => {
                    inline.push((depth, tokens[i + 1].1.clone()));
                }
                "crate" | "super" | "self"
                    if tokens.get(i + 1).is_some_and(|(_, t)| t == "::")
                        && (i == 0 || !matches!(tokens[i - 1].1.as_str(), "::" | "$")) =>
                {
                    let mut here: Vec<String> = module.to_vec();
                    here.extend(inline.iter().map(|(_, m)| m.clone()));
                    let mut prefix = match t.as_str() {
                        "crate" => Vec::new(),
                        "self" => here,
                        _ => {
                            here.pop();
                            here
                        }
                    };
                    let mut j = i + 2;
                    while tokens.get(j).is_some_and(|(_, t)| t == "super")
                        && tokens.get(j + 1).is_some_and(|(_, t)| t == "::")
                    {
                        prefix.pop();
                        j += 2;
                    }
                    let line = tokens[i].0;
                    let mut paths = Vec::new();
                    let end = tree(&tokens, j, prefix, &mut paths);
                    out.extend(paths.into_iter().map(|p| (line, p)));
                    i = end;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        out
    }

    /// Reads a use tree (or a plain path) from `tokens[at]`, after a
    /// `::`; pushes the full paths; returns the index after it.
    pub(super) fn tree(
        tokens: &[(usize, String)],
        mut at: usize,
        mut prefix: Vec<String>,
        out: &mut Vec<Vec<String>>,
    ) -> usize {
        loop {
            match tokens.get(at).map(|(_, t)| t.as_str()) {
                Some("{") => {
                    at += 1;
                    loop {
                        match tokens.get(at).map(|(_, t)| t.as_str()) {
                            Some("}") => return at + 1,
                            Some(",") => at += 1,
                            Some("self") => {
                                out.push(prefix.clone());
                                at += 1;
                            }
                            Some(_) => at = tree(tokens, at, prefix.clone(), out),
                            None => return at,
                        }
                    }
                }
                Some(t) if t.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                    prefix.push(t.to_string());
                    at += 1;
                    if tokens.get(at).is_some_and(|(_, t)| t == "::") {
                        at += 1;
                        continue;
                    }
                    out.push(prefix);
                    return at;
                }
                // `*`, `<` (a turbofish) or anything else ends the path.
                _ => {
                    out.push(prefix);
                    return at;
                }
            }
        }
    }

    /// Identifiers, `::` and single punctuation, with their line.
    pub(super) fn tokens(text: &str) -> Vec<(usize, String)> {
        let chars: Vec<char> = text.chars().collect();
        let mut out = Vec::new();
        let (mut i, mut line) = (0, 1);
        while i < chars.len() {
            let c = chars[i];
            if c == '\n' {
                line += 1;
                i += 1;
            } else if c.is_whitespace() {
                i += 1;
            } else if c.is_alphanumeric() || c == '_' {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push((line, chars[start..i].iter().collect()));
            } else if c == ':' && chars.get(i + 1) == Some(&':') {
                out.push((line, "::".to_string()));
                i += 2;
            } else {
                out.push((line, c.to_string()));
                i += 1;
            }
        }
        out
    }

    /// `source` with comments, strings and character literals replaced by
    /// spaces (line breaks kept, so that lines still count).
    pub(super) fn blank(source: &str) -> String {
        let c: Vec<char> = source.chars().collect();
        let mut out = String::with_capacity(source.len());
        let keep = |ch: char| if ch == '\n' { '\n' } else { ' ' };
        let mut i = 0;
        while i < c.len() {
            let next = c.get(i + 1).copied();
            if c[i] == '/' && next == Some('/') {
                while i < c.len() && c[i] != '\n' {
                    out.push(' ');
                    i += 1;
                }
            } else if c[i] == '/' && next == Some('*') {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                        depth += 1;
                        out.push_str("  ");
                        i += 2;
                    } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        out.push_str("  ");
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        out.push(keep(c[i]));
                        i += 1;
                    }
                }
            } else if let Some(hashes) = raw_string_at(&c, i) {
                // r"..", r#".."#, br#".."#: up to the quote and as many #.
                while c[i] != '"' {
                    out.push(' ');
                    i += 1;
                }
                out.push(' ');
                i += 1;
                while i < c.len() {
                    if c[i] == '"' && (1..=hashes).all(|k| c.get(i + k) == Some(&'#')) {
                        out.push_str(&" ".repeat(hashes + 1));
                        i += hashes + 1;
                        break;
                    }
                    out.push(keep(c[i]));
                    i += 1;
                }
            } else if c[i] == '"' {
                out.push(' ');
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' {
                        out.push(' ');
                        i += 1;
                    }
                    if i < c.len() {
                        out.push(keep(c[i]));
                        i += 1;
                    }
                }
                out.push(' ');
                i += 1;
            } else if c[i] == '\'' && (next == Some('\\') || c.get(i + 2) == Some(&'\'')) {
                // A character literal, not a lifetime.
                out.push(' ');
                i += 1;
                if c.get(i) == Some(&'\\') {
                    // The backslash and the character it escapes.
                    out.push_str("  ");
                    i += 2;
                }
                while i < c.len() && c[i] != '\'' {
                    out.push(' ');
                    i += 1;
                }
                out.push(' ');
                i += 1;
            } else {
                out.push(c[i]);
                i += 1;
            }
        }
        out
    }

    /// The number of `#` of a raw string starting at `i`, if one does.
    fn raw_string_at(c: &[char], i: usize) -> Option<usize> {
        if i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_') {
            return None;
        }
        let mut j = i;
        if c.get(j) == Some(&'b') {
            j += 1;
        }
        if c.get(j) != Some(&'r') {
            return None;
        }
        j += 1;
        let mut hashes = 0;
        while c.get(j) == Some(&'#') {
            hashes += 1;
            j += 1;
        }
        (c.get(j) == Some(&'"')).then_some(hashes)
    }
}
