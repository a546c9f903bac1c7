//! The case registry: named conformance cases with stable IDs, each declaring the feature it
//! checks (by variant), the CONTRACT.md section its assertions come from and the backend lever it
//! needs, if any; the feature gives its level (Core or Extended, see [`crate::features`]). A Core
//! case demands only Core behaviour and never reads the profile's declarations: the context
//! it gets carries none (see [`crate::verdict`]).
//!
//! A case returns normalised observations (for snapshots and reports) or an error whose text is
//! the failure reason. Figures that differ from run to run (timings, counts) go under the
//! [`MEASUREMENTS`] key: they are reported, never snapshotted. A case that changes the cluster
//! registers the restore with [`Ctx::on_cleanup`] before it changes it; the runner runs the
//! restores after the body, also when it failed, panicked or ran out of time.
//!
//! Helpers shared by several case modules live in [`support`]; case modules do not import each
//! other.

mod bad;
mod config;
mod discovery;
mod fault;
mod health;
mod hygiene;
mod isolation;
mod login;
mod rbac;
mod registration;
mod resolver;
pub(crate) mod support;

use anyhow::Result;
use futures::future::BoxFuture;

pub(crate) use crate::cluster::Lever;
pub(crate) use crate::context::Ctx;
use crate::features::{Feature, Level};

/// Signature of a case body.
pub(crate) type CaseFn = for<'a> fn(&'a Ctx) -> BoxFuture<'a, Result<serde_json::Value>>;

/// One conformance case.
pub struct Case {
    /// Stable ID, e.g. `REG-001`.
    pub id: &'static str,
    /// The feature whose claim it checks.
    pub feature: Feature,
    /// The CONTRACT.md section(s) its assertions trace to, e.g. `§3`.
    pub section: &'static str,
    /// One line saying what it proves.
    pub summary: &'static str,
    /// A backend lever it needs beyond the Kubernetes API; on a backend without it the case is
    /// not applicable (CONTRACT.md §8).
    pub(crate) lever: Option<Lever>,
    /// The body. It registers what must be restored with [`Ctx::on_cleanup`].
    pub(crate) run: CaseFn,
}

impl Case {
    /// The level of its feature.
    pub fn level(&self) -> Level {
        self.feature.level()
    }
}

/// Key of a case's observations holding run-dependent figures, moved into the result's
/// measurements.
pub(crate) const MEASUREMENTS: &str = "measurements";

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
        isolation::cases(),
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
pub(crate) fn by_id(id: &str) -> Option<Case> {
    all().into_iter().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_features_known() {
        let cases = all();
        let mut ids: Vec<&str> = cases.iter().map(|c| c.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), cases.len(), "duplicate case IDs");
        for case in &cases {
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
        for feature in Feature::all() {
            assert!(
                cases.iter().any(|c| c.feature == feature),
                "feature {feature} has no case, so it could be declared untested"
            );
        }
    }
}
