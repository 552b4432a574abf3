//! The module store: deploy, list, load, remove; names that could escape the
//! directory; invalid components; atomicity; and the CLI commands.

use std::path::Path;
use std::process::Command;

use cap_std::fs::Dir;
use executor_host::{Deployed, ModuleStore, StoreError};
use executor_host::{Sandbox, SandboxConfig, WasmProgram};
use sha2::{Digest, Sha256};

use crate::support::*;

fn hash(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A store in a fresh temporary directory (kept alive by the guard).
fn store() -> (tempfile::TempDir, ModuleStore) {
    let dir = tempfile::tempdir().unwrap();
    let root = Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap();
    (dir, ModuleStore::open(root).unwrap())
}

/// The file names in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn summary(list: &[Deployed]) -> Vec<(&str, &str, u64)> {
    list.iter().map(|d| (d.name.as_str(), d.hash.as_str(), d.size)).collect()
}

fn transfer_works(program: &WasmProgram) {
    let run =
        drive(program, &transfer_exe("alice", "bob", 30), &[input("bob", Some("5")), input("alice", Some("100"))], GAS);
    assert_eq!(run.result, Ok(()));
    assert_eq!(requests(&run), vec![read("alice"), read("bob"), write("alice", "70"), write("bob", "35")]);
}

