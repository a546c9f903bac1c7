//! The versioned YAML conformance report, in the spirit of the Gateway API's, with the verdict
//! rules of CONTRACT.md §8.
//!
//! Per feature: `success` (every case that ran passed), `partial` (declared, nothing failed, but
//! a case could not run: "not run"), `failure`, `notTested` (declared, but none of its cases
//! ran: not selected, or not applicable on this backend) or `skipped` (not declared). A case
//! that is not applicable makes no feature partial.
//!
//! A level is claimed only where it was tested: Core needs every Core feature declared and every
//! Core case run and passed; an Extended feature joins the claim when every one of its cases ran
//! and passed. The run succeeds when nothing failed (a selection that passes succeeds), unless a
//! level was required and not reached; it is an `error` when the harness could not test.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use crate::features::{Declared, Feature, Level};
use crate::profile::{Implementation, Profile};
use crate::stability::Stability;
use crate::verdict::{CaseResult, Outcome};

/// Schema version of the report.
pub(super) const REPORT_API_VERSION: &str = "conformance.gomicro.dev/v1";

/// Version of the contract the cases check (docs/contract.md), bumped when a case's demands
/// change.
pub const CONTRACT_VERSION: &str = "2026.12.1";

/// The git commit the harness was built from (`build.rs`: `$HARNESS_BUILD_COMMIT`, else `git
/// rev-parse HEAD`, else `unknown`).
pub const HARNESS_COMMIT: &str = env!("HARNESS_COMMIT");

/// Result of a whole run, a level or one feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ReportResult {
    /// Run: nothing failed. Feature or level: every case that ran passed.
    Success,
    /// Feature or level: nothing failed, but a case that should have run did not.
    Partial,
    /// A case failed (or, for the run, a required level was not reached).
    Failure,
    /// Feature: not declared; its cases did not run.
    Skipped,
    /// Feature or level: declared, but none (level: not all) of its cases ran here.
    NotTested,
    /// Run: the harness could not test (cluster, images, deployment, I/O).
    Error,
}

impl ReportResult {
    /// The word used in every report.
    pub(crate) fn word(self) -> &'static str {
        match self {
            ReportResult::Success => "success",
            ReportResult::Partial => "partial",
            ReportResult::Failure => "failure",
            ReportResult::Skipped => "skipped",
            ReportResult::NotTested => "not tested",
            ReportResult::Error => "error",
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(
    title = "Conformance report",
    description = "What `harness run` writes as conformance-report.yaml: the verdicts per case, feature and level, and what they were reached with."
)]
#[serde(rename_all = "camelCase")]
pub struct ConformanceReport {
    /// Report format: `conformance.gomicro.dev/v1`.
    #[schemars(extend("const" = REPORT_API_VERSION))]
    pub api_version: &'static str,
    /// `ConformanceReport`.
    #[schemars(extend("const" = "ConformanceReport"))]
    pub kind: &'static str,
    /// RFC 3339 UTC time the run finished.
    pub date: String,
    /// The contract version judged against (docs/contract.md).
    pub contract_version: &'static str,
    /// The implementation, as its profile names it.
    pub implementation: Implementation,
    /// The profile file used, relative to the directory the run was started in when it lies
    /// below it.
    pub profile: String,
    /// The cluster backend: `local`, `k3s` or `kubeconfig`.
    pub backend: String,
    /// The API server's version (`/version` gitVersion).
    pub kubernetes_version: String,
    /// The harness's package version.
    pub harness_version: &'static str,
    /// The git commit the harness was built from (`unknown` outside a git checkout).
    pub harness_commit: &'static str,
    /// The run's result.
    pub result: ReportResult,
    /// Why the run did not succeed, in a sentence (absent on success).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_reason: Option<String>,
    /// The level reached: `Core`, `Core + Extended: <features>`, or `none` (see `levels`).
    pub conformance_level: String,
    /// The level the run was required to reach (`--require-level`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_level: Option<Level>,
    /// Results per level.
    pub levels: Levels,
    /// Case counts of the whole run.
    pub statistics: Statistics,
    /// Cases left out by `--case` / `--feature`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_selected: Vec<String>,
    /// Every feature with its cases.
    pub features: Vec<FeatureReport>,
    /// Container exits and restarts of the implementation seen during the run (CONTRACT.md
    /// §7, "Any implementation").
    pub stability: StabilityReport,
}

/// The report's stability section: the one-line summary and the record behind it.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StabilityReport {
    /// One line: what the record says.
    pub summary: String,
    /// Exits and restarts seen.
    #[serde(flatten)]
    pub record: Stability,
}

