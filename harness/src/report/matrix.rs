//! The summary of a run over several Kubernetes versions: one table, a row per feature and a
//! column per version, above each version's own reports.

use std::fmt::Write;

use super::ConformanceReport;

/// Renders the table of `reports` (one per version, in the order they ran), each under the
/// directory named in its column.
pub(crate) fn render(reports: &[(String, ConformanceReport)]) -> String {
    let mut out = String::from("## Conformance across Kubernetes versions\n\n");
    let header: Vec<String> = reports
        .iter()
        .map(|(minor, report)| match report.kubernetes_version.as_str() {
            "" => format!("{minor} (no cluster)"),
            version => format!("{minor} (`{version}`)"),
        })
        .collect();
    let _ = writeln!(out, "| | {} |", header.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(reports.len()));
    let row = |out: &mut String, label: &str, cell: &dyn Fn(&ConformanceReport) -> String| {
        let cells: Vec<String> = reports.iter().map(|(_, report)| cell(report)).collect();
        let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
    };
    row(&mut out, "**result**", &|r| {
        format!("**{}**", r.result.word())
    });
    row(&mut out, "**level reached**", &|r| {
        r.conformance_level.clone()
    });
    row(&mut out, "cases passed / ran", &|r| {
        format!("{} / {}", r.statistics.passed, r.statistics.ran())
    });
    let features = reports.first().map(|(_, r)| r.features.as_slice());
    for feature in features.unwrap_or_default() {
        let label = format!("{} ({})", feature.name.name(), feature.level.name());
        row(&mut out, &label, &|report| {
            report
                .features
                .iter()
                .find(|f| f.name == feature.name)
                .map_or("-".to_string(), |f| f.result.word().to_string())
        });
    }
    let dirs: Vec<String> = reports
        .iter()
        .map(|(minor, _)| format!("`{}/`", version_dir(minor)))
        .collect();
    let _ = writeln!(
        out,
        "\nEach version's reports (conformance report, JUnit, summary, diagnostics) are in {}.",
        dirs.join(", ")
    );
    out
}

/// The directory of one version's reports inside the run's report directory.
pub(crate) fn version_dir(minor: &str) -> String {
    format!("kubernetes-{minor}")
}