fn counter_works(program: &WasmProgram) {
    let run = drive(program, br#"{"key":"hits","amount":5}"#, &[input("hits", Some("37"))], GAS);
    assert_eq!(run.result, Ok(()));
    assert_eq!(requests(&run), vec![read("hits"), write("hits", "42")]);
}

#[test]
fn deploy_list_load_remove_round_trip() {
    let (dir, store) = store();
    let transfer = bytes(guest_artifacts::TRANSFER);
    let counter = bytes(guest_artifacts::COUNTER);
    assert_eq!(store.list().unwrap(), vec![]);

    let deployed = store.deploy(sandbox(), "transfer", &transfer).unwrap();
    assert_eq!(
        (deployed.name.as_str(), deployed.hash.clone(), deployed.size),
        ("transfer", hash(&transfer), transfer.len() as u64)
    );
    store.deploy(sandbox(), "counter", &counter).unwrap();
    assert_eq!(
        summary(&store.list().unwrap()),
        vec![
            ("counter", hash(&counter).as_str(), counter.len() as u64),
            ("transfer", hash(&transfer).as_str(), transfer.len() as u64)
        ],
        "sorted by name"
    );
    let mut modules = vec![format!("{}.wasm", hash(&counter)), format!("{}.wasm", hash(&transfer))];
    modules.sort();
    assert_eq!(files(&dir.path().join("modules")), modules, "content-addressed");
    assert_eq!(std::fs::read_to_string(dir.path().join("names/transfer")).unwrap().trim(), hash(&transfer));

    transfer_works(&store.load(sandbox(), "transfer").unwrap());
    counter_works(&store.load(sandbox(), "counter").unwrap());

    // A store opened again on the same directory sees the same modules.
    let again = ModuleStore::open(Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap()).unwrap();
    assert_eq!(again.list().unwrap(), store.list().unwrap());

    store.remove("counter").unwrap();
    assert_eq!(summary(&store.list().unwrap()), vec![("transfer", hash(&transfer).as_str(), transfer.len() as u64)]);
    assert_eq!(files(&dir.path().join("modules")), vec![format!("{}.wasm", hash(&transfer))], "unused module removed");
    assert!(matches!(store.load(sandbox(), "counter"), Err(StoreError::NotFound { name }) if name == "counter"));
    assert!(matches!(store.remove("counter"), Err(StoreError::NotFound { .. })));
    transfer_works(&store.load(sandbox(), "transfer").unwrap());
}

#[test]
fn redeploying_a_name_replaces_it() {
    let (dir, store) = store();
    let transfer = bytes(guest_artifacts::TRANSFER);
    let counter = bytes(guest_artifacts::COUNTER);
    store.deploy(sandbox(), "guest", &transfer).unwrap();
    store.deploy(sandbox(), "guest", &counter).unwrap();
    assert_eq!(summary(&store.list().unwrap()), vec![("guest", hash(&counter).as_str(), counter.len() as u64)]);
    counter_works(&store.load(sandbox(), "guest").unwrap());
    assert_eq!(
        files(&dir.path().join("modules")),
        vec![format!("{}.wasm", hash(&counter))],
        "the replaced module is removed"
    );
}

#[test]
fn identical_bytes_are_stored_once() {
    let (dir, store) = store();
    let transfer = bytes(guest_artifacts::TRANSFER);
    let a = store.deploy(sandbox(), "a", &transfer).unwrap();
    let b = store.deploy(sandbox(), "b", &transfer).unwrap();
    store.deploy(sandbox(), "b", &transfer).unwrap();
    assert_eq!(a.hash, b.hash);
    let module = format!("{}.wasm", hash(&transfer));
    assert_eq!(files(&dir.path().join("modules")), vec![module.clone()]);
    assert_eq!(summary(&store.list().unwrap()).len(), 2);

    // Removing one name keeps the module the other still points at.
    store.remove("a").unwrap();
    assert_eq!(files(&dir.path().join("modules")), vec![module]);
    transfer_works(&store.load(sandbox(), "b").unwrap());
    store.remove("b").unwrap();
    assert_eq!(files(&dir.path().join("modules")), Vec::<String>::new());
    assert_eq!(store.list().unwrap(), vec![]);
}

#[test]
fn names_that_could_escape_the_store_are_refused() {
    let outer = tempfile::tempdir().unwrap();
    let inner = outer.path().join("store");
    std::fs::create_dir(&inner).unwrap();
    let store = ModuleStore::open(Dir::open_ambient_dir(&inner, cap_std::ambient_authority()).unwrap()).unwrap();
    let transfer = bytes(guest_artifacts::TRANSFER);
    let long = "a".repeat(65);
    for name in [
        "",
        ".",
        "..",
        "../evil",
        "../../etc/passwd",
        "/etc/passwd",
        "/tmp/x",
        "a/b",
        "names/../x",
        "a\\b",
        "a\0b",
        "\0",
        "x\n",
        ".hidden",
        "-flag",
        "_x",
        "Upper",
        "x.wasm",
        "a b",
        "caf\u{e9}",
        "~",
        long.as_str(),
    ] {
        assert!(matches!(store.deploy(sandbox(), name, &transfer), Err(StoreError::BadName { .. })), "{name:?}");
        assert!(matches!(store.load(sandbox(), name), Err(StoreError::BadName { .. })), "{name:?}");
        assert!(matches!(store.remove(name), Err(StoreError::BadName { .. })), "{name:?}");
        let message = store.deploy(sandbox(), name, &transfer).unwrap_err().to_string();
        assert_eq!(message.lines().count(), 1, "{message}");
    }
    assert_eq!(files(outer.path()), vec!["store"], "nothing written outside the store");
    assert_eq!(files(&inner.join("names")), Vec::<String>::new());
    assert_eq!(files(&inner.join("modules")), Vec::<String>::new(), "a bad name is refused before anything is stored");

    // The edges of the alphabet are fine.
    for name in ["a".repeat(64).as_str(), "0", "z9", "a-b_c", "9-lives"] {
        store.deploy(sandbox(), name, &transfer).unwrap();
    }
    assert_eq!(store.list().unwrap().len(), 5);
}

#[test]
fn invalid_components_are_refused_and_leave_nothing_behind() {
    // A sandbox of its own, so nothing is already compiled in memory and a
    // load really writes artifacts.
    let sandbox = Sandbox::new(SandboxConfig { pool_slots: Some(4), ..SandboxConfig::default() }).unwrap();
    let (dir, store) = store();
    let transfer = bytes(guest_artifacts::TRANSFER);
    store.deploy(&sandbox, "guest", &transfer).unwrap();
    let cwasm = |dir: &Path| files(&dir.join("artifacts")).into_iter().filter(|f| f.ends_with(".cwasm")).count();
    assert_eq!(cwasm(dir.path()), 1, "deploy caches the compiled artifact");

    for (what, bad) in [
        ("wrong world", bytes(guest_artifacts::WRONG_WORLD)),
        ("core module", bytes(guest_artifacts::TRANSFER_CORE)),
        ("garbage", b"not wasm at all".to_vec()),
        ("empty", Vec::new()),
        ("truncated", transfer[..transfer.len() / 2].to_vec()),
    ] {
        for name in ["guest", "fresh"] {
            let error = store.deploy(&sandbox, name, &bad).unwrap_err();
            assert!(matches!(error, StoreError::InvalidComponent { .. }), "{what}: {error}");
        }
    }
    assert_eq!(files(&dir.path().join("names")), vec!["guest"]);
    assert_eq!(files(&dir.path().join("modules")), vec![format!("{}.wasm", hash(&transfer))]);
    let artifacts: Vec<String> =
        files(&dir.path().join("artifacts")).into_iter().filter(|f| f != ".artifact-key").collect();
    assert_eq!(artifacts.len(), 1, "no artifact or temporary file of a refused component: {artifacts:?}");
    transfer_works(&store.load(&sandbox, "guest").unwrap());

    // Another process (another sandbox) finds the artifact already there.
    let other = Sandbox::new(SandboxConfig { pool_slots: Some(4), ..SandboxConfig::default() }).unwrap();
    transfer_works(&store.load(&other, "guest").unwrap());
    assert_eq!(cwasm(dir.path()), 1);
}

#[test]
fn a_crash_mid_deploy_leaves_the_old_version_intact() {
    let (dir, store) = store();
    let transfer = bytes(guest_artifacts::TRANSFER);
    let counter = bytes(guest_artifacts::COUNTER);
    store.deploy(sandbox(), "guest", &transfer).unwrap();
    let before = store.list().unwrap();

    // Leftovers of deploys that crashed before their rename: a half-written
    // name and a half-written module.
    let names = dir.path().join("names");
    let modules = dir.path().join("modules");
    std::fs::write(names.join(".guest.4242.0.tmp"), &hash(&counter)[..10]).unwrap();
    std::fs::write(modules.join(format!(".{}.wasm.4242.1.tmp", hash(&counter))), &counter[..100]).unwrap();
    assert_eq!(store.list().unwrap(), before, "temporary files are not names");
    transfer_works(&store.load(sandbox(), "guest").unwrap());

    // A crash after the module was stored but before the name was moved.
    std::fs::write(modules.join(format!("{}.wasm", hash(&counter))), &counter).unwrap();
    assert_eq!(store.list().unwrap(), before);
    transfer_works(&store.load(sandbox(), "guest").unwrap());
    std::fs::remove_file(modules.join(format!("{}.wasm", hash(&counter)))).unwrap();

    // A write that fails before its rename (the target cannot be replaced):
    // the deploy fails, the old version stays, its temporary file is gone.
    let blocker = modules.join(format!("{}.wasm", hash(&counter)));
    std::fs::create_dir(&blocker).unwrap();
    let error = store.deploy(sandbox(), "guest", &counter).unwrap_err();
    assert!(matches!(error, StoreError::Io { .. }), "{error}");
    assert_eq!(error.to_string(), format!("writing modules/{}.wasm", hash(&counter)));
    let cause = std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default();
    assert!(cause.contains("os error"), "the operating system's error is the source, said once: {cause}");
    assert_eq!(store.list().unwrap(), before);
    transfer_works(&store.load(sandbox(), "guest").unwrap());
    assert_eq!(files(&names), vec![".guest.4242.0.tmp", "guest"], "only the planted leftover");
    assert_eq!(files(&modules).len(), 3, "the transfer module, the planted leftover and the blocker");

    // Once the obstacle is gone, the redeploy goes through.
    std::fs::remove_dir(&blocker).unwrap();
    store.deploy(sandbox(), "guest", &counter).unwrap();
    counter_works(&store.load(sandbox(), "guest").unwrap());
}

#[test]
fn damaged_stores_are_reported_not_trusted() {
    let (dir, store) = store();
    let transfer = bytes(guest_artifacts::TRANSFER);
    store.deploy(sandbox(), "guest", &transfer).unwrap();
    let module = dir.path().join("modules").join(format!("{}.wasm", hash(&transfer)));

    // A module whose bytes no longer match its name.
    std::fs::write(&module, bytes(guest_artifacts::COUNTER)).unwrap();
    assert!(matches!(store.load(sandbox(), "guest"), Err(StoreError::Corrupt(_))));
    // Redeploying the same bytes repairs it.
    store.deploy(sandbox(), "guest", &transfer).unwrap();
    transfer_works(&store.load(sandbox(), "guest").unwrap());

    // A name that does not hold a hash, or points at a missing module.
    std::fs::write(dir.path().join("names/bad"), "../../etc/passwd").unwrap();
    assert!(matches!(store.load(sandbox(), "bad"), Err(StoreError::Corrupt(_))));
    std::fs::write(dir.path().join("names/bad"), format!("{}\n", "0".repeat(64))).unwrap();
    assert!(matches!(store.load(sandbox(), "bad"), Err(StoreError::Corrupt(_))));
    // Left out of the list, so one bad file hides no other name.
    let names: Vec<String> = store.list().unwrap().into_iter().map(|d| d.name).collect();
    assert_eq!(names, ["guest"]);
    std::fs::write(dir.path().join("names/bad"), "../../etc/passwd").unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
    store.remove("bad").unwrap();
    assert_eq!(store.list().unwrap().len(), 1);

    // A module file larger than any component the sandbox loads, or a
    // pipe in its place (which would block a reader for ever), is damage,
    // refused without being read.
    let corrupt = |result: Result<WasmProgram, StoreError>| match result {
        Err(StoreError::Corrupt(message)) => message,
        Err(other) => panic!("expected a corrupt store, got {other}"),
        Ok(_) => panic!("expected a corrupt store, got a program"),
    };
    let limit = sandbox().config().max_component_bytes;
    std::fs::File::options().append(true).open(&module).unwrap().set_len(limit + 1).unwrap();
    assert!(corrupt(store.load(sandbox(), "guest")).contains(&format!("larger than {limit} bytes")));
    std::fs::remove_file(&module).unwrap();
    let made = std::process::Command::new("mkfifo").arg(&module).status().unwrap();
    assert!(made.success());
    assert!(corrupt(store.load(sandbox(), "guest")).contains("is not a regular file"));
    let pipe_name = dir.path().join("names/piped");
    assert!(std::process::Command::new("mkfifo").arg(&pipe_name).status().unwrap().success());
    assert!(corrupt(store.load(sandbox(), "piped")).contains("is not a regular file"));
    std::fs::remove_file(&pipe_name).unwrap();
    // Redeploying replaces the pipe with the module.
    store.deploy(sandbox(), "guest", &transfer).unwrap();
    transfer_works(&store.load(sandbox(), "guest").unwrap());
    // A pipe or a huge file in place of a compiled artifact (or of the
    // cache's secret) is treated as missing: compiled again, and replaced.
    let artifacts = dir.path().join("artifacts");
    for damage in ["pipe", "huge"] {
        for entry in std::fs::read_dir(&artifacts).unwrap() {
            let path = entry.unwrap().path();
            std::fs::remove_file(&path).unwrap();
            if damage == "pipe" {
                assert!(std::process::Command::new("mkfifo").arg(&path).status().unwrap().success());
            } else {
                std::fs::File::create(&path).unwrap().set_len(20 << 30).unwrap();
            }
        }
        // A sandbox of its own: the shared one remembers the component.
        let fresh = Sandbox::new(SandboxConfig::default()).unwrap();
        transfer_works(&store.load(&fresh, "guest").unwrap());
        for entry in std::fs::read_dir(&artifacts).unwrap() {
            let metadata = entry.unwrap().metadata().unwrap();
            assert!(metadata.is_file() && metadata.len() < 64 << 20, "{damage}: replaced");
        }
    }

    // A hash in either case names the module (the CLI's `--guest
    // sha256:<HASH>`); a hash is no name.
    let upper = hash(&transfer).to_ascii_uppercase();
    transfer_works(&store.load_hash(sandbox(), &upper).unwrap());
    transfer_works(&store.load_hash(sandbox(), &format!("sha256:{}", hash(&transfer))).unwrap());
    let missing = store.load_hash(sandbox(), &format!("sha256:{}", "0".repeat(64))).err().unwrap().to_string();
    assert!(missing.contains(&format!("hash sha256:{} (", "0".repeat(64))), "{missing}");
    let error = store.remove(&format!("sha256:{}", hash(&transfer))).unwrap_err().to_string();
    assert!(error.contains("names a module by its hash, not a deployed name"), "{error}");
}

fn cli(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_executor-host"))
        .current_dir(dir)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_deploys_lists_and_removes() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("my-store");
    let store = store.to_str().unwrap();
    let transfer = hash(&bytes(guest_artifacts::TRANSFER));

    let (ok, stdout, stderr) =
        cli(dir.path(), &["deploy", guest_artifacts::TRANSFER, "--name", "transfer", "--store", store]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("as transfer") && stdout.contains(&transfer), "{stdout}");
    let (ok, stdout, _) = cli(dir.path(), &["deploy", guest_artifacts::COUNTER, "--name", "counter", "--store", store]);
    assert!(ok);
    assert!(stdout.contains("as counter"), "{stdout}");

    let (ok, stdout, _) = cli(dir.path(), &["list", "--store", store, "--output", "human"]);
    assert!(ok);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("counter "), "{stdout}");
    assert!(lines[1].starts_with("transfer ") && lines[1].contains(&transfer), "{stdout}");

    let (ok, _, stderr) = cli(dir.path(), &["remove", "counter", "--store", store]);
    assert!(ok, "{stderr}");
    let (ok, stdout, _) = cli(dir.path(), &["list", "--store", store, "--output", "human"]);
    assert!(ok);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("transfer "), "{stdout}");

    // The store the library sees is the one the CLI wrote.
    let opened = ModuleStore::open(Dir::open_ambient_dir(store, cap_std::ambient_authority()).unwrap()).unwrap();
    transfer_works(&opened.load(sandbox(), "transfer").unwrap());
}