/// Results per conformance level (CONTRACT.md §7).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Levels {
    /// The Core level.
    pub core: CoreLevel,
    /// The Extended features.
    pub extended: ExtendedLevel,
}

/// Core: demanded of every implementation, so an undeclared Core feature keeps it from success.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CoreLevel {
    pub result: ReportResult,
    /// Core features the profile does not declare.
    pub not_declared: Vec<String>,
    /// Core features that failed or were partial.
    pub not_passed: Vec<String>,
    /// Core cases that did not run here (not selected, not applicable, not run).
    pub cases_not_run: Vec<String>,
}

/// Extended: each feature stands alone.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtendedLevel {
    /// Declared Extended features whose every case ran and passed.
    pub passed: Vec<String>,
    /// Declared Extended features with nothing failed but a case that did not run.
    pub partial: Vec<String>,
    /// Declared Extended features with a failed case.
    pub failed: Vec<String>,
    pub not_declared: Vec<String>,
}

/// Case counts.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Statistics {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Cases of undeclared features.
    pub skipped: usize,
    /// Cases needing a lever the backend lacks.
    pub not_applicable: usize,
    /// Cases that could not run.
    pub not_run: usize,
    /// Cases left out by `--case` / `--feature`.
    pub not_selected: usize,
}

impl Statistics {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::NotApplicable => self.not_applicable += 1,
            Outcome::NotRun => self.not_run += 1,
            Outcome::NotSelected => self.not_selected += 1,
        }
    }

    /// Cases that ran.
    pub(crate) fn ran(&self) -> usize {
        self.passed + self.failed
    }
}

/// One feature's result and its cases.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeatureReport {
    /// The feature.
    pub name: Feature,
    /// Its level.
    pub level: Level,
    /// Whether the profile declares it.
    pub declared: bool,
    /// Its result from its cases.
    pub result: ReportResult,
    /// Its case counts.
    pub statistics: Statistics,
    /// Its cases.
    pub cases: Vec<CaseEntry>,
}

/// One case in the report.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaseEntry {
    /// Case ID, e.g. `REG-001`.
    pub id: String,
    /// What the case proves.
    pub summary: String,
    /// Its outcome.
    pub result: Outcome,
    /// Why it failed or did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long it took.
    pub duration_seconds: f64,
    /// Run-dependent figures the case measured (e.g. a convergence time).
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub measurements: serde_json::Map<String, serde_json::Value>,
}

/// A feature's result from its declaration and its cases' counts.
fn feature_result(declared: bool, statistics: &Statistics) -> ReportResult {
    if !declared {
        ReportResult::Skipped
    } else if statistics.failed > 0 {
        ReportResult::Failure
    } else if statistics.not_run > 0 {
        ReportResult::Partial
    } else if statistics.ran() == 0 {
        ReportResult::NotTested
    } else {
        ReportResult::Success
    }
}

