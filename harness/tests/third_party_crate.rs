//! The harness as a third party consumes it: a crate outside this workspace depends on the
//! harness library by path, has a `harness = false` test target of a few lines, and
//! `cargo nextest list` there lists one test per case of the declared features of its profile
//! (go-minimal's here). Nothing is started: listing builds and lists only.

use std::path::Path;
use std::process::Command;

use harness::profile::Profile;

const CARGO_TOML: &str = r#"[package]
name = "their-implementation-tests"
version = "0.1.0"
edition = "2024"
publish = false

[dev-dependencies]
harness = { path = "HARNESS_DIR" }

[[test]]
name = "conformance"
harness = false
"#;

const TEST_TARGET: &str = r#"fn main() {
    harness::testing::ConformanceTests::new("PROFILE").main()
}
"#;

#[test]
fn a_crate_outside_the_workspace_lists_the_cases_of_its_profile_as_tests() {
    let harness_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = harness_dir
        .parent()
        .expect("the harness lies in the workspace");
    let profile_path = workspace.join("fixtures/profiles/go-minimal.yaml");
    let crate_dir = tempfile::tempdir().expect("temp dir");
    let root = crate_dir.path();
    // The workspace's build profiles too, so the workspace's built dependencies are reused.
    let manifest = CARGO_TOML.replace("HARNESS_DIR", &harness_dir.display().to_string())
        + &build_profiles(&std::fs::read_to_string(workspace.join("Cargo.toml")).unwrap());
    std::fs::write(root.join("Cargo.toml"), manifest).unwrap();
    std::fs::create_dir(root.join("tests")).unwrap();
    std::fs::write(
        root.join("tests/conformance.rs"),
        TEST_TARGET.replace("PROFILE", &profile_path.display().to_string()),
    )
    .unwrap();
    // The workspace's lock keeps the dependency versions (and so the built artefacts) the same;
    // cargo only adds the new root package to it.
    std::fs::copy(workspace.join("Cargo.lock"), root.join("Cargo.lock")).unwrap();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));

    let mut list = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    list.args(["nextest", "list", "--offline"])
        .args(["--message-format", "oneline"])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("RUSTFLAGS");
    // Their repository has its own nextest configuration: none of this run's (e.g. its profile).
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("NEXTEST") {
            list.env_remove(name);
        }
    }
    let output = list.output().expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo nextest list failed in the third-party crate:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let mut listed: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .filter(|name| name.starts_with("conformance::"))
        .collect();
    listed.sort_unstable();
    let profile = Profile::load(&profile_path).unwrap();
    let mut expected: Vec<String> = harness::cases::all()
        .iter()
        .filter(|case| profile.declares(case.feature))
        .map(|case| format!("conformance::{}", case.id.replace('-', "_")))
        .collect();
    expected.sort_unstable();
    assert!(
        !expected.is_empty(),
        "go-minimal declares features with cases"
    );
    assert_eq!(listed, expected, "listed:\n{stdout}");
}

/// The `[profile.*]` tables of a Cargo manifest, as written.
fn build_profiles(manifest: &str) -> String {
    let mut keep = false;
    let mut tables = String::new();
    for line in manifest.lines() {
        if line.starts_with('[') {
            keep = line.starts_with("[profile.");
        }
        if keep {
            tables += line;
            tables.push('\n');
        }
    }
    assert!(
        tables.contains("[profile.dev]"),
        "the workspace sets its dev profile"
    );
    tables
}