#[test]
fn cli_uses_executor_store_in_the_current_directory_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = cli(dir.path(), &["deploy", guest_artifacts::COUNTER, "--name", "counter"]);
    assert!(ok, "{stderr}");
    assert!(dir.path().join("executor-store/names/counter").is_file());
    let (ok, stdout, _) = cli(dir.path(), &["list", "--output", "human"]);
    assert!(ok);
    assert!(stdout.starts_with("counter "), "{stdout}");
}

#[test]
fn cli_refuses_with_one_line_and_a_failure_status() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let store = store.to_str().unwrap();
    for (args, reason) in [
        (
            vec!["deploy", guest_artifacts::TRANSFER, "--name", "../evil", "--store", store],
            "invalid module name \"../evil\"",
        ),
        (
            vec!["deploy", guest_artifacts::TRANSFER, "--name", "a\nb", "--store", store],
            "invalid module name \"a\\nb\"",
        ),
        (vec!["deploy", guest_artifacts::TRANSFER, "--name", "/etc/passwd", "--store", store], "invalid module name"),
        (vec!["deploy", guest_artifacts::WRONG_WORLD, "--name", "w", "--store", store], "wrong world"),
        (vec!["deploy", guest_artifacts::TRANSFER_CORE, "--name", "w", "--store", store], "a core wasm module"),
        (vec!["deploy", "/nonexistent.wasm", "--name", "w", "--store", store], "reading /nonexistent.wasm"),
        (vec!["remove", "ghost", "--store", store], "no module deployed as `ghost`"),
        (vec!["remove", "..", "--store", store], "invalid module name"),
    ] {
        let (ok, _, stderr) = cli(dir.path(), &args);
        assert!(!ok, "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
    assert_eq!(files(dir.path()), vec!["store"], "nothing written outside the store");
    let (ok, stdout, _) = cli(dir.path(), &["list", "--store", store, "--output", "human"]);
    assert!(ok);
    assert_eq!(stdout, "", "nothing deployed");

    // Where no store is, nothing is deployed, and listing creates none.
    let absent = dir.path().join("absent");
    let (ok, stdout, _) = cli(dir.path(), &["list", "--store", absent.to_str().unwrap(), "--output", "human"]);
    assert!(ok && stdout.is_empty(), "{stdout}");
    assert!(!absent.exists(), "listing created a store");
    let (ok, _, stderr) = cli(dir.path(), &["remove", "ghost", "--store", absent.to_str().unwrap()]);
    assert!(!ok && stderr.contains("opening the module store"), "{stderr}");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let (ok, _, stderr) =
        cli(dir.path(), &["deploy", guest_artifacts::COUNTER, "--name", "c", "--store", file.to_str().unwrap()]);
    assert!(!ok && stderr.contains("is not a directory"), "{stderr}");
}

/// Crash safety with real processes: `deploy` killed by SIGKILL.
#[cfg(unix)]
mod crash {
    use std::os::unix::process::ExitStatusExt as _;
    use std::path::Path;
    use std::process::Command;
    use std::time::Duration;

    use cap_std::fs::Dir;
    use executor_host::ModuleStore;

    use super::{cli, counter_works, files, hash, transfer_works};
    use crate::support::*;

    /// The seed of a crash test: `EXECUTOR_CRASH_SEED` if set (to replay a
    /// printed one), else drawn from the clock.
    fn crash_seed() -> u64 {
        match std::env::var("EXECUTOR_CRASH_SEED") {
            Ok(seed) => seed.parse().expect("EXECUTOR_CRASH_SEED is a u64"),
            Err(_) => {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
                u64::try_from(now.as_nanos() % u128::from(u64::MAX)).unwrap()
            }
        }
    }

    /// Starts `executor-host deploy` as a child process.
    fn spawn_deploy(component: &str, name: &str, store: &Path) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_executor-host"))
            .args(["deploy", component, "--name", name, "--store", store.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// What every name in the store points at, through the library; checks
    /// that listing succeeds and that every listed name loads and runs.
    fn deployed_now(store_dir: &Path, known: &[(&str, String)]) -> std::collections::BTreeMap<String, String> {
        let mut now = std::collections::BTreeMap::new();
        if !store_dir.exists() {
            // Every deploy so far was killed before it created the store.
            return now;
        }
        let store = ModuleStore::open(Dir::open_ambient_dir(store_dir, cap_std::ambient_authority()).unwrap()).unwrap();
        for deployed in store.list().unwrap_or_else(|e| panic!("list fails: {e}")) {
            let Some((component, _)) = known.iter().find(|(_, hash)| *hash == deployed.hash) else {
                panic!("{} points at an unknown module {}", deployed.name, deployed.hash);
            };
            let program = store.load(sandbox(), &deployed.name).unwrap_or_else(|e| panic!("{}: {e}", deployed.name));
            if *component == guest_artifacts::TRANSFER {
                transfer_works(&program);
            } else {
                counter_works(&program);
            }
            now.insert(deployed.name, deployed.hash);
        }
        now
    }

    /// A one-transaction scenario for `run`, for the guest `component`.
    fn tiny_scenario(component: &str) -> &'static str {
        if component == guest_artifacts::TRANSFER {
            r#"{"shards": 2, "initial_state": {"alice": "100"}, "transactions": [
                {"executable": {"from": "alice", "to": "bob", "amount": 30},
                 "eager_read_keys": ["alice", "bob"], "will_write_keys": ["alice", "bob"]}]}"#
        } else {
            r#"{"shards": 1, "initial_state": {"hits": "37"}, "transactions": [
                {"executable": {"key": "hits", "amount": 5},
                 "eager_read_keys": ["hits"], "will_write_keys": ["hits"]}]}"#
        }
    }

    /// Deploys in a loop with the real binary, killing each child with SIGKILL
    /// at a random moment: the store must stay listable, and every name must
    /// point at the previous or the new component, complete and loadable.
    fn deploys_killed_at_random_leave_a_valid_store(iterations: usize) {
        let started = std::time::Instant::now();
        let seed = crash_seed();
        println!(
            "crash test: seed {seed} (EXECUTOR_CRASH_SEED={seed} replays the kill delays), {iterations} iterations"
        );
        let mut rng = executor_testkit::Rng::new(seed);
        let components = [guest_artifacts::TRANSFER, guest_artifacts::COUNTER];
        let known: Vec<(&str, String)> = components.iter().map(|c| (*c, hash(&bytes(c)))).collect();
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");

        // How long a whole deploy takes with its artifact cached (the
        // median of four, after one of each to compile), so that the kills
        // land anywhere in it (and at least anywhere in 0-30 ms).
        let scratch = dir.path().join("scratch");
        let mut times = Vec::new();
        for (i, component) in [components, components, components].concat().into_iter().enumerate() {
            let timed = std::time::Instant::now();
            let out = spawn_deploy(component, "x", &scratch).wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            if i >= 2 {
                times.push(timed.elapsed());
            }
        }
        times.sort();
        let whole = times[times.len() / 2];
        let window = whole.clamp(Duration::from_millis(30), Duration::from_millis(500));
        println!("crash test: a cached deploy takes {whole:?}; kills land within {window:?}");

        let mut expected: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
        // Killed deploys that left the old version, and that had already
        // moved the name to the new one.
        let (mut killed_before, mut killed_after, mut completed) = (0, 0, 0);
        let mut alpha = 0;
        for i in 0..iterations {
            // `alpha` alternates between the two components; `beta` takes
            // either, so a module is sometimes shared by both names.
            let (name, which) = if i % 3 == 2 {
                ("beta", rng.index(2))
            } else {
                alpha ^= 1;
                ("alpha", alpha)
            };
            let (component, new_hash) = &known[which];
            // Every eighth deploy runs to the end, so the store always moves on.
            let kill = i % 8 != 7;
            let delay = Duration::from_micros(rng.below(u64::try_from(window.as_micros()).unwrap()));
            let mut child = spawn_deploy(component, name, &store);
            if kill {
                std::thread::sleep(delay);
                child.kill().unwrap();
            }
            let out = child.wait_with_output().unwrap();
            let done = out.status.success();
            if kill && out.status.signal() == Some(9) {
                // Counted below, once the store tells which.
            } else {
                assert!(done, "iteration {i}: {:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
                completed += 1;
            }

            let now = deployed_now(&store, &known);
            let previous = expected.get(name).cloned();
            let after = now.get(name).cloned();
            if done {
                assert_eq!(after.as_ref(), Some(new_hash), "iteration {i}: {name} after a completed deploy");
            } else {
                if after.as_ref() == Some(new_hash) && previous.as_ref() != Some(new_hash) {
                    killed_after += 1;
                } else {
                    killed_before += 1;
                }
                assert!(
                    after == previous || after.as_ref() == Some(new_hash),
                    "iteration {i} (killed after {delay:?}): {name} points at {after:?}, neither the previous \
                     {previous:?} nor the new {new_hash}"
                );
            }
            for (other, hash) in &expected {
                if other != name {
                    assert_eq!(now.get(other), Some(hash), "iteration {i}: {other} changed by a deploy of {name}");
                }
            }
            assert!(now.keys().all(|n| n == "alpha" || n == "beta"), "iteration {i}: {now:?}");
            expected = now;
        }

        // A fresh process lists the same store and runs every listed name.
        let (ok, stdout, stderr) = cli(dir.path(), &["list", "--store", store.to_str().unwrap(), "--output", "human"]);
        assert!(ok, "{stderr}");
        let listed: Vec<(String, String)> = stdout
            .lines()
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields[0].to_string(), fields[1].to_string())
            })
            .collect();
        assert_eq!(listed, expected.clone().into_iter().collect::<Vec<_>>(), "{stdout}");
        assert!(!listed.is_empty(), "some deploy completed");
        for (name, hash) in &listed {
            let (component, _) = known.iter().find(|(_, h)| h == hash).unwrap();
            let scenario = dir.path().join(format!("{name}.json"));
            std::fs::write(&scenario, tiny_scenario(component)).unwrap();
            let (ok, stdout, stderr) = cli(
                dir.path(),
                &[
                    "run",
                    "--guest",
                    name,
                    "--store",
                    store.to_str().unwrap(),
                    "--scenario",
                    scenario.to_str().unwrap(),
                    "--seed",
                    "1",
                ],
            );
            assert!(ok, "run --guest {name}: {stderr}");
            let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(report["succeeded"], 1, "{name}: {stdout}");
            assert_eq!(report["failed"], 0, "{name}: {stdout}");
        }
        let leftovers: usize = ["names", "modules", "artifacts"]
            .iter()
            .map(|sub| files(&store.join(sub)).iter().filter(|f| f.starts_with('.')).count())
            .sum();
        println!(
            "crash test: {} deploys killed ({killed_before} before their name moved, {killed_after} after), \
             {completed} completed, {leftovers} temporary files left behind, final {expected:?}, {:?}",
            killed_before + killed_after,
            started.elapsed()
        );
    }

    #[test]
    fn deploys_killed_with_sigkill_leave_a_valid_store() {
        deploys_killed_at_random_leave_a_valid_store(100);
    }

    #[test]
    #[ignore = "long: 600 killed deploys"]
    fn deploys_killed_with_sigkill_leave_a_valid_store_long() {
        deploys_killed_at_random_leave_a_valid_store(600);
    }
}