/// Builds the report from case results.
pub fn build(
    profile: &Profile,
    backend: &str,
    kubernetes_version: &str,
    results: &[CaseResult],
    date: String,
) -> ConformanceReport {
    let mut by_feature: BTreeMap<Feature, Vec<&CaseResult>> = BTreeMap::new();
    for result in results {
        by_feature.entry(result.feature).or_default().push(result);
    }
    let mut features = Vec::new();
    let mut total = Statistics::default();
    for feature in Feature::all() {
        let Some(cases) = by_feature.get(&feature) else {
            continue;
        };
        let declared = profile.declares(feature);
        let mut statistics = Statistics::default();
        for case in cases {
            statistics.count(case.outcome);
            total.count(case.outcome);
        }
        features.push(FeatureReport {
            name: feature,
            level: feature.level(),
            declared,
            result: feature_result(declared, &statistics),
            statistics,
            cases: cases
                .iter()
                .map(|c| CaseEntry {
                    id: c.id.clone(),
                    summary: c.summary.clone(),
                    result: c.outcome,
                    reason: c.reason.clone(),
                    duration_seconds: (c.duration.as_secs_f64() * 10.0).round() / 10.0,
                    measurements: c.measurements.clone(),
                })
                .collect(),
        });
    }
    let levels = levels(&profile.features, &features);
    let not_selected = results
        .iter()
        .filter(|r| r.outcome == Outcome::NotSelected)
        .map(|r| r.id.clone())
        .collect();
    let mut report = ConformanceReport {
        api_version: REPORT_API_VERSION,
        kind: "ConformanceReport",
        date,
        contract_version: CONTRACT_VERSION,
        implementation: profile.implementation.clone(),
        profile: relative_to_cwd(&profile.source),
        backend: backend.to_string(),
        kubernetes_version: kubernetes_version.to_string(),
        harness_version: env!("CARGO_PKG_VERSION"),
        harness_commit: HARNESS_COMMIT,
        result: ReportResult::Success,
        result_reason: None,
        conformance_level: level_reached(&levels),
        required_level: None,
        levels,
        statistics: total,
        not_selected,
        features,
        stability: StabilityReport {
            summary: Stability::default().line(),
            record: Stability::default(),
        },
    };
    report.decide();
    report
}

impl ConformanceReport {
    /// Adds the run's stability record. A crash seen outside every case (during deployment,
    /// between or after the cases) fails the run and every level; one during a case already
    /// failed that case.
    pub fn with_stability(mut self, stability: Stability) -> ConformanceReport {
        self.stability = StabilityReport {
            summary: stability.line(),
            record: stability,
        };
        if self.crashed_outside_cases() {
            // Not conformant at any level (CONTRACT.md §7, "Any implementation").
            self.levels.core.result = ReportResult::Failure;
            self.conformance_level = "none".into();
        }
        self.decide();
        self
    }

    /// Whether a container of the implementation exited unexpectedly outside every case.
    fn crashed_outside_cases(&self) -> bool {
        self.stability.record.unexpected.iter().any(|t| {
            !self
                .features
                .iter()
                .flat_map(|f| &f.cases)
                .any(|c| c.id == t.during)
        })
    }

    /// Requires `level` (only Core can be required): the run fails unless it is reached.
    pub fn with_required_level(mut self, level: Option<Level>) -> ConformanceReport {
        self.required_level = level;
        self.decide();
        self
    }

    /// Marks the run as one the harness could not complete (exit code 3), with why.
    pub(crate) fn could_not_test(mut self, why: String) -> ConformanceReport {
        self.result = ReportResult::Error;
        self.result_reason = Some(why);
        self
    }

    /// Sets the run's result and its reason from the cases, the stability record and the
    /// required level (an `error` stays).
    fn decide(&mut self) {
        if self.result == ReportResult::Error {
            return;
        }
        let crashed_outside = self.crashed_outside_cases();
        let statistics = &self.statistics;
        let (result, reason) = if statistics.failed > 0 {
            (
                ReportResult::Failure,
                Some(format!("{} case(s) failed", statistics.failed)),
            )
        } else if crashed_outside {
            (
                ReportResult::Failure,
                Some("a container of the implementation exited outside every case".to_string()),
            )
        } else if statistics.not_run > 0 {
            (
                ReportResult::Failure,
                Some(format!(
                    "{} case(s) could not run because the implementation did not recover",
                    statistics.not_run
                )),
            )
        } else if self.required_level.is_some() && self.levels.core.result != ReportResult::Success
        {
            (
                ReportResult::Failure,
                Some(format!(
                    "the required level Core was not reached: {}",
                    self.level_note()
                )),
            )
        } else {
            (ReportResult::Success, None)
        };
        self.result = result;
        self.result_reason = reason;
    }

    /// Why Core is not claimed, or that it is.
    pub(crate) fn level_note(&self) -> String {
        let core = &self.levels.core;
        let mut why = Vec::new();
        if !core.not_declared.is_empty() {
            why.push(format!(
                "Core features not declared: {}",
                core.not_declared.join(", ")
            ));
        }
        if !core.not_passed.is_empty() {
            why.push(format!(
                "Core features not passed: {}",
                core.not_passed.join(", ")
            ));
        }
        if !core.cases_not_run.is_empty() {
            why.push(format!(
                "Core cases not run here: {}",
                core.cases_not_run.join(", ")
            ));
        }
        if why.is_empty() && core.result != ReportResult::Success {
            why.push("a container of the implementation exited outside every case".into());
        }
        if why.is_empty() {
            "every Core case ran and passed".into()
        } else {
            why.join("; ")
        }
    }

