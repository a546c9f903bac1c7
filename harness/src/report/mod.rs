//! Reports of a conformance run: a versioned YAML conformance report, JUnit XML, a Markdown
//! summary, and on failure a diagnostics bundle.

mod conformance;
pub mod diagnostics;
mod junit;
mod markdown;

use std::path::Path;

use anyhow::{Context, Result};

pub use conformance::{ConformanceReport, FeatureReport, ReportResult, build};

/// File names written into the report directory.
pub const REPORT_FILE: &str = "conformance-report.yaml";
pub const JUNIT_FILE: &str = "junit.xml";
pub const SUMMARY_FILE: &str = "summary.md";

/// Writes the three reports into `dir` (and appends the summary to $GITHUB_STEP_SUMMARY when set).
pub fn write_all(report: &ConformanceReport, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create report directory {}", dir.display()))?;
    let yaml = serde_saphyr::to_string(report)
        .map_err(|e| anyhow::anyhow!("cannot render the report: {e}"))?;
    std::fs::write(dir.join(REPORT_FILE), yaml)?;
    std::fs::write(dir.join(JUNIT_FILE), junit::render(report)?)?;
    let summary = markdown::render(report);
    std::fs::write(dir.join(SUMMARY_FILE), &summary)?;
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        writeln!(file, "{summary}")?;
    }
    Ok(())
}
