//! The installed harness as a third party runs it: the `harness` and `harness-pod` executables
//! copied out of the build into a new directory with a copy of go-minimal as "their repository"
//! (its sources, manifests and a profile of its own, its images built there by its own
//! `build.sh`), run from that directory with no checkout (`HARNESS_CHECKOUT=none`: the local
//! backend's Go build scripts and everything else come from the binary) and no cargo variables.
//!
//! Starts a local cluster of its own (the shared e2e cluster is stopped first); the nextest
//! `cluster` group runs it alone. It is also the suite's full run of go-minimal (every Core case,
//! its verdicts a snapshot); e2e_profiles runs the mixed stacks.

use std::path::Path;
use std::process::Command;

use harness::images::workspace_root;
use serde_json::json;

/// Copies the directory tree `from` to `to`, leaving out the symlink `images` (build.sh's link
/// to the cached build, which the copy makes anew).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        let target = to.join(entry.file_name());
        if kind.is_symlink() {
            continue;
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The environment of a user's shell: this test's, without cargo's, nextest's and the
/// harness's own variables (the prebuilt bin dirs ci/test.sh exports among them).
fn user_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(key, _)| {
            ![
                "CARGO",
                "NEXTEST",
                "RUST",
                "INSTA",
                "HARNESS_",
                "GOMICRO_CONTROLPLANE",
                "GOMICRO_NODE",
            ]
            .iter()
            .any(|prefix| key.starts_with(prefix))
        })
        .collect()
}

#[test]
fn the_installed_binary_passes_go_minimal_in_their_repository() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("their-repository");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for program in [
        env!("CARGO_BIN_EXE_harness"),
        env!("CARGO_BIN_EXE_harness-pod"),
    ] {
        let program = Path::new(program);
        std::fs::copy(program, bin.join(program.file_name().unwrap())).unwrap();
    }
    let fixtures = workspace_root().join("fixtures");
    copy_tree(&fixtures.join("implementations/go-minimal"), &theirs);
    // Their profile: go-minimal's, in their repository's `conformance/`, pointing at their files.
    let profile = std::fs::read_to_string(fixtures.join("profiles/go-minimal.yaml"))
        .unwrap()
        .replace("../implementations/go-minimal/", "../");
    std::fs::create_dir_all(theirs.join("conformance")).unwrap();
    std::fs::write(theirs.join("conformance/profile.yaml"), profile).unwrap();

    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let command = |program: &Path| {
        let mut command = Command::new(program);
        command
            .current_dir(&theirs)
            .env_clear()
            .envs(user_env())
            .env("PATH", &path)
            .env("HARNESS_CHECKOUT", "none");
        command
    };
    let built = command(&theirs.join("build.sh")).status().unwrap();
    assert!(built.success(), "their build.sh: {built}");

    harness::testing::stop_shared_cluster(Path::new(env!("CARGO_BIN_EXE_harness")));
    let output = command(&bin.join("harness"))
        .args([
            "run",
            "--backend",
            "local",
            "--profile",
            "conformance/profile.yaml",
        ])
        .args(["--require-level", "core", "--report-dir", "reports"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {}: {stderr}", output.status);
    // The embedded scripts ran (from the cache), not the checkout's.
    let checkout = std::fs::canonicalize(workspace_root()).unwrap();
    assert!(
        !stderr.contains(&checkout.display().to_string()),
        "{stderr}"
    );

    let text = std::fs::read_to_string(theirs.join("reports/conformance-report.yaml")).unwrap();
    let report: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let header: String = text.lines().take(20).collect::<Vec<_>>().join("\n");
    eprintln!("report header:\n{header}");
    assert_eq!(
        report["contractVersion"],
        harness::report::CONTRACT_VERSION,
        "{header}"
    );
    assert_eq!(
        report["harnessCommit"],
        harness::report::HARNESS_COMMIT,
        "{header}"
    );
    if workspace_root().join(".git").exists() {
        assert_ne!(
            report["harnessCommit"], "unknown",
            "built in a git checkout: {header}"
        );
    }
    assert_eq!(report["profile"], "conformance/profile.yaml", "{header}");
    assert_eq!(report["backend"], "local", "{header}");
    assert!(
        report["kubernetesVersion"]
            .as_str()
            .unwrap()
            .starts_with("v1."),
        "{header}"
    );
    assert_eq!(report["result"], "success", "{header}");
    assert_eq!(report["conformanceLevel"], "Core", "{header}");
    // Every declared feature (go-minimal declares the Core ones) succeeded, with no unexpected
    // container exit or restart.
    let features = report["features"].as_array().unwrap();
    let declared: Vec<_> = features.iter().filter(|f| f["declared"] == true).collect();
    assert_eq!(declared.len(), 12, "{features:#?}");
    for feature in declared {
        assert_eq!(feature["result"], "success", "{feature:#?}");
    }
    let unexpected = &report["stability"]["unexpected"];
    assert_eq!(
        unexpected.as_array().map(Vec::len),
        Some(0),
        "{unexpected:#?}"
    );
    // The features and the verdicts of the cases that ran, as observed.
    let summary: Vec<_> = features
        .iter()
        .map(|f| json!({ "name": f["name"], "declared": f["declared"], "result": f["result"] }))
        .collect();
    let ran: Vec<_> = features
        .iter()
        .flat_map(|f| f["cases"].as_array().unwrap())
        .filter(|c| c["result"] == "passed" || c["result"] == "failed")
        .map(|c| json!({ "id": c["id"], "result": c["result"] }))
        .collect();
    insta::assert_json_snapshot!(
        "go-minimal",
        json!({
            "result": report["result"],
            "conformanceLevel": report["conformanceLevel"],
            "features": summary,
            "cases": ran
        })
    );
}

/// Without a checkout the reference profile (the default) cannot be run: its images are built
/// from the repository's Rust sources. The run says what to do, exits 3 and still writes its
/// reports; nothing of a cluster is started.
#[test]
fn the_installed_binary_says_what_to_do_with_the_reference_and_no_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_harness"))
        .current_dir(dir.path())
        .env_clear()
        .envs(user_env())
        .env("HARNESS_CHECKOUT", "none")
        .args(["run", "--backend", "local", "--report-dir", "reports"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("without a checkout") && stderr.contains("--profile"),
        "{stderr}"
    );
    let report =
        std::fs::read_to_string(dir.path().join("reports/conformance-report.yaml")).unwrap();
    assert!(report.contains("result: error"), "{report}");
}
