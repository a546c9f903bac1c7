//! Reports of a conformance run: a versioned YAML conformance report, JUnit XML, a Markdown
//! summary, and on failure a diagnostics bundle.

mod conformance;
pub(crate) mod diagnostics;
mod junit;
mod markdown;
pub(crate) mod matrix;
mod writer;

use anyhow::Result;

pub use conformance::{
    CONTRACT_VERSION, CaseEntry, ConformanceReport, FeatureReport, HARNESS_COMMIT, Levels,
    ReportResult, StabilityReport, Statistics, build,
};
pub use writer::ReportWriter;

/// The conformance report's file name in the report directory.
pub const REPORT_FILE: &str = "conformance-report.yaml";
/// The JUnit XML's file name in the report directory.
pub const JUNIT_FILE: &str = "junit.xml";
/// The Markdown summary's file name in the report directory.
pub const SUMMARY_FILE: &str = "summary.md";

/// Writes the three reports through `writer` (and appends the summary to
/// $GITHUB_STEP_SUMMARY when set), redacted.
pub fn write_all(report: &ConformanceReport, writer: &ReportWriter) -> Result<()> {
    writer.write_yaml(REPORT_FILE, report)?;
    writer.write(JUNIT_FILE, &junit::render(report)?)?;
    write_summary(writer, &markdown::render(report))
}

/// Writes `summary` as the summary file through `writer` and appends it to
/// $GITHUB_STEP_SUMMARY when set.
pub(crate) fn write_summary(writer: &ReportWriter, summary: &str) -> Result<()> {
    writer.write(SUMMARY_FILE, summary)?;
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        writer.append_to(path.as_ref(), summary)?;
    }
    Ok(())
}
