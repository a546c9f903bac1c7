//! The versioned YAML conformance report, in the spirit of the Gateway API's.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cases::{CaseResult, Outcome};
use crate::profile::{Implementation, KNOWN_FEATURES, Profile};

/// Schema version of the report.
pub const REPORT_API_VERSION: &str = "conformance.gomicro.dev/v1";

/// Result of a whole run or of one feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportResult {
    /// Every case of every declared feature passed.
    Success,
    /// Some declared features failed, others passed.
    Partial,
    /// No declared feature passed (or a feature failed and none passed).
    Failure,
    /// The feature was not declared; its cases did not run.
    Skipped,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConformanceReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    /// RFC 3339 UTC time the run finished.
    pub date: String,
    pub implementation: Implementation,
    /// The profile file used.
    pub profile: String,
    pub backend: String,
    pub kubernetes_version: String,
    pub harness_version: &'static str,
    pub result: ReportResult,
    pub statistics: Statistics,
    pub features: Vec<FeatureReport>,
}

/// Case counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Statistics {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// One feature's result and its cases.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureReport {
    pub name: String,
    pub declared: bool,
    pub result: ReportResult,
    pub statistics: Statistics,
    pub cases: Vec<CaseEntry>,
}

/// One case in the report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseEntry {
    pub id: String,
    pub summary: String,
    pub result: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub duration_seconds: f64,
}

/// Builds the report from case results.
pub fn build(
    profile: &Profile,
    backend: &str,
    kubernetes_version: &str,
    results: &[CaseResult],
    date: String,
) -> ConformanceReport {
    let mut by_feature: BTreeMap<&str, Vec<&CaseResult>> = BTreeMap::new();
    for result in results {
        by_feature
            .entry(result.feature.as_str())
            .or_default()
            .push(result);
    }
    let mut features = Vec::new();
    let mut total = Statistics::default();
    for feature in KNOWN_FEATURES {
        let Some(cases) = by_feature.get(feature) else {
            continue;
        };
        let declared = profile.supports(feature);
        let mut statistics = Statistics::default();
        for case in cases {
            match case.outcome {
                Outcome::Passed => statistics.passed += 1,
                Outcome::Failed => statistics.failed += 1,
                Outcome::Skipped => statistics.skipped += 1,
            }
        }
        total.passed += statistics.passed;
        total.failed += statistics.failed;
        total.skipped += statistics.skipped;
        let result = if !declared {
            ReportResult::Skipped
        } else if statistics.failed > 0 {
            ReportResult::Failure
        } else {
            ReportResult::Success
        };
        features.push(FeatureReport {
            name: feature.to_string(),
            declared,
            result,
            statistics,
            cases: cases
                .iter()
                .map(|c| CaseEntry {
                    id: c.id.clone(),
                    summary: c.summary.clone(),
                    result: c.outcome.clone(),
                    reason: c.reason.clone(),
                    duration_seconds: (c.duration.as_secs_f64() * 10.0).round() / 10.0,
                })
                .collect(),
        });
    }
    let declared: Vec<&FeatureReport> = features.iter().filter(|f| f.declared).collect();
    let failed = declared
        .iter()
        .filter(|f| f.result == ReportResult::Failure)
        .count();
    let result = match (failed, declared.len()) {
        (0, n) if n > 0 => ReportResult::Success,
        (f, n) if f < n => ReportResult::Partial,
        _ => ReportResult::Failure,
    };
    ConformanceReport {
        api_version: REPORT_API_VERSION,
        kind: "ConformanceReport",
        date,
        implementation: profile.implementation.clone(),
        profile: profile.source.display().to_string(),
        backend: backend.to_string(),
        kubernetes_version: kubernetes_version.to_string(),
        harness_version: env!("CARGO_PKG_VERSION"),
        result,
        statistics: total,
        features,
    }
}
