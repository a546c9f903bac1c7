//! The features a profile can declare, each with its conformance level (CONTRACT.md §7).
//!
//! Core features are what every implementation of the pattern must do (Go-Micro's example
//! services pass them unchanged); Extended features are behaviour the contract defines but an
//! implementation may not offer. Where the contract lets values differ (wrong-credentials
//! status, the no-instance status) the cases read the profile's expectations instead.
//!
//! A feature's name exists once: derived from its variant (kebab-case) for profiles, reports
//! and the command line alike.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use strum::IntoEnumIterator;

/// Conformance level of a feature.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
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

/// One declarable feature. Core variants come first.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    schemars::JsonSchema,
    strum::EnumIter,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Feature {
    /// Pods carry the registration annotation and labels (§2).
    Registration,
    /// A stopped instance leaves discovery (§2).
    Deregistration,
    /// The resolver lists running instances and follows changes (§3).
    Resolver,
    /// Configuration comes from the ConfigMap at start (§4).
    ConfigLoad,
    /// Login over HTTP (§5).
    LoginHttp,
    /// Login over gRPC (§5).
    LoginGrpc,
    /// Malformed login requests get clear errors (§5).
    LoginBadInput,
    /// CORS answers of the HTTP gateway (§5).
    Cors,
    /// gRPC health checking (§6).
    Health,
    /// gRPC server reflection (§6).
    Reflection,
    /// Works with the RBAC it declares, fails clearly without it (§1).
    Rbac,
    /// Survives control-plane and container restarts (§3).
    FaultTolerance,
    /// Unready pods are not balanced to (§3, Extended).
    ReadinessAwareDiscovery,
    /// Malformed foreign pods are ignored with a warning (§3, Extended).
    DiscoveryBadInput,
    /// ConfigMap changes apply without a restart (§4, Extended).
    ConfigLiveReload,
    /// A malformed ConfigMap is refused and the old values kept (§4, Extended).
    ConfigBadInput,
    /// Request bodies are validated strictly (§5, Extended).
    StrictInputValidation,
    /// Logins go on when an instance dies (§3, Extended).
    Failover,
    /// No failed login during a rolling update (§3, Extended).
    ZeroDowntimeRollout,
    /// No secret in logs or answers (§5, Extended).
    SecretHygiene,
    /// Reflection describes every served service (§6, Extended).
    ReflectionComplete,
    /// Discovery stays in the configured namespaces; no pod rights elsewhere (§2, §6, Extended).
    NamespaceIsolation,
}

impl Feature {
    /// Every feature, Core first. Each has at least one case (checked by a unit test of
    /// [`crate::cases`]), so a declared feature is always tested.
    pub fn all() -> impl Iterator<Item = Feature> {
        Feature::iter()
    }

    /// The name used in profiles, reports and options, e.g. `login-http`.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// Its conformance level.
    pub fn level(self) -> Level {
        use Feature::*;
        match self {
            Registration | Deregistration | Resolver | ConfigLoad | LoginHttp | LoginGrpc
            | LoginBadInput | Cors | Health | Reflection | Rbac | FaultTolerance => Level::Core,
            ReadinessAwareDiscovery
            | DiscoveryBadInput
            | ConfigLiveReload
            | ConfigBadInput
            | StrictInputValidation
            | Failover
            | ZeroDowntimeRollout
            | SecretHygiene
            | ReflectionComplete
            | NamespaceIsolation => Level::Extended,
        }
    }

