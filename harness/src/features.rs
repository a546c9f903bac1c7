//! The features a profile can declare, each with its conformance level (CONTRACT.md §7).
//!
//! Core features are what every implementation of the pattern must do (Go-Micro's example
//! services pass them unchanged); Extended features are behaviour the contract defines but an
//! implementation may not offer. Where the contract lets values differ (wrong-credentials
//! status, the no-instance status) the cases read the profile's expectations instead.

use serde::Serialize;

/// Conformance level of a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Level {
    /// Demanded of every implementation.
    Core,
    /// Defined by the contract, offered by some implementations, declared in the profile.
    Extended,
}

impl Level {
    /// `Core` or `Extended`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Core => "Core",
            Level::Extended => "Extended",
        }
    }
}

/// One declarable feature.
#[derive(Debug, Clone, Copy)]
pub struct Feature {
    /// Name used in profiles and reports.
    pub name: &'static str,
    pub level: Level,
    /// The CONTRACT.md sections its cases check.
    pub sections: &'static str,
    /// What declaring it claims.
    pub claim: &'static str,
}

const fn core(name: &'static str, sections: &'static str, claim: &'static str) -> Feature {
    Feature {
        name,
        level: Level::Core,
        sections,
        claim,
    }
}

const fn extended(name: &'static str, sections: &'static str, claim: &'static str) -> Feature {
    Feature {
        name,
        level: Level::Extended,
        sections,
        claim,
    }
}

/// Every feature, Core first. Each has at least one case (checked by a unit test of
/// [`crate::cases`]), so a declared feature is always tested.
pub const FEATURES: &[Feature] = &[
    core(
        "registration",
        "§1",
        "each pod patches the five registry keys onto itself",
    ),
    core(
        "deregistration",
        "§1",
        "a stopping pod clears its registry keys before it goes",
    ),
    core(
        "resolver",
        "§2, §3",
        "Running pods are discovered and admin-srv logs every applied update; an empty list is refused",
    ),
    core(
        "config-load",
        "§4",
        "each service loads its ConfigMap entry at startup",
    ),
    core("login-http", "§5", "the article's HTTP login and its JWT"),
    core("login-grpc", "§5", "the article's gRPC login and its JWT"),
    core(
        "login-bad-input",
        "§5",
        "bad login input is answered in the error shape, without a crash or hang",
    ),
    core(
        "cors",
        "§5",
        "CORS preflights and origins follow server.http methods/origins",
    ),
    core("health", "§5", "grpc.health.v1 SERVING on every service"),
    core("reflection", "§5", "gRPC server reflection v1 and v1alpha"),
    core(
        "rbac",
        "§1, §6",
        "the fixtures' RBAC suffices and missing RBAC fails startup clearly",
    ),
    core(
        "fault-tolerance",
        "§2",
        "watches survive a kube-apiserver or etcd restart",
    ),
    extended(
        "readiness-aware-discovery",
        "§2",
        "pods that are not Ready or are terminating are not discovered",
    ),
    extended(
        "discovery-bad-input",
        "§2",
        "a pod with malformed registry annotations is skipped with a warning, the others stay",
    ),
    extended(
        "config-live-reload",
        "§4",
        "ConfigMap changes take effect in the running service, debounced",
    ),
    extended(
        "config-bad-input",
        "§4",
        "an unparsable ConfigMap update is rejected with a clear error; the last good config serves",
    ),
    extended(
        "strict-input-validation",
        "§5",
        "malformed login input is refused with 4xx / INVALID_ARGUMENT",
    ),
    extended(
        "failover",
        "§2, §3",
        "logins succeed again within a deadline after a user-srv process is killed",
    ),
    extended(
        "zero-downtime-rollout",
        "§2, §3",
        "no login fails during a rolling restart of user-srv",
    ),
    extended(
        "secret-hygiene",
        "§5",
        "no password, signing key or issued token in the implementation's logs, events or objects",
    ),
];

/// Former feature names and where their cases went.
const RETIRED: &[(&str, &str)] = &[(
    "discovery",
    "Core discovery is part of `resolver`; readiness-aware discovery is `readiness-aware-discovery`",
)];

/// The feature of that name.
pub fn find(name: &str) -> Option<&'static Feature> {
    FEATURES.iter().find(|f| f.name == name)
}

/// Why `name` cannot be declared: unknown, or retired (with where its cases went).
pub fn undeclarable(name: &str) -> Option<String> {
    if find(name).is_some() {
        return None;
    }
    Some(match RETIRED.iter().find(|(old, _)| *old == name) {
        Some((_, instead)) => format!("feature `{name}` has no cases of its own: {instead}"),
        None => {
            let known: Vec<&str> = FEATURES.iter().map(|f| f.name).collect();
            format!("unknown feature `{name}`; known features are {known:?}")
        }
    })
}

/// The Core features.
pub fn core_features() -> impl Iterator<Item = &'static Feature> {
    FEATURES.iter().filter(|f| f.level == Level::Core)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_and_unknown_names_are_explained() {
        assert!(undeclarable("resolver").is_none());
        let retired = undeclarable("discovery").unwrap();
        assert!(retired.contains("resolver"), "{retired}");
        let unknown = undeclarable("teleportation").unwrap();
        assert!(unknown.contains("teleportation") && unknown.contains("failover"));
    }

    #[test]
    fn names_are_unique_and_core_comes_first() {
        let mut names: Vec<&str> = FEATURES.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FEATURES.len());
        let levels: Vec<Level> = FEATURES.iter().map(|f| f.level).collect();
        assert!(levels.is_sorted(), "Core features first");
    }
}
