//! The versioned YAML conformance report, in the spirit of the Gateway API's: per feature
//! `success` (every case passed), `partial` (declared, nothing failed, but a case was skipped),
//! `failure` or `skipped` (not declared), and the conformance level the run reached.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cases::{CaseResult, Outcome};
use crate::features::{FEATURES, Level};
use crate::profile::{Implementation, Profile};
use crate::stability::Stability;

/// Schema version of the report.
pub const REPORT_API_VERSION: &str = "conformance.gomicro.dev/v1";

/// Result of a whole run, a level or one feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportResult {
    /// Every case of every declared feature passed.
    Success,
    /// Nothing declared failed, but a declared feature had a skipped case.
    Partial,
    /// A case of a declared feature failed (or nothing was declared).
    Failure,
    /// The feature was not declared; its cases did not run.
    Skipped,
}

impl ReportResult {
    /// The lower-case word used in every report.
    pub fn word(self) -> &'static str {
        match self {
            ReportResult::Success => "success",
            ReportResult::Partial => "partial",
            ReportResult::Failure => "failure",
            ReportResult::Skipped => "skipped",
        }
    }
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
    /// The level reached: `Core`, `Core + Extended: <features>`, or `none` (see [`Levels`]).
    pub conformance_level: String,
    pub levels: Levels,
    pub statistics: Statistics,
    pub features: Vec<FeatureReport>,
    /// Container exits and restarts of the implementation seen during the run (CONTRACT.md
    /// §7, "Any implementation").
    pub stability: StabilityReport,
}

/// The report's stability section: the one-line summary and the record behind it.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StabilityReport {
    pub summary: String,
    #[serde(flatten)]
    pub record: Stability,
}

/// Results per conformance level (CONTRACT.md §7).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Levels {
    pub core: CoreLevel,
    pub extended: ExtendedLevel,
}

/// Core: demanded of every implementation, so an undeclared Core feature keeps it from success.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CoreLevel {
    pub result: ReportResult,
    /// Core features the profile does not declare.
    pub not_declared: Vec<String>,
    /// Core features that failed or were partial.
    pub not_passed: Vec<String>,
}

/// Extended: each feature stands alone.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtendedLevel {
    /// Declared Extended features whose every case passed.
    pub passed: Vec<String>,
    /// Declared Extended features with a skipped case and no failure.
    pub partial: Vec<String>,
    /// Declared Extended features with a failed case.
    pub failed: Vec<String>,
    pub not_declared: Vec<String>,
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
    pub level: Level,
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
    /// Run-dependent figures the case measured (e.g. a convergence time).
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub measurements: serde_json::Map<String, serde_json::Value>,
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
    for feature in FEATURES {
        let Some(cases) = by_feature.get(feature.name) else {
            continue;
        };
        let declared = profile.supports(feature.name);
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
        } else if statistics.skipped > 0 {
            ReportResult::Partial
        } else {
            ReportResult::Success
        };
        features.push(FeatureReport {
            name: feature.name.to_string(),
            level: feature.level,
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
                    measurements: c.measurements.clone(),
                })
                .collect(),
        });
    }
    let declared: Vec<&FeatureReport> = features.iter().filter(|f| f.declared).collect();
    let result =
        if declared.is_empty() || declared.iter().any(|f| f.result == ReportResult::Failure) {
            ReportResult::Failure
        } else if declared.iter().any(|f| f.result == ReportResult::Partial) {
            ReportResult::Partial
        } else {
            ReportResult::Success
        };
    let levels = levels(profile, &features);
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
        conformance_level: level_reached(&levels),
        levels,
        statistics: total,
        features,
        stability: StabilityReport {
            summary: Stability::default().line(),
            record: Stability::default(),
        },
    }
}

impl ConformanceReport {
    /// Adds the run's stability record. A crash seen outside every case (during deployment,
    /// between or after the cases) fails the run; one during a case already failed that case.
    pub fn with_stability(mut self, stability: Stability) -> ConformanceReport {
        let case_ids: Vec<&str> = self
            .features
            .iter()
            .flat_map(|f| f.cases.iter().map(|c| c.id.as_str()))
            .collect();
        if stability
            .unexpected
            .iter()
            .any(|t| !case_ids.contains(&t.during.as_str()))
        {
            // Not conformant at any level (CONTRACT.md §7, "Any implementation").
            self.result = ReportResult::Failure;
            self.levels.core.result = ReportResult::Failure;
            self.conformance_level = "none".into();
        }
        self.stability = StabilityReport {
            summary: stability.line(),
            record: stability,
        };
        self
    }
}

fn levels(profile: &Profile, features: &[FeatureReport]) -> Levels {
    let result_of = |name: &str| {
        features
            .iter()
            .find(|f| f.name == name)
            .map_or(ReportResult::Skipped, |f| f.result)
    };
    let names = |level: Level, keep: &dyn Fn(&str) -> bool| -> Vec<String> {
        FEATURES
            .iter()
            .filter(|f| f.level == level && keep(f.name))
            .map(|f| f.name.to_string())
            .collect()
    };
    let declared = |name: &str| profile.supports(name);
    let core_not_declared = names(Level::Core, &|n| !declared(n));
    let core_not_passed = names(Level::Core, &|n| {
        declared(n) && result_of(n) != ReportResult::Success
    });
    let core_failed = FEATURES
        .iter()
        .any(|f| f.level == Level::Core && result_of(f.name) == ReportResult::Failure);
    let core = CoreLevel {
        result: if core_failed {
            ReportResult::Failure
        } else if core_not_declared.is_empty() && core_not_passed.is_empty() {
            ReportResult::Success
        } else {
            ReportResult::Partial
        },
        not_declared: core_not_declared,
        not_passed: core_not_passed,
    };
    let extended_with =
        |wanted: ReportResult| names(Level::Extended, &|n| declared(n) && result_of(n) == wanted);
    let extended = ExtendedLevel {
        passed: extended_with(ReportResult::Success),
        partial: extended_with(ReportResult::Partial),
        failed: extended_with(ReportResult::Failure),
        not_declared: names(Level::Extended, &|n| !declared(n)),
    };
    Levels { core, extended }
}

/// `Core`, `Core + Extended: a, b`, or `none` when Core was not reached in full.
fn level_reached(levels: &Levels) -> String {
    if levels.core.result != ReportResult::Success {
        return "none".into();
    }
    if levels.extended.passed.is_empty() {
        "Core".into()
    } else {
        format!("Core + Extended: {}", levels.extended.passed.join(", "))
    }
}
