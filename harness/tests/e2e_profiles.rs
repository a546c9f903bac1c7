//! The conformance run against other implementations than the reference: the Go test
//! implementation in Go-Micro-like mode (fixtures/implementations/go-minimal; its plain mode is
//! e2e_installed's) and the two mixed stacks (Go admin-srv with Rust user/token, Rust admin-srv
//! with Go user/token).
//!
//! Each profile gets a fresh local cluster of its own (its images differ, and a local node's
//! image map is fixed when it starts), so the shared `harness up` cluster of the e2e suite is
//! stopped first; the nextest `cluster` group runs these tests one at a time with it. The Go
//! images must be built first (`fixtures/implementations/go-minimal/build.sh`; ci/test.sh does).

use std::path::{Path, PathBuf};

use harness::cluster::BackendKind;
use harness::images::workspace_root;
use harness::report::{ConformanceReport, ReportResult};
use harness::run::{RunOptions, run};
use harness::verdict::Outcome;
use rstest::rstest;
use serde_json::json;

/// Cases of every profile: registration, health, reflection, login over HTTP and gRPC with
/// the JWT, and admin-srv's resolver updates.
const INTEROP: &[&str] = &[
    "REG-001",
    "HEALTH-001",
    "HEALTH-002",
    "LOGIN-001",
    "LOGIN-002",
    "RES-001",
];

fn profile_path(name: &str) -> PathBuf {
    workspace_root().join(format!("fixtures/profiles/{name}.yaml"))
}

fn run_profile(name: &str, cases: Vec<String>) -> ConformanceReport {
    let report_dir = workspace_root().join(format!("target/e2e-profiles/{name}"));
    run_path(profile_path(name), report_dir, cases)
}

#[rstest]
// go-minimal's full run (Core only, every case) is e2e_installed's: the installed harness runs it.
#[case::mixed_go_admin("mixed-go-admin", INTEROP.to_vec())]
#[case::mixed_rust_admin("mixed-rust-admin", INTEROP.to_vec())]
fn profile_passes_its_cases(#[case] name: &str, #[case] cases: Vec<&str>) {
    let report = run_profile(name, cases.iter().map(|c| c.to_string()).collect());
    let failed: Vec<String> = report
        .features
        .iter()
        .flat_map(|f| &f.cases)
        .filter(|c| c.result == harness::verdict::Outcome::Failed)
        .map(|c| format!("{}: {}", c.id, c.reason.clone().unwrap_or_default()))
        .collect();
    assert!(failed.is_empty(), "{name}: failed cases: {failed:#?}");
    assert!(
        report.stability.record.unexpected.is_empty(),
        "{name}: {}",
        report.stability.summary
    );
    assert_eq!(
        report.statistics.passed,
        cases.len(),
        "{name}: every selected case ran and passed"
    );
    let features: Vec<_> = report
        .features
        .iter()
        .map(|f| json!({ "name": f.name, "declared": f.declared, "result": f.result }))
        .collect();
    let ran: Vec<_> = report
        .features
        .iter()
        .flat_map(|f| &f.cases)
        .filter(|c| c.result.ran())
        .map(|c| json!({ "id": c.id, "result": c.result }))
        .collect();
    assert_ne!(
        report.result,
        ReportResult::Failure,
        "{name}: the run failed"
    );
    insta::assert_json_snapshot!(
        name,
        json!({
            "result": report.result,
            "conformanceLevel": report.conformance_level,
            "features": features,
            "cases": ran
        })
    );
}

/// The profile `name` with its relative paths made absolute and, with `core_only`, only its
/// Core features declared, written into `dir`.
fn profile_copy(name: &str, dir: &Path, core_only: bool) -> PathBuf {
    let profiles = workspace_root().join("fixtures/profiles");
    let text = std::fs::read_to_string(profiles.join(format!("{name}.yaml")))
        .unwrap()
        .replace(
            "../implementations",
            &profiles.join("../implementations").display().to_string(),
        );
    let mut profile = harness::profile::Profile::parse(&text).unwrap();
    if core_only {
        profile
            .features
            .retain(|f| f.level() == harness::features::Level::Core);
    }
    let features: Vec<String> = profile
        .features
        .iter()
        .map(|f| format!("  - {f}\n"))
        .collect();
    let start = text.find("\nfeatures:\n").unwrap();
    let end = text.find("\nexpectations:").unwrap();
    let text = format!(
        "{}\nfeatures:\n{}{}",
        &text[..start],
        features.concat(),
        &text[end + 1..]
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `harness run` on a local cluster of its own (the shared e2e cluster is stopped first).
fn run_path(profile: PathBuf, report_dir: PathBuf, cases: Vec<String>) -> ConformanceReport {
    std::fs::create_dir_all(&report_dir).expect("report directory");
    let options = RunOptions {
        backend: BackendKind::Local,
        profile,
        report_dir,
        keep_cluster: false,
        cases,
        features: Vec::new(),
        required_level: None,
        registry: None,
        kubernetes_version: None,
        harness_exe: Path::new(env!("CARGO_BIN_EXE_harness")).to_path_buf(),
    };
    harness::testing::stop_shared_cluster(&options.harness_exe);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        run(&options).await.unwrap_or_else(|e| {
            panic!(
                "the run of {} did not complete: {e:#}",
                options.profile.display()
            )
        })
    })
}

