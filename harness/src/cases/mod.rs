//! Named conformance cases with stable IDs, each declaring the feature it needs and the
//! CONTRACT.md section its assertions come from; the feature gives its level (Core or
//! Extended, see [`crate::features`]). A Core case demands only Core behaviour.
//!
//! A case returns normalised observations (for snapshots and reports) or an error whose text is
//! the failure reason. Figures that differ from run to run (timings, counts) go under the
//! [`MEASUREMENTS`] key: they are reported, never snapshotted. Cases that change the cluster
//! restore it before returning, pass or fail.

mod bad;
mod config;
mod discovery;
mod fault;
mod health;
mod hygiene;
mod login;
mod rbac;
mod registration;
mod resolver;

use std::time::{Duration, Instant};

use anyhow::Result;
use futures::future::BoxFuture;
use serde::Serialize;

pub use crate::context::Ctx;
use crate::features::{self, Level};

/// Signature of a case body.
pub type CaseFn = for<'a> fn(&'a Ctx) -> BoxFuture<'a, Result<serde_json::Value>>;

/// One conformance case.
pub struct Case {
    /// Stable ID, e.g. `REG-001`.
    pub id: &'static str,
    /// The feature it needs (one of [`crate::features::FEATURES`]).
    pub feature: &'static str,
    /// The CONTRACT.md section(s) its assertions trace to, e.g. `§3`.
    pub section: &'static str,
    /// One line saying what it proves.
    pub summary: &'static str,
    /// The body.
    pub run: CaseFn,
}

impl Case {
    /// The level of its feature.
    pub fn level(&self) -> Level {
        features::find(self.feature).map_or(Level::Extended, |f| f.level)
    }
}

/// Key of a case's observations holding run-dependent figures, moved into
/// [`CaseResult::measurements`].
pub const MEASUREMENTS: &str = "measurements";

/// Wraps an `async fn(&Ctx) -> Result<Value>` as a [`CaseFn`].
macro_rules! case_fn {
    ($body:path) => {{
        fn run(
            ctx: &$crate::context::Ctx,
        ) -> futures::future::BoxFuture<'_, anyhow::Result<serde_json::Value>> {
            Box::pin($body(ctx))
        }
        run as $crate::cases::CaseFn
    }};
}
pub(crate) use case_fn;

/// Every case, in the order they run (cheap read-only cases first, disruptive ones last).
pub fn all() -> Vec<Case> {
    [
        registration::cases(),
        health::cases(),
        login::cases(),
        rbac::cases(),
        resolver::cases(),
        discovery::cases(),
        config::cases(),
        fault::cases(),
        bad::cases(),
        hygiene::cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Finds a case by ID.
pub fn by_id(id: &str) -> Option<Case> {
    all().into_iter().find(|c| c.id == id)
}

/// Returned as the error of a case that cannot run here (e.g. it needs a local-only lever
/// this backend lacks); the case is reported as skipped with this reason.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Skip(pub String);

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    Failed,
    Skipped,
}

/// The result of running (or skipping) one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub id: String,
    pub feature: String,
    pub summary: String,
    pub outcome: Outcome,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub duration: Duration,
    /// Normalised observations (empty unless passed).
    #[serde(skip)]
    pub observations: serde_json::Value,
    /// Run-dependent figures the case measured (timings, counts), for the report.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub measurements: serde_json::Map<String, serde_json::Value>,
}

impl CaseResult {
    /// The result of a case that did not run (skipped, or failed before it could start).
    pub fn unrun(case: &Case, outcome: Outcome, reason: Option<String>) -> CaseResult {
        CaseResult {
            id: case.id.into(),
            feature: case.feature.into(),
            summary: case.summary.into(),
            outcome,
            reason,
            duration: Duration::ZERO,
            observations: serde_json::Value::Null,
            measurements: serde_json::Map::new(),
        }
    }
}

