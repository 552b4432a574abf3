//! `new`: a guest crate outside this repository, ready for the daily loop
//! (test → build → run → record → deploy). The files are the templates in
//! `src/templates/guest/`; the SDK and the test kit are path dependencies on
//! the checkout this binary was built from (none is on crates.io), or on the
//! one `--repo` names.
//!
//! This module must not overwrite anything: it refuses a directory that
//! exists and is not empty.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

const FILES: [(&str, &str); 7] = [
    ("Cargo.toml", include_str!("templates/guest/Cargo.toml.in")),
    ("src/lib.rs", include_str!("templates/guest/lib.rs.in")),
    ("tests/host.rs", include_str!("templates/guest/host.rs.in")),
    ("scenario.json", include_str!("templates/guest/scenario.json")),
    ("README.md", include_str!("templates/guest/README.md.in")),
    (".gitignore", include_str!("templates/guest/gitignore")),
    (".cargo/config.toml", include_str!("templates/guest/cargo-config.toml")),
];

/// The packages of this repository a new crate depends on: a crate of the
/// same name would collide with one of them in its own lockfile.
const TAKEN: [&str; 3] = ["executor-guest", "executor-host", "executor-testkit"];

/// The crate name a directory name gives: lowercase, `-` for anything
/// else, starting with a letter.
fn crate_name(dir: &Path) -> Result<String> {
    let base = dir.file_name().and_then(|n| n.to_str()).context("the directory needs a name")?;
    let name: String =
        base.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let name = name.trim_matches('-').to_owned();
    if TAKEN.contains(&name.as_str()) {
        bail!(
            "{base:?} would name the crate `{name}`, as a package it depends on is named: pick another directory name"
        );
    }
    if !base.is_ascii() {
        // Dropping the other characters would name the crate after part
        // of the directory's name, silently.
        bail!("{base:?} does not make a crate name: use ASCII letters, digits, `-` and `_`");
    }
    let module = name.replace('-', "_");
    if RESERVED.split_whitespace().any(|reserved| reserved == module) {
        bail!(
            "{base:?} would name the crate `{name}`, a Rust keyword or a crate of the standard library, which its \
             tests could not `use`: pick another directory name"
        );
    }
    match name.chars().next() {
        Some(c) if c.is_ascii_lowercase() => Ok(name),
        _ => bail!("{base:?} does not make a crate name: start the directory name with a letter"),
    }
}

/// Names a crate cannot have and still be `use`d by name: Rust's keywords
/// (strict and reserved, lowercase as a crate name is) and the standard
/// library's crates (`cargo new` refuses the same).
const RESERVED: &str = "abstract alloc as async await become box break const continue core crate do dyn else \
                        enum extern false final fn for gen if impl in let loop macro match mod move mut override \
                        priv proc_macro pub ref return self static std struct super test trait true try type \
                        typeof unsafe unsized use virtual where while yield";

/// Creates the crate in `dir`; returns its name.
pub fn new(dir: &Path, repo: Option<PathBuf>) -> Result<String> {
    let name = crate_name(dir)?;
    if dir.exists() && dir.read_dir().with_context(|| format!("reading {}", dir.display()))?.next().is_some() {
        bail!("{} exists and is not empty", dir.display());
    }
    let repo = repo.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let repo = repo.canonicalize().with_context(|| format!("finding the executor-host checkout {}", repo.display()))?;
    if !repo.join("guest/sdk/Cargo.toml").is_file() {
        bail!("{} is not an executor-host checkout (no guest/sdk): name one with --repo", repo.display());
    }
    let path = |sub: &str| repo.join(sub).display().to_string().replace('\\', "/");
    for (file, template) in FILES {
        let text = template
            .replace("{{crate}}", &name)
            .replace("{{module}}", &name.replace('-', "_"))
            .replace("{{sdk}}", &path("guest/sdk"))
            .replace("{{host}}", &path("host"))
            .replace("{{testkit}}", &path("host/testkit"));
        let target = dir.join(file);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
    }
    Ok(name)
}
