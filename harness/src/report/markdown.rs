//! A Markdown summary for humans and $GITHUB_STEP_SUMMARY.

use std::fmt::Write;

use super::{ConformanceReport, ReportResult};
use crate::cases::Outcome;

/// Renders the summary.
pub fn render(report: &ConformanceReport) -> String {
    let mut out = String::new();
    let verdict = match report.result {
        ReportResult::Success => "success",
        ReportResult::Partial => "partial",
        ReportResult::Failure => "failure",
        ReportResult::Skipped => "skipped",
    };
    let _ = writeln!(
        out,
        "## Conformance: {} {} — {verdict}\n",
        report.implementation.project, report.implementation.version
    );
    let _ = writeln!(
        out,
        "Backend `{}`, Kubernetes `{}`, profile `{}`. Passed {}, failed {}, skipped {}.\n",
        report.backend,
        report.kubernetes_version,
        report.profile,
        report.statistics.passed,
        report.statistics.failed,
        report.statistics.skipped
    );
    let _ = writeln!(
        out,
        "| Feature | Result | Case | Outcome | Reason |\n|---|---|---|---|---|"
    );
    for feature in &report.features {
        for case in &feature.cases {
            let outcome = match case.result {
                Outcome::Passed => "passed",
                Outcome::Failed => "**failed**",
                Outcome::Skipped => "skipped",
            };
            let reason = case
                .reason
                .as_deref()
                .unwrap_or("")
                .replace('|', "\\|")
                .replace('\n', " ");
            let _ = writeln!(
                out,
                "| {} | {:?} | {} | {outcome} | {reason} |",
                feature.name, feature.result, case.id
            );
        }
    }
    out
}
