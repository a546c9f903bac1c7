//! A Markdown summary for humans and $GITHUB_STEP_SUMMARY.

use std::fmt::Write;

use super::ConformanceReport;
use crate::verdict::Outcome;

/// Renders the summary; its first line says what succeeded and which level was reached.
pub(super) fn render(report: &ConformanceReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Conformance of {} {}: {}\n",
        report.implementation.project,
        report.implementation.version,
        report.headline()
    );
    let levels = &report.levels;
    let _ = writeln!(
        out,
        "Conformance level reached: **{}**. Core: {}{}{}{}. Extended not declared: {}.\n",
        report.conformance_level,
        levels.core.result.word(),
        listed(" (not declared: ", &levels.core.not_declared),
        listed(" (not passed: ", &levels.core.not_passed),
        listed(" (cases not run here: ", &levels.core.cases_not_run),
        none_or_list(&levels.extended.not_declared),
    );
    if let Some(level) = report.required_level {
        let _ = writeln!(
            out,
            "Required level: {} ({}).\n",
            level.name(),
            if report.levels.core.result == super::ReportResult::Success {
                "reached"
            } else {
                "not reached"
            }
        );
    }
    let statistics = &report.statistics;
    let _ = writeln!(
        out,
        "Contract {}, harness {} (commit `{}`). Backend `{}`, Kubernetes `{}`, profile `{}`. Passed {}, failed {}, skipped {}, not applicable {}, not run {}, not selected {}.\n",
        report.contract_version,
        report.harness_version,
        report
            .harness_commit
            .get(..12)
            .unwrap_or(report.harness_commit),
        report.backend,
        report.kubernetes_version,
        report.profile,
        statistics.passed,
        statistics.failed,
        statistics.skipped,
        statistics.not_applicable,
        statistics.not_run,
        statistics.not_selected,
    );
    if !report.not_selected.is_empty() {
        let _ = writeln!(
            out,
            "Not selected (no verdict, no level claimed from them): {}.\n",
            report.not_selected.join(", ")
        );
    }
    let _ = writeln!(out, "Stability: {}\n", report.stability.summary);
    let _ = writeln!(
        out,
        "| Feature | Level | Result | Case | Outcome | Reason |\n|---|---|---|---|---|---|"
    );
    for feature in &report.features {
        for case in &feature.cases {
            let outcome = match case.result {
                Outcome::Failed => "**failed**",
                Outcome::NotRun => "**not run**",
                other => other.word(),
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
