//! A Markdown summary for humans and $GITHUB_STEP_SUMMARY.

use std::fmt::Write;

use super::ConformanceReport;
use crate::cases::Outcome;

/// Renders the summary.
pub fn render(report: &ConformanceReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Conformance: {} {} — {}\n",
        report.implementation.project,
        report.implementation.version,
        report.result.word()
    );
    let levels = &report.levels;
    let _ = writeln!(
        out,
        "Conformance level reached: **{}**. Core: {}{}{}. Extended not declared: {}.\n",
        report.conformance_level,
        levels.core.result.word(),
        listed(" (not declared: ", &levels.core.not_declared),
        listed(" (not passed: ", &levels.core.not_passed),
        none_or_list(&levels.extended.not_declared),
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
    let _ = writeln!(out, "Stability: {}\n", report.stability.summary);
    let _ = writeln!(
        out,
        "| Feature | Level | Result | Case | Outcome | Reason |\n|---|---|---|---|---|---|"
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
                "| {} | {} | {} | {} | {outcome} | {reason} |",
                feature.name,
                feature.level.name(),
                feature.result.word(),
                case.id
            );
        }
    }
    out
}

/// `<open>a, b)` or nothing when `names` is empty.
fn listed(open: &str, names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!("{open}{})", names.join(", "))
    }
}

fn none_or_list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
