//! Architecture invariants, enforced (in the spirit of rust-analyzer's tidy).

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
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
