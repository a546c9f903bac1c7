//! The conformance run against other implementations than the reference: the Go test
//! implementation (fixtures/implementations/go-minimal, Core features only) and the two
//! mixed stacks (Go admin-srv with Rust user/token, Rust admin-srv with Go user/token).
//!
//! Each profile gets a fresh local cluster of its own (its images differ, and a local node's
//! image map is fixed when it starts), so the shared `harness up` cluster of the e2e suite is
//! stopped first; the nextest `cluster` group runs these tests one at a time with it. The Go
//! images must be built first (`fixtures/implementations/go-minimal/build.sh`; ci/test.sh does).

use std::path::{Path, PathBuf};

use harness::cluster::BackendKind;
use harness::images::workspace_root;
use harness::report::{ConformanceReport, ReportResult};
use harness::run::{RunOptions, run, stop_local_daemon};
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
    std::fs::create_dir_all(&report_dir).expect("report directory");
    let options = RunOptions {
        backend: BackendKind::Local,
        profile: profile_path(name),
        report_dir,
        keep_cluster: false,
        cases,
        features: Vec::new(),
        harness_exe: Path::new(env!("CARGO_BIN_EXE_harness")).to_path_buf(),
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        stop_local_daemon()
            .await
            .unwrap_or_else(|e| panic!("cannot stop the shared e2e cluster: {e:#}"));
        run(&options)
            .await
            .unwrap_or_else(|e| panic!("the {name} run did not complete: {e:#}"))
    })
}

#[rstest]
// Every case: the Go implementation declares Core only and must reach the Core level.
#[case::go_minimal("go-minimal", Vec::new())]
#[case::mixed_go_admin("mixed-go-admin", INTEROP.to_vec())]
#[case::mixed_rust_admin("mixed-rust-admin", INTEROP.to_vec())]
fn profile_passes_its_cases(#[case] name: &str, #[case] cases: Vec<&str>) {
    let report = run_profile(name, cases.iter().map(|c| c.to_string()).collect());
    let failed: Vec<String> = report
        .features
        .iter()
        .flat_map(|f| &f.cases)
        .filter(|c| c.result == harness::cases::Outcome::Failed)
        .map(|c| format!("{}: {}", c.id, c.reason.clone().unwrap_or_default()))
        .collect();
    assert!(failed.is_empty(), "{name}: failed cases: {failed:#?}");
    assert!(
        report.stability.record.unexpected.is_empty(),
        "{name}: {}",
        report.stability.summary
    );
    if cases.is_empty() {
        assert_eq!(
            report.conformance_level, "Core",
            "{name}: a Core-only profile with nothing failed reaches Core"
        );
    } else {
        assert_eq!(
            report.statistics.passed,
            cases.len(),
            "{name}: every selected case ran and passed"
        );
    }
    let features: Vec<_> = report
        .features
        .iter()
        .map(|f| json!({ "name": f.name, "declared": f.declared, "result": f.result }))
        .collect();
    let ran: Vec<_> = report
        .features
        .iter()
        .flat_map(|f| &f.cases)
        .filter(|c| c.result != harness::cases::Outcome::Skipped)
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