    /// The CONTRACT.md sections its cases check.
    pub fn sections(self) -> &'static str {
        use Feature::*;
        match self {
            Registration | Deregistration => "§1",
            Resolver => "§2, §3",
            ConfigLoad | ConfigLiveReload | ConfigBadInput => "§4",
            LoginHttp
            | LoginGrpc
            | LoginBadInput
            | Cors
            | Health
            | Reflection
            | StrictInputValidation
            | SecretHygiene
            | ReflectionComplete => "§5",
            Rbac => "§1, §6",
            FaultTolerance | ReadinessAwareDiscovery | DiscoveryBadInput => "§2",
            Failover | ZeroDowntimeRollout => "§2, §3",
            NamespaceIsolation => "§2, §6",
        }
    }

    /// What declaring it claims.
    pub fn claim(self) -> &'static str {
        use Feature::*;
        match self {
            Registration => "each pod patches the five registry keys onto itself",
            Deregistration => "a stopping pod clears its registry keys before it goes",
            Resolver => {
                "Running pods are discovered and admin-srv logs every applied update; an empty list is refused"
            }
            ConfigLoad => "each service loads its ConfigMap entry at startup",
            LoginHttp => "the article's HTTP login and its JWT",
            LoginGrpc => "the article's gRPC login and its JWT",
            LoginBadInput => {
                "bad login input is answered in the error shape, without a crash or hang"
            }
            Cors => "CORS preflights and origins follow server.http methods/origins",
            Health => "grpc.health.v1 SERVING on every service",
            Reflection => {
                "gRPC server reflection v1 and v1alpha: every listed API service and the files of its types resolve, Login is described and callable"
            }
            Rbac => "the fixtures' RBAC suffices and missing RBAC fails startup clearly",
            FaultTolerance => "watches survive a kube-apiserver or etcd restart",
            ReadinessAwareDiscovery => {
                "pods that are not Ready or are terminating are not discovered"
            }
            DiscoveryBadInput => {
                "a pod with malformed registry annotations is skipped with a warning, the others stay"
            }
            ConfigLiveReload => {
                "ConfigMap changes take effect in the running service, debounced, also across a control-plane restart"
            }
            ConfigBadInput => {
                "an unparsable ConfigMap update is rejected with a clear error; the last good config serves"
            }
            StrictInputValidation => "malformed login input is refused with 4xx / INVALID_ARGUMENT",
            Failover => "logins succeed again within a deadline after a user-srv process is killed",
            ZeroDowntimeRollout => "no login fails during a rolling restart of user-srv",
            SecretHygiene => {
                "no password, signing key or issued token in the implementation's logs, events or objects"
            }
            ReflectionComplete => {
                "every file and import that server reflection lists resolves into one descriptor pool, as grpcurl 1.9 requires"
            }
            NamespaceIsolation => {
                "instances are discovered only in the configured namespaces (default: the own one), and the service account may read pods nowhere else"
            }
        }
    }

    /// Parses a name as written in a profile or on the command line; the error says why the
    /// name cannot be declared (unknown, or retired with where its cases went).
    pub fn parse(name: &str) -> Result<Feature, String> {
        name.parse().map_err(|_| undeclarable(name))
    }
}

impl std::fmt::Display for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Feature {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Feature, D::Error> {
        let name = String::deserialize(deserializer)?;
        Feature::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// Former feature names and where their cases went.
const RETIRED: &[(&str, &str)] = &[(
    "discovery",
    "Core discovery is part of `resolver`; readiness-aware discovery is `readiness-aware-discovery`",
)];

/// Why `name` cannot be declared: unknown, or retired (with where its cases went).
fn undeclarable(name: &str) -> String {
    match RETIRED.iter().find(|(old, _)| *old == name) {
        Some((_, instead)) => format!("feature `{name}` has no cases of its own: {instead}"),
        None => format!(
            "unknown feature `{name}`; known features are {}",
            names(Feature::all())
        ),
    }
}

/// Feature names joined with `, `.
pub(crate) fn names(features: impl IntoIterator<Item = Feature>) -> String {
    features
        .into_iter()
        .map(Feature::name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The features a profile declares.
pub(crate) type Declared = BTreeSet<Feature>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_and_unknown_names_are_explained() {
        assert_eq!(Feature::parse("resolver"), Ok(Feature::Resolver));
        let retired = Feature::parse("discovery").unwrap_err();
        assert!(retired.contains("resolver"), "{retired}");
        let unknown = Feature::parse("teleportation").unwrap_err();
        assert!(
            unknown.contains("teleportation") && unknown.contains("failover"),
            "{unknown}"
        );
    }

    #[test]
    fn names_round_trip_through_serde_and_core_comes_first() {
        for feature in Feature::all() {
            let json = serde_json::to_value(feature).unwrap();
            assert_eq!(json, feature.name());
            assert_eq!(serde_json::from_value::<Feature>(json).unwrap(), feature);
        }
        let levels: Vec<Level> = Feature::all().map(Feature::level).collect();
        assert!(levels.is_sorted(), "Core features first");
    }
}
