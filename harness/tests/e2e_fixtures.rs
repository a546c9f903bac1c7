//! Fixture implementations with images of their own, run as a user runs them (`harness run`)
//! on a local cluster of their own: one that logs its request bodies (leaky-admin) and one whose
//! user-srv crashes once (crash-once). The shared cluster of the e2e suite is stopped first (a
//! local node's image set is fixed when it starts); nextest runs this target after `conformance`
//! and `e2e`, which share it, one test at a time (the `cluster` group).

use std::path::Path;

use harness::images::workspace_root;

mod support;
use support::{files_under, require_local_backend, summary_row};

/// A fixture implementation that logs its request bodies (fixtures/profiles/broken/leaky-admin.yaml)
/// fails SEC-001 and SEC-002 with the place named, and nothing its run wrote holds a secret.
/// It runs `harness run` as a user does, on its own local cluster.
#[test]
fn leaky_admin_fails_secret_hygiene_and_its_reports_hold_no_secret() {
    require_local_backend("the leaky fixture's image");
    let reports = tempfile::tempdir().unwrap();
    run_fixture_failing(
        "leaky-admin.yaml",
        &["--feature", "secret-hygiene"],
        reports.path(),
    );
    let summary = std::fs::read_to_string(reports.path().join("summary.md")).unwrap();
    for id in ["SEC-001", "SEC-002"] {
        let row = summary_row(&summary, id);
        assert!(row.contains("| **failed** |"), "{row}");
        assert!(
            row.contains("container admin-srv line ") && row.contains("the demo user's password"),
            "{id} does not name where the password is: {row}"
        );
    }
    let files = files_under(reports.path());
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("diagnostics/logs/admin-srv")),
        "no admin-srv log in the diagnostics: {files:?}"
    );
    let mut leaked_logs_redacted = false;
    for file in &files {
        let text = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
        for secret in [
            "123456",
            "some_api_key",
            "conformance-wrong-password-",
            "conformance-hygiene-",
        ] {
            assert!(
                !text.contains(secret),
                "{} holds {secret:?}",
                file.display()
            );
        }
        let jwts = harness::secrets::jwt_ranges(&text);
        assert!(
            jwts.is_empty(),
            "{} holds a JWT at {jwts:?}",
            file.display()
        );
        leaked_logs_redacted |= text.contains("\"password\":\"[redacted]\"");
    }
    assert!(
        leaked_logs_redacted,
        "the diagnostics hold no redacted request body, so the leak was not collected"
    );
}

/// Stops the shared cluster and runs `harness run` as a user does, on a local cluster of its own, with the broken fixture profile `name` and `args`;
/// the run must fail (exit 1).
fn run_fixture_failing(name: &str, args: &[&str], reports: &Path) {
    let harness = env!("CARGO_BIN_EXE_harness");
    let down = std::process::Command::new(harness)
        .arg("down")
        .output()
        .unwrap();
    assert!(down.status.success(), "harness down: {down:?}");
    let profile = workspace_root().join("fixtures/profiles/broken").join(name);
    let run = std::process::Command::new(harness)
        .args(["run", "--backend", "local"])
        .args(args)
        .arg("--profile")
        .arg(&profile)
        .arg("--report-dir")
        .arg(reports)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "a failed run exits 1: {stderr}");
}

/// A fixture whose user-srv exits 1 as soon as it has checked its first login's password
/// (fixtures/profiles/broken/crash-once.yaml) fails the case running then, and every report
/// names pod, container, exit code, reason and time; the YAML report and the diagnostics keep
/// the crashed container's log. The crashing case is CFG-004: it keeps logging in for seconds
/// after its first login (while user-srv restarts, then for its 3 s window), so the exit is
/// well inside it, never at its edge where only the runtime's timing would decide.
#[test]
fn a_crash_fails_the_running_case_and_is_named_with_its_previous_log() {
    require_local_backend("the crash-once fixture's image");
    let reports = tempfile::tempdir().unwrap();
    run_fixture_failing(
        "crash-once.yaml",
        &["--case", "REG-001", "--case", "CFG-004"],
        reports.path(),
    );
    let read = |name: &str| std::fs::read_to_string(reports.path().join(name)).unwrap();
    let summary = read("summary.md");
    let row = |id: &str| summary_row(&summary, id);
    assert!(row("REG-001").contains("| passed |"), "{summary}");
    let crashed = row("CFG-004");
    assert!(
        crashed.contains("| **failed** |")
            && crashed.contains("during CFG-004, which did not cause it on purpose (the case is its trigger): pod user-srv-")
            && crashed.contains("container user-srv exit code 1 (Error) at ")
            && crashed.contains("during CFG-004"),
        "{crashed}"
    );
    let stability = summary
        .lines()
        .find(|l| l.starts_with("Stability: "))
        .unwrap_or_else(|| panic!("no stability line:\n{summary}"));
    assert!(
        stability.contains("1 unexpected container exit(s) or restart(s): pod user-srv-"),
        "{stability}"
    );
    for file in ["conformance-report.yaml", "junit.xml"] {
        assert!(
            read(file).contains("container user-srv exit code 1 (Error) at "),
            "{file}"
        );
    }
    assert!(
        read("conformance-report.yaml").contains("crash-once: first login answered"),
        "the YAML report does not keep the crashed container's log"
    );
    // The crashed container's log: `.previous.log` once the kubelet has restarted it, else
    // (its restart back-off has not passed when the run ends) the current `.log`.
    let logs: Vec<String> = files_under(reports.path())
        .into_iter()
        .filter(|f| {
            let name = f.to_string_lossy();
            name.contains("/user-srv-")
                && (name.ends_with("_user-srv.previous.log") || name.ends_with("_user-srv.log"))
        })
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(
        logs.iter()
            .any(|log| log.contains("crash-once: first login answered")),
        "no log of user-srv in the diagnostics holds the crash: {logs:?}"
    );
}
