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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;
    use crate::verdict::{CaseResult, Outcome};

    fn report(version: &str, failed_case: Option<&str>) -> ConformanceReport {
        let profile = Profile::load(&crate::profile::reference_profile_path()).unwrap();
        let results: Vec<CaseResult> = crate::cases::all()
            .iter()
            .map(|case| {
                let mut result = CaseResult::unrun(case, Outcome::Passed, None);
                if Some(case.id) == failed_case {
                    result.outcome = Outcome::Failed;
                }
                result
            })
            .collect();
        crate::report::build(&profile, "local", version, &results, "date".into())
    }

    #[test]
    fn a_column_per_version_and_a_row_per_feature() {
        let reports = vec![
            ("1.34".to_string(), report("v1.34.4", Some("CFG-002"))),
            ("1.37".to_string(), report("v1.37.2", None)),
        ];
        let text = render(&reports);
        assert!(
            text.contains("| | 1.34 (`v1.34.4`) | 1.37 (`v1.37.2`) |"),
            "{text}"
        );
        assert!(
            text.contains("| **result** | **failure** | **success** |"),
            "{text}"
        );
        assert!(
            text.contains("| config-live-reload (Extended) | failure | success |"),
            "{text}"
        );
        assert!(
            text.contains("| registration (Core) | success | success |"),
            "{text}"
        );
        let rows = text.lines().filter(|l| l.starts_with("| ")).count();
        // The header, three summary rows and one per feature.
        assert_eq!(rows, 1 + 3 + reports[1].1.features.len(), "{text}");
        assert!(
            text.contains("`kubernetes-1.34/`, `kubernetes-1.37/`"),
            "{text}"
        );
    }
}
