//! Named conformance cases with stable IDs, each declaring the feature it needs.
//!
//! A case returns normalised observations (for snapshots and reports) or an error whose text is
//! the failure reason. Cases that change the cluster restore it before returning, pass or fail.

mod bad;
mod config;
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

/// Signature of a case body.
pub type CaseFn = for<'a> fn(&'a Ctx) -> BoxFuture<'a, Result<serde_json::Value>>;

/// One conformance case.
pub struct Case {
    /// Stable ID, e.g. `REG-001`.
    pub id: &'static str,
    /// The feature it needs (see [`crate::profile::KNOWN_FEATURES`]).
    pub feature: &'static str,
    /// One line saying what it proves.
    pub summary: &'static str,
    /// The body.
    pub run: CaseFn,
}

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
}

/// Longest a single case may take.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs one case, or skips it when the profile does not declare its feature.
pub async fn run_case(ctx: &Ctx, case: &Case) -> CaseResult {
    let start = Instant::now();
    let mut result = CaseResult {
        id: case.id.into(),
        feature: case.feature.into(),
        summary: case.summary.into(),
        outcome: Outcome::Skipped,
        reason: None,
        duration: Duration::ZERO,
        observations: serde_json::Value::Null,
    };
    if !ctx.profile.supports(case.feature) {
        result.reason = Some(format!(
            "feature {} is not declared by the profile",
            case.feature
        ));
        return result;
    }
    eprintln!("[case] {} {} ...", case.id, case.summary);
    match tokio::time::timeout(CASE_TIMEOUT, (case.run)(ctx)).await {
        Ok(Ok(observations)) => {
            result.outcome = Outcome::Passed;
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

/// Skipped when a [`Skip`] is anywhere in the error's chain, else failed.
fn outcome_of_error(error: &anyhow::Error) -> Outcome {
    if error.chain().any(|cause| cause.is::<Skip>()) {
        Outcome::Skipped
    } else {
        Outcome::Failed
    }
}

/// Runs the selected cases (all when `only` is empty) in order.
pub async fn run_all(ctx: &Ctx, only: &[String]) -> Vec<CaseResult> {
    let mut results = Vec::new();
    for case in all() {
        if only.is_empty() || only.iter().any(|id| id == case.id) {
            results.push(run_case(ctx, &case).await);
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::KNOWN_FEATURES;

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
                KNOWN_FEATURES.contains(&case.feature),
                "{} has unknown feature {}",
                case.id,
                case.feature
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
}
