//! Snapshot of the three reports built from fixed case results.

use std::time::Duration;

use harness::cases::{CaseResult, Outcome};
use harness::profile::{Profile, reference_profile_path};
use harness::report::{self, ReportResult};

fn result(id: &str, feature: &str, outcome: Outcome, reason: Option<&str>) -> CaseResult {
    CaseResult {
        id: id.into(),
        feature: feature.into(),
        summary: format!("summary of {id}"),
        outcome,
        reason: reason.map(String::from),
        duration: Duration::from_millis(1234),
        observations: serde_json::Value::Null,
    }
}

fn profile() -> Profile {
    let mut profile = Profile::load(&reference_profile_path()).unwrap();
    profile.source = "fixtures/profiles/reference.yaml".into();
    profile.features.remove("cors");
    profile
}

fn sample() -> Vec<CaseResult> {
    vec![
        result("REG-001", "registration", Outcome::Passed, None),
        result(
            "RES-001",
            "resolver",
            Outcome::Failed,
            Some("latest update lists [] but ready pods are [\"a\"]"),
        ),
        result(
            "LOGIN-005",
            "cors",
            Outcome::Skipped,
            Some("feature cors is not declared by the profile"),
        ),
    ]
}

#[test]
fn conformance_report_yaml() {
    let report = report::build(
        &profile(),
        "local",
        "v1.35.4",
        &sample(),
        "2026-11-25T00:00:00Z".into(),
    );
    assert_eq!(report.result, ReportResult::Partial);
    insta::assert_yaml_snapshot!(report);
}

#[test]
fn all_three_reports_are_written_with_reasons() {
    let report = report::build(
        &profile(),
        "local",
        "v1.35.4",
        &sample(),
        "2026-11-25T00:00:00Z".into(),
    );
    let dir = tempfile::tempdir().unwrap();
    let writer = report::ReportWriter::new(dir.path(), Default::default());
    report::write_all(&report, &writer).unwrap();
    let junit = std::fs::read_to_string(dir.path().join(report::JUNIT_FILE)).unwrap();
    assert!(
        junit.contains("tests=\"3\"") && junit.contains("failures=\"1\""),
        "{junit}"
    );
    assert!(junit.contains("latest update lists"), "{junit}");
    let summary = std::fs::read_to_string(dir.path().join(report::SUMMARY_FILE)).unwrap();
    insta::assert_snapshot!(summary);
    let yaml = std::fs::read_to_string(dir.path().join(report::REPORT_FILE)).unwrap();
    assert!(yaml.contains("result: partial"), "{yaml}");
}

#[test]
fn all_passing_declared_features_is_success() {
    let results = vec![result("REG-001", "registration", Outcome::Passed, None)];
    let mut profile = profile();
    profile.features = ["registration".to_string()].into();
    let report = report::build(
        &profile,
        "local",
        "v1.35.4",
        &results,
        "2026-11-25T00:00:00Z".into(),
    );
    assert_eq!(report.result, ReportResult::Success);
}

#[test]
fn reports_never_carry_known_secrets() {
    let profile = profile();
    let known = harness::secrets::KnownSecrets::for_profile(&profile);
    let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ0aGFuZ24ifQ.c2lnbmF0dXJl";
    let reason = format!("login with password 123456 gave {token}, signed with some_api_key");
    let results = vec![result(
        "LOGIN-001",
        "login-http",
        Outcome::Failed,
        Some(&reason),
    )];
    let report = report::build(
        &profile,
        "local",
        "v1.35.4",
        &results,
        "2026-11-25T00:00:00Z".into(),
    );
    let dir = tempfile::tempdir().unwrap();
    report::write_all(
        &report,
        &report::ReportWriter::new(dir.path(), known.redactor()),
    )
    .unwrap();
    for file in [
        report::REPORT_FILE,
        report::JUNIT_FILE,
        report::SUMMARY_FILE,
    ] {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        for secret in ["123456", token, "some_api_key"] {
            assert!(!text.contains(secret), "{file} carries {secret}: {text}");
        }
        assert!(text.matches("[redacted]").count() >= 3, "{file}: {text}");
    }
}
