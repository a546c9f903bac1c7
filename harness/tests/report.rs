//! The three reports built from fixed case results: verdicts per feature and level.

use std::time::Duration;

use harness::cases::{self, CaseResult, Outcome};
use harness::profile::{Profile, reference_profile_path};
use harness::report::{self, ReportResult};
use harness::stability::{Stability, Termination};

fn result(id: &str, feature: &str, outcome: Outcome, reason: Option<&str>) -> CaseResult {
    CaseResult {
        id: id.into(),
        feature: feature.into(),
        summary: format!("summary of {id}"),
        outcome,
        reason: reason.map(String::from),
        duration: Duration::from_millis(1234),
        observations: serde_json::Value::Null,
        measurements: serde_json::Map::new(),
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
    assert_eq!(report.result, ReportResult::Failure);
    assert_eq!(report.conformance_level, "none");
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
        junit.contains("tests=\"4\"")
            && junit.contains("failures=\"1\"")
            && junit.contains("implementation pods not watched"),
        "{junit}"
    );
    assert!(junit.contains("latest update lists"), "{junit}");
    let summary = std::fs::read_to_string(dir.path().join(report::SUMMARY_FILE)).unwrap();
    insta::assert_snapshot!(summary);
    let yaml = std::fs::read_to_string(dir.path().join(report::REPORT_FILE)).unwrap();
    assert!(yaml.contains("result: failure"), "{yaml}");
}

/// A profile declaring only registration, whose one case passed.
fn registration_passed() -> report::ConformanceReport {
    let results = vec![result("REG-001", "registration", Outcome::Passed, None)];
    let mut profile = profile();
    profile.features = ["registration".to_string()].into();
    report::build(
        &profile,
        "local",
        "v1.35.4",
        &results,
        "2026-11-25T00:00:00Z".into(),
    )
}

#[test]
fn all_passing_declared_features_is_success() {
    let report = registration_passed();
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

fn load(name: &str) -> Profile {
    let path = reference_profile_path().parent().unwrap().join(name);
    Profile::load(&path).unwrap()
}

/// Every case: passed when its feature is declared, else skipped as undeclared.
fn all_declared_pass(profile: &Profile) -> Vec<CaseResult> {
    cases::all()
        .iter()
        .map(|case| {
            if profile.supports(case.feature) {
                result(case.id, case.feature, Outcome::Passed, None)
            } else {
                let reason = format!("feature {} is not declared by the profile", case.feature);
                result(case.id, case.feature, Outcome::Skipped, Some(&reason))
            }
        })
        .collect()
}

#[test]
fn core_only_profile_reaches_core_with_nothing_declared_skipped() {
    let profile = load("core-only.yaml");
    let results = all_declared_pass(&profile);
    let report = report::build(&profile, "local", "v1.35.4", &results, "date".into());
    assert_eq!(report.result, ReportResult::Success);
    assert_eq!(report.conformance_level, "Core");
    assert_eq!(report.levels.core.result, ReportResult::Success);
    assert!(report.levels.extended.passed.is_empty());
    for feature in report.features.iter().filter(|f| f.declared) {
        assert_eq!(feature.statistics.skipped, 0, "{} had a skip", feature.name);
    }
    assert!(
        report
            .features
            .iter()
            .filter(|f| !f.declared)
            .all(|f| f.result == ReportResult::Skipped
                && f.level == harness::features::Level::Extended),
        "only Extended features are left undeclared"
    );
}

#[test]
fn reference_profile_reaches_every_extended_feature() {
    let profile = load("reference.yaml");
    let report = report::build(
        &profile,
        "local",
        "v1.35.4",
        &all_declared_pass(&profile),
        "date".into(),
    );
    assert_eq!(report.result, ReportResult::Success);
    assert!(report.levels.extended.not_declared.is_empty());
    let extended: Vec<&str> = harness::features::FEATURES
        .iter()
        .filter(|f| f.level == harness::features::Level::Extended)
        .map(|f| f.name)
        .collect();
    assert_eq!(
        report.conformance_level,
        format!("Core + Extended: {}", extended.join(", "))
    );
}

#[test]
fn a_declared_feature_with_a_skipped_case_is_partial() {
    let profile = load("reference.yaml");
    let mut results = all_declared_pass(&profile);
    let fault = results.iter_mut().find(|r| r.id == "FAULT-001").unwrap();
    fault.outcome = Outcome::Skipped;
    fault.reason = Some("restarting kube-apiserver needs the local backend".into());
    let report = report::build(&profile, "k3s", "v1.35.4", &results, "date".into());
    let feature = report
        .features
        .iter()
        .find(|f| f.name == "fault-tolerance")
        .unwrap();
    assert_eq!(feature.result, ReportResult::Partial);
    assert_eq!(report.result, ReportResult::Partial);
    assert_eq!(report.levels.core.result, ReportResult::Partial);
    assert_eq!(report.levels.core.not_passed, ["fault-tolerance"]);
    assert_eq!(report.conformance_level, "none");
    let dir = tempfile::tempdir().unwrap();
    let redactor = harness::secrets::KnownSecrets::for_profile(&profile).redactor();
    report::write_all(&report, &report::ReportWriter::new(dir.path(), redactor)).unwrap();
    let summary = std::fs::read_to_string(dir.path().join(report::SUMMARY_FILE)).unwrap();
    assert!(
        summary.contains("| fault-tolerance | Core | partial | FAULT-001 | skipped |"),
        "{summary}"
    );
}

#[test]
fn a_crash_outside_every_case_fails_the_run_and_every_report_names_it() {
    let crash = Termination {
        pod: "user-srv-5fc4d67dd5-sm9g4".into(),
        container: "user-srv".into(),
        deployment: "user-srv".into(),
        exit_code: Some(1),
        signal: None,
        reason: "Error".into(),
        finished_at: Some("2026-11-25T00:00:05Z".into()),
        restart_count: 1,
        during: "deployment".into(),
        expected: None,
        previous_log: Some("crash-once: exiting with status 1\n".into()),
    };
    let stability = Stability {
        watched: "pods of Deployments user-srv in namespace go-micro".into(),
        unexpected: vec![crash],
        expected: vec![],
    };
    let report = registration_passed().with_stability(stability);
    assert_eq!(report.result, ReportResult::Failure);
    assert_eq!(report.conformance_level, "none");
    let dir = tempfile::tempdir().unwrap();
    let writer = report::ReportWriter::new(dir.path(), Default::default());
    report::write_all(&report, &writer).unwrap();
    let line = "pod user-srv-5fc4d67dd5-sm9g4 container user-srv exit code 1 (Error) at \
                2026-11-25T00:00:05Z, restart count 1, during deployment";
    for file in [
        report::REPORT_FILE,
        report::JUNIT_FILE,
        report::SUMMARY_FILE,
    ] {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert!(text.contains(line), "{file}: {text}");
    }
    let junit = std::fs::read_to_string(dir.path().join(report::JUNIT_FILE)).unwrap();
    assert!(junit.contains("failures=\"1\""), "{junit}");
    let yaml = std::fs::read_to_string(dir.path().join(report::REPORT_FILE)).unwrap();
    assert!(yaml.contains("previousLog"), "{yaml}");
}