fn case<'a>(report: &'a ConformanceReport, id: &str) -> &'a harness::report::CaseEntry {
    report
        .features
        .iter()
        .flat_map(|f| &f.cases)
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no case {id} in the report"))
}

/// The README's promise that Core passes an implementation like Go-Micro's example, on the
/// go-minimal fixture in Go-Micro-like mode (its reflection serves a placeholder import, its
/// registry exits 2 on a malformed annotation, its discovery covers every namespace): no harness
/// crash, every report written, Core reflection passes while reflection-complete fails naming
/// the file, discovery-bad-input fails naming the crash, namespace-isolation fails naming the
/// intruder pod and the cluster-wide pod rights, the cases after the crash give their own
/// verdicts, and every Core case's verdict is the same with and without the Extended
/// declarations.
#[test]
fn a_go_micro_like_implementation_gets_findings_not_a_harness_crash() {
    let dir = tempfile::tempdir().unwrap();
    let reports = workspace_root().join("target/e2e-profiles");
    let all = run_path(
        profile_copy("gomicro-like", dir.path(), false),
        reports.join("gomicro-like"),
        Vec::new(),
    );
    for file in ["conformance-report.yaml", "junit.xml", "summary.md"] {
        assert!(reports.join("gomicro-like").join(file).is_file(), "{file}");
    }
    let outcome = |report: &ConformanceReport, id: &str| case(report, id).result;
    assert_eq!(
        outcome(&all, "HEALTH-002"),
        Outcome::Passed,
        "{:?}",
        case(&all, "HEALTH-002").reason
    );
    let complete = case(&all, "HEALTH-003");
    assert_eq!(complete.result, Outcome::Failed);
    assert!(
        complete
            .reason
            .as_deref()
            .unwrap()
            .contains("gnostic/openapi/v3/annotations.proto"),
        "{:?}",
        complete.reason
    );
    let crash = case(&all, "BAD-005");
    assert_eq!(crash.result, Outcome::Failed);
    let reason = crash.reason.as_deref().unwrap();
    assert!(
        reason.contains("during BAD-005") && reason.contains("exit code 2"),
        "{reason}"
    );
    // The crash ends the case at once, not its wait for admin-srv's warnings.
    assert!(
        reason.contains("stopped when the crash was seen") && !reason.contains("timed out"),
        "{reason}"
    );
    let intruder = case(&all, "SEC-003");
    assert_eq!(intruder.result, Outcome::Failed);
    let reason = intruder.reason.as_deref().unwrap();
    assert!(
        reason.contains("admin-srv's resolver listed the intruder pod conformance-foreign-intruder of namespace conformance-intruder-"),
        "{reason}"
    );
    assert!(
        !reason.contains("123456"),
        "a finding never names a password: {reason}"
    );
    let rights = case(&all, "RBAC-003");
    assert_eq!(rights.result, Outcome::Failed);
    let reason = rights.reason.as_deref().unwrap();
    assert!(
        reason.contains("list pods in all namespaces: allowed=true, expected false"),
        "{reason}"
    );
    for result in all.features.iter().flat_map(|f| &f.cases) {
        let reason = result.reason.as_deref().unwrap_or_default();
        assert!(
            !reason.contains("has no ready pod"),
            "{} failed for a knock-on reason: {reason}",
            result.id
        );
    }
    assert_eq!(
        outcome(&all, "BAD-007"),
        Outcome::Passed,
        "{:?}",
        case(&all, "BAD-007").reason
    );
    // On a fresh cluster too: nothing the first run left (pods, restarts) may decide a verdict.
    let core = run_path(
        profile_copy("gomicro-like", dir.path(), true),
        reports.join("gomicro-like-core"),
        Vec::new(),
    );
    let core_verdicts = |report: &ConformanceReport| -> Vec<(String, Outcome)> {
        report
            .features
            .iter()
            .filter(|f| f.level == harness::features::Level::Core)
            .flat_map(|f| &f.cases)
            .map(|c| (c.id.clone(), c.result))
            .collect()
    };
    assert_eq!(core_verdicts(&all), core_verdicts(&core));
    assert_eq!(core.conformance_level, "Core", "{}", core.headline());
}
