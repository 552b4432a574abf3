//! The SDK carries its own copy of the WIT (`guest/sdk/wit/`) so that it
//! packages on its own (`generate!` may only read files inside the
//! package), while the workspace's top-level `wit/` stays the one source of
//! truth, read by the host. This test fails as soon as the two differ.
//!
//! It is a workspace check, not a package test: the package leaves it out
//! (`exclude` in `Cargo.toml`), since `../../wit` exists only in the
//! workspace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every `.wit` file under `dir` (recursively, for `deps/`), by its path
/// relative to `dir`, with its bytes.
fn wit_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current).unwrap_or_else(|e| panic!("reading {}: {e}", current.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "wit") {
                let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                files.insert(path.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    files
}

#[test]
fn package_wit_is_a_byte_for_byte_copy_of_the_workspace_wit() {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = manifest_dir.join("../../wit");
    let source = source.canonicalize().unwrap_or(source);
    let copy = manifest_dir.join("wit");
    let fix = "the top-level wit/ is the source of truth: at the workspace root, run \
               `rm -r guest/sdk/wit && cp -r wit guest/sdk/wit`";
    let source_files = wit_files(&source);
    let copy_files = wit_files(&copy);
    assert!(!source_files.is_empty(), "no .wit file in {}", source.display());

    let mut problems = Vec::new();
    for (name, bytes) in &source_files {
        match copy_files.get(name) {
            None => problems.push(format!("{} is missing from {}", name.display(), copy.display())),
            Some(copied) if copied != bytes => {
                let line = copied.split(|&b| b == b'\n').zip(bytes.split(|&b| b == b'\n')).position(|(a, b)| a != b);
                let at = line.map_or("in length".to_string(), |l| format!("from line {}", l + 1));
                problems.push(format!(
                    "{} differs between {} and {} ({at})",
                    name.display(),
                    source.display(),
                    copy.display()
                ));
            }
            Some(_) => {}
        }
    }
    for name in copy_files.keys().filter(|name| !source_files.contains_key(*name)) {
        problems.push(format!("{} is in {} but not in {}", name.display(), copy.display(), source.display()));
    }
    assert!(problems.is_empty(), "{}\n{fix}", problems.join("\n"));
}