/// Longest a single case may take.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs one case, or skips it when the profile does not declare its feature.
pub async fn run_case(ctx: &Ctx, case: &Case) -> CaseResult {
    let start = Instant::now();
    let mut result = CaseResult::unrun(case, Outcome::Skipped, None);
    if !ctx.profile.supports(case.feature) {
        result.reason = Some(format!(
            "feature {} is not declared by the profile",
            case.feature
        ));
        return result;
    }
    eprintln!("[case] {} {} ...", case.id, case.summary);
    ctx.set_stability_phase(case.id, true);
    match tokio::time::timeout(CASE_TIMEOUT, (case.run)(ctx)).await {
        Ok(Ok(mut observations)) => {
            result.outcome = Outcome::Passed;
            if let Some(serde_json::Value::Object(measured)) = observations
                .as_object_mut()
                .and_then(|o| o.remove(MEASUREMENTS))
            {
                result.measurements = measured;
            }
            result.observations = observations;
        }
        Ok(Err(error)) => {
            result.outcome = outcome_of_error(&error);
            // Redacted here too, so the console never shows a secret either.
            let reason = format!("{error:#}");
            result.reason = Some(ctx.secrets.redactor().redact(&reason).into_owned());
        }
        Err(_) => {
            result.outcome = Outcome::Failed;
            result.reason = Some(format!("did not finish within {CASE_TIMEOUT:?}"));
        }
    }
    // Terminations that finished before this case began (reported late) are the run's to
    // attribute (see `fail_for_crashes`).
    let crashes = ctx.unexpected_terminations().await;
    ctx.set_stability_phase("between cases", false);
    fail_for_crashes(&mut result, &crashes);
    result.duration = start.elapsed();
    let word = match result.outcome {
        Outcome::Passed => "passed",
        Outcome::Failed => "FAILED",
        Outcome::Skipped => "skipped",
    };
    eprintln!(
        "[case] {} {word} in {:.1} s{}",
        case.id,
        result.duration.as_secs_f64(),
        result
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    );
    result
}

/// Fails `result` for each unexpected container exit or restart that happened during its case
/// (CONTRACT.md §7, "Any implementation") and that its reason does not name yet.
pub(crate) fn fail_for_crashes(result: &mut CaseResult, crashes: &[crate::stability::Termination]) {
    let named = |line: &str| result.reason.as_deref().is_some_and(|r| r.contains(line));
    let list: Vec<String> = crashes
        .iter()
        .filter(|c| c.during == result.id)
        .map(|c| c.describe())
        .filter(|line| !named(line))
        .collect();
    if list.is_empty() {
        return;
    }
    let mut reason = format!(
        "a container of the implementation exited or restarted and no case caused it: {}",
        list.join("; ")
    );
    if let Some(earlier) = &result.reason {
        reason.push_str(&format!("; besides: {earlier}"));
    }
    result.outcome = Outcome::Failed;
    result.reason = Some(reason);
    result.observations = serde_json::Value::Null;
}

/// Skipped when a [`Skip`] is anywhere in the error's chain, else failed.
fn outcome_of_error(error: &anyhow::Error) -> Outcome {
    if error.chain().any(|cause| cause.is::<Skip>()) {
        Outcome::Skipped
    } else {
        Outcome::Failed
    }
}

/// Runs the selected cases (all when `only` is empty) in order; the others are reported as
/// skipped, so a partial selection never earns a feature's full result.
pub async fn run_all(ctx: &Ctx, only: &[String]) -> Vec<CaseResult> {
    let mut results = Vec::new();
    for case in all() {
        if only.is_empty() || only.iter().any(|id| id == case.id) {
            results.push(run_case(ctx, &case).await);
        } else {
            let reason = "not selected by --case".to_string();
            results.push(CaseResult::unrun(&case, Outcome::Skipped, Some(reason)));
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::FEATURES;

    #[test]
    fn a_skip_under_context_skips_and_other_errors_fail() {
        let skip = anyhow::Error::new(Skip("needs a local cluster".into())).context("restarting");
        assert_eq!(outcome_of_error(&skip), Outcome::Skipped);
        assert_eq!(format!("{skip:#}"), "restarting: needs a local cluster");
        assert_eq!(outcome_of_error(&anyhow::anyhow!("boom")), Outcome::Failed);
    }

    #[test]
    fn ids_are_unique_and_features_known() {
        let cases = all();
        let mut ids: Vec<&str> = cases.iter().map(|c| c.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), cases.len(), "duplicate case IDs");
        for case in &cases {
            assert!(
                features::find(case.feature).is_some(),
                "{} has unknown feature {}",
                case.id,
                case.feature
            );
            assert!(
                case.section.starts_with('§'),
                "{} names no CONTRACT.md section",
                case.id
            );
            let prefix = case.id.split('-').next().unwrap();
            assert!(
                [
                    "REG", "DISC", "RES", "CFG", "LOGIN", "HEALTH", "RBAC", "FAULT", "BAD", "SEC"
                ]
                .contains(&prefix),
                "{}",
                case.id
            );
        }
    }

    #[test]
    fn every_feature_has_a_case() {
        let cases = all();
        for feature in FEATURES {
            assert!(
                cases.iter().any(|c| c.feature == feature.name),
                "feature {} has no case, so it could be declared untested",
                feature.name
            );
        }
    }
}
