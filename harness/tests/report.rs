//! The three reports built from fixed case results: verdicts per feature and level.

use std::time::Duration;

use harness::cases;
use harness::features::{Feature, Level};
use harness::profile::{Profile, reference_profile_path};
use harness::report::{self, ReportResult};
use harness::stability::{Stability, Termination};
use harness::verdict::{CaseResult, Outcome};

fn result(id: &str, feature: Feature, outcome: Outcome, reason: Option<&str>) -> CaseResult {
    CaseResult {
        id: id.into(),
        feature,
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
    profile.features.remove(&Feature::Cors);
    profile
}

fn sample() -> Vec<CaseResult> {
    vec![
        result("REG-001", Feature::Registration, Outcome::Passed, None),
        result(
            "RES-001",
            Feature::Resolver,
            Outcome::Failed,
            Some("latest update lists [] but ready pods are [\"a\"]"),
        ),
        result(
            "LOGIN-005",
            Feature::Cors,
            Outcome::Skipped,
            Some("feature cors is not declared by the profile"),
        ),
    ]
}

/// The report names the commit the harness was built from (40 hex digits in a git checkout);
/// snapshots hold a fixed one instead, as they hold a fixed date.
fn with_fixed_commit(mut report: report::ConformanceReport) -> report::ConformanceReport {
    let commit = report.harness_commit;
    assert!(
        commit == "unknown"
            || (commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{commit}"
    );
    if std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../.git")
        .exists()
    {
        assert_ne!(commit, "unknown", "built in a git checkout");
    }
    report.harness_commit = "0123456789abcdef0123456789abcdef01234567";
    report
}

#[test]
fn conformance_report_yaml() {
    let report = with_fixed_commit(report::build(
        &profile(),
        "local",
        "v1.35.4",
        &sample(),
        "2026-11-25T00:00:00Z".into(),
    ));
    assert_eq!(report.result, ReportResult::Failure);
    assert_eq!(report.conformance_level, "none");
    insta::assert_yaml_snapshot!(report);
}

#[test]
fn all_three_reports_are_written_with_reasons() {
    let report = with_fixed_commit(report::build(
        &profile(),
        "local",
        "v1.35.4",
        &sample(),
        "2026-11-25T00:00:00Z".into(),
    ));
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
    assert!(
        junit.contains(r#"<testsuites name="gomicro-conformance [Kubernetes v1.35.4]""#)
            && junit.contains(r#"<testsuite name="registration [Kubernetes v1.35.4]""#),
        "the JUnit names the Kubernetes version: {junit}"
    );
    let summary = std::fs::read_to_string(dir.path().join(report::SUMMARY_FILE)).unwrap();
    insta::assert_snapshot!(summary);
    let yaml = std::fs::read_to_string(dir.path().join(report::REPORT_FILE)).unwrap();
    assert!(yaml.contains("result: failure"), "{yaml}");
}

/// A profile declaring only registration, whose one case passed.
fn registration_passed() -> report::ConformanceReport {
    let results = vec![result(
        "REG-001",
        Feature::Registration,
        Outcome::Passed,
        None,
    )];
    let mut profile = profile();
    profile.features = [Feature::Registration].into();
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
        Feature::LoginHttp,
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
            if profile.declares(case.feature) {
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
            .all(|f| f.result == ReportResult::Skipped && f.level == Level::Extended),
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
    let extended: Vec<&str> = Feature::all()
        .filter(|f| f.level() == Level::Extended)
        .map(Feature::name)
        .collect();
    assert_eq!(
        report.conformance_level,
        format!("Core + Extended: {}", extended.join(", "))
    );
}

#[test]
fn a_case_without_its_lever_is_not_applicable_and_claims_no_level_but_fails_nothing() {
    let profile = load("reference.yaml");
    let mut results = all_declared_pass(&profile);
    for id in ["FAULT-001", "FAULT-002"] {
        let fault = results.iter_mut().find(|r| r.id == id).unwrap();
        fault.outcome = Outcome::NotApplicable;
        fault.reason = Some("not applicable on the k3s backend: the case needs the lever \"restarting kube-apiserver and etcd\"".into());
    }
    let report = report::build(&profile, "k3s", "v1.35.4", &results, "date".into());
    let feature = report
        .features
        .iter()
        .find(|f| f.name == Feature::FaultTolerance)
        .unwrap();
    assert_eq!(feature.result, ReportResult::NotTested);
    assert_eq!(report.result, ReportResult::Success);
    assert_eq!(report.levels.core.result, ReportResult::NotTested);
    assert_eq!(report.levels.core.cases_not_run, ["FAULT-001", "FAULT-002"]);
    assert_eq!(report.conformance_level, "none");
    let required = report.clone().with_required_level(Some(Level::Core));
    assert_eq!(required.result, ReportResult::Failure);
    assert!(
        required
            .result_reason
            .as_deref()
            .unwrap()
            .contains("Core cases not run here: FAULT-001, FAULT-002"),
        "{:?}",
        required.result_reason
    );
    let dir = tempfile::tempdir().unwrap();
    let redactor = harness::secrets::KnownSecrets::for_profile(&profile).redactor();
    report::write_all(&report, &report::ReportWriter::new(dir.path(), redactor)).unwrap();
    let summary = std::fs::read_to_string(dir.path().join(report::SUMMARY_FILE)).unwrap();
    assert!(
        summary.contains("| fault-tolerance | Core | not tested | FAULT-001 | not applicable | not applicable on the k3s backend"),
        "{summary}"
    );
    assert!(
        summary.lines().next().unwrap().contains("Success:")
            && summary.lines().next().unwrap().contains(
                "conformance level: none (Core cases not run here: FAULT-001, FAULT-002)"
            ),
        "{summary}"
    );
    let junit = std::fs::read_to_string(dir.path().join(report::JUNIT_FILE)).unwrap();
    assert!(
        junit.contains("not applicable: not applicable on the k3s backend"),
        "{junit}"
    );
}

#[test]
fn a_selection_that_passes_succeeds_lists_what_was_left_out_and_claims_no_level() {
    let profile = load("reference.yaml");
    let results: Vec<CaseResult> = cases::all()
        .iter()
        .map(|case| {
            if case.id == "LOGIN-001" {
                result(case.id, case.feature, Outcome::Passed, None)
            } else {
                result(case.id, case.feature, Outcome::NotSelected, None)
            }
        })
        .collect();
    let report = report::build(&profile, "local", "v1.35.4", &results, "date".into());
    assert_eq!(report.result, ReportResult::Success);
    assert_eq!(report.conformance_level, "none");
    assert_eq!(report.statistics.passed, 1);
    assert_eq!(report.not_selected.len(), cases::all().len() - 1);
    let headline = report.headline();
    assert!(
        headline.starts_with("Success: 1 case(s) ran: 1 passed, 0 failed")
            && headline.contains("conformance level: none"),
        "{headline}"
    );
    let required = report.with_required_level(Some(Level::Core));
    assert_eq!(required.result, ReportResult::Failure);
}

#[test]
fn a_case_that_could_not_run_after_a_crash_makes_its_feature_partial_and_the_run_fail() {
    let profile = load("reference.yaml");
    let mut results = all_declared_pass(&profile);
    let bad = results.iter_mut().find(|r| r.id == "BAD-006").unwrap();
    bad.outcome = Outcome::NotRun;
    bad.reason = Some("not run: the implementation did not recover after pod admin-srv-x exited with code 2 in BAD-005".into());
    let report = report::build(&profile, "local", "v1.35.4", &results, "date".into());
    let feature = report
        .features
        .iter()
        .find(|f| f.name == Feature::StrictInputValidation)
        .unwrap();
    assert_eq!(feature.result, ReportResult::Partial);
    assert_eq!(report.result, ReportResult::Failure);
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