    /// The summary's first line: what succeeded and which level was reached, never "Success"
    /// alone when no level was.
    pub fn headline(&self) -> String {
        let statistics = &self.statistics;
        let declared_passed = self
            .features
            .iter()
            .filter(|f| f.declared && f.result == ReportResult::Success)
            .count();
        let ran = format!(
            "{} case(s) ran: {} passed, {} failed",
            statistics.ran(),
            statistics.passed,
            statistics.failed
        );
        let level = if self.conformance_level == "none" {
            format!("conformance level: none ({})", self.level_note())
        } else {
            format!("conformance level: {}", self.conformance_level)
        };
        match self.result {
            ReportResult::Error => format!(
                "Error: the harness could not test: {}",
                self.result_reason.as_deref().unwrap_or("unknown")
            ),
            ReportResult::Success => {
                format!("Success: {ran}; {declared_passed} declared feature(s) passed; {level}")
            }
            _ => format!(
                "Failure: {}; {ran}; {level}",
                self.result_reason.as_deref().unwrap_or("")
            ),
        }
    }
}

fn levels(declared: &Declared, features: &[FeatureReport]) -> Levels {
    let report_of = |feature: Feature| features.iter().find(|f| f.name == feature);
    let result_of =
        |feature: Feature| report_of(feature).map_or(ReportResult::Skipped, |f| f.result);
    // Every case of the feature ran and passed.
    let fully_passed = |feature: Feature| {
        report_of(feature).is_some_and(|f| {
            f.result == ReportResult::Success && f.statistics.passed == f.cases.len()
        })
    };
    let names = |level: Level, keep: &dyn Fn(Feature) -> bool| -> Vec<String> {
        Feature::all()
            .filter(|f| f.level() == level && keep(*f))
            .map(|f| f.name().to_string())
            .collect()
    };
    let is_declared = |feature: Feature| declared.contains(&feature);
    let core_not_declared = names(Level::Core, &|f| !is_declared(f));
    let core_not_passed = names(Level::Core, &|f| {
        is_declared(f)
            && !matches!(
                result_of(f),
                ReportResult::Success | ReportResult::NotTested
            )
    });
    let cases_not_run: Vec<String> = features
        .iter()
        .filter(|f| f.level == Level::Core && f.declared)
        .flat_map(|f| &f.cases)
        .filter(|c| !c.result.ran())
        .map(|c| c.id.clone())
        .collect();
    let core_failed =
        Feature::all().any(|f| f.level() == Level::Core && result_of(f) == ReportResult::Failure);
    let core = CoreLevel {
        result: if core_failed {
            ReportResult::Failure
        } else if !core_not_declared.is_empty() || !core_not_passed.is_empty() {
            ReportResult::Partial
        } else if !cases_not_run.is_empty() {
            ReportResult::NotTested
        } else {
            ReportResult::Success
        },
        not_declared: core_not_declared,
        not_passed: core_not_passed,
        cases_not_run,
    };
    let extended_with = |wanted: ReportResult| {
        names(Level::Extended, &|f| {
            is_declared(f)
                && result_of(f) == wanted
                && (wanted != ReportResult::Success || fully_passed(f))
        })
    };
    let extended = ExtendedLevel {
        passed: extended_with(ReportResult::Success),
        partial: extended_with(ReportResult::Partial),
        failed: extended_with(ReportResult::Failure),
        not_declared: names(Level::Extended, &|f| !is_declared(f)),
    };
    Levels { core, extended }
}

/// `path` relative to the current directory when it lies below it, else as given.
fn relative_to_cwd(path: &std::path::Path) -> String {
    let relative = std::env::current_dir().ok().and_then(|cwd| {
        let absolute = std::fs::canonicalize(path).ok()?;
        let cwd = std::fs::canonicalize(cwd).ok()?;
        absolute
            .strip_prefix(&cwd)
            .ok()
            .map(|p| p.display().to_string())
    });
    relative.unwrap_or_else(|| path.display().to_string())
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
