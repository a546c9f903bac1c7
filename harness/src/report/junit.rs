//! JUnit XML: one test suite per feature, one test case per conformance case. The report's
//! and each suite's name carry the Kubernetes version, so the files of a version matrix merged
//! in one view stay apart.

use std::time::Duration;

use anyhow::Result;
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::ConformanceReport;
use crate::verdict::Outcome;

/// The run-level stability line as a test case of its own.
fn stability_suite(report: &ConformanceReport) -> TestSuite {
    let stability = &report.stability;
    let status = if !stability.record.is_watched() {
        let mut status = TestCaseStatus::skipped();
        status.set_message(stability.summary.as_str());
        status
    } else if stability.record.unexpected.is_empty() {
        TestCaseStatus::success()
    } else {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        status.set_message(stability.summary.as_str());
        status
    };
    let mut case = TestCase::new(
        "STABILITY no container of the implementation exited or restarted unless a case caused it",
        status,
    );
    case.set_classname("conformance.stability");
    case.set_system_out(stability.summary.as_str());
    let mut suite = TestSuite::new(on_version("stability", report));
    suite.add_test_case(case);
    suite
}

/// `<outcome>: <reason>`, so a JUnit view tells "not applicable" from "skipped".
fn reason_with_outcome(outcome: Outcome, reason: Option<&str>) -> String {
    match reason {
        Some(reason) => format!("{}: {reason}", outcome.word()),
        None => outcome.word().to_string(),
    }
}

/// `name` with the report's Kubernetes version (`name [Kubernetes v1.34.4]`), unless none
/// is known (the cluster did not answer).
fn on_version(name: &str, report: &ConformanceReport) -> String {
    match report.kubernetes_version.as_str() {
        "" => name.to_string(),
        version => format!("{name} [Kubernetes {version}]"),
    }
}

/// Renders the report as JUnit XML.
pub(super) fn render(report: &ConformanceReport) -> Result<String> {
    let mut junit = Report::new(on_version("gomicro-conformance", report));
    for feature in &report.features {
        let mut suite = TestSuite::new(on_version(feature.name.name(), report));
        suite.add_property(Property::new("level", feature.level.name()));
        suite.add_property(Property::new("result", feature.result.word()));
        suite.add_property(Property::new(
            "kubernetesVersion",
            report.kubernetes_version.as_str(),
        ));
        suite.add_property(Property::new("backend", report.backend.as_str()));
        suite.add_property(Property::new("contractVersion", report.contract_version));
        for case in &feature.cases {
            let status = match case.result {
                Outcome::Passed => TestCaseStatus::success(),
                Outcome::Failed | Outcome::NotRun => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    status.set_message(reason_with_outcome(case.result, case.reason.as_deref()));
                    status
                }
                Outcome::Skipped | Outcome::NotApplicable | Outcome::NotSelected => {
                    let mut status = TestCaseStatus::skipped();
                    status.set_message(reason_with_outcome(case.result, case.reason.as_deref()));
                    status
                }
            };
            let mut test_case = TestCase::new(format!("{} {}", case.id, case.summary), status);
            test_case.set_classname(format!("conformance.{}", feature.name));
            test_case.set_time(Duration::from_secs_f64(case.duration_seconds));
            suite.add_test_case(test_case);
        }
        junit.add_test_suite(suite);
    }
    junit.add_test_suite(stability_suite(report));
    Ok(junit.to_string()?)
}