/// A deployment pins a module by its hash: `load_hash` (and the CLI's
/// `--guest sha256:<hash>`) finds it under any name, and nothing that is
/// not the hash of a stored module, or is not a hash at all, loads.
#[test]
fn a_module_loads_by_its_hash() {
    let (dir, store) = store();
    let transfer = bytes(guest_artifacts::TRANSFER);
    let deployed = store.deploy(sandbox(), "transfer", &transfer).unwrap();
    transfer_works(&store.load_hash(sandbox(), &deployed.hash).unwrap());
    let counter = hash(&bytes(guest_artifacts::COUNTER));
    for wrong in [counter.as_str(), "", "../names/transfer", &deployed.hash[..63]] {
        let error = store.load_hash(sandbox(), wrong).err();
        assert!(matches!(&error, Some(StoreError::NoSuchHash { hash }) if hash == wrong), "{wrong:?}");
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.starts_with(&format!("no stored module has the hash sha256:{wrong} ")), "{message}");
    }
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_executor-host"))
        .args(["run", "--output", "json", "--scenario"])
        .arg(format!("{}/examples/transfers.json", env!("CARGO_MANIFEST_DIR")))
        .arg("--store")
        .arg(dir.path())
        .arg("--guest")
        .arg(format!("sha256:{}", deployed.hash))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(report["succeeded"].as_u64().unwrap() + report["failed"].as_u64().unwrap(), 300);
}
