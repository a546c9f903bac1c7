//! Client-side resolution of `discovery:///<service name>` targets (CONTRACT §3).
//!
//! [`channel`] returns a tonic [`Channel`] that balances (power of two choices) over the
//! instances of the service, fed by [`Discovery::watch`]:
//! - from every instance the first `grpc://` endpoint is taken (duplicates once);
//! - an update without any such endpoint is not applied (the previous addresses stay)
//!   and logged as WARN `[resolver] Zero endpoint found,refused to write, instances: <JSON>`;
//! - every applied update is logged as INFO `[resolver] update instances: <JSON>`;
//! - health checking: each address is followed with `grpc.health.v1.Health/Watch` (service
//!   `""`, the protocol gRPC clients use for client-side health checking) and is balanced
//!   over only while its latest report is SERVING. A NOT_SERVING report or a watch that
//!   fails or ends (server stopping, connection lost) takes it out at once; the watch is
//!   re-opened after [`ResolverOptions::retry_interval`] or at the next instance update.
//!   With no address left, calls wait: callers bound them with their own timeout.
//!
//! `grpcs://` endpoints are not supported (the reference services speak plaintext gRPC).

mod balancer;

use std::time::Duration;

use futures::Stream;
use tonic::transport::Channel;

use crate::{Discovery, Endpoint, RegistryError, ServiceInstance};

/// URL scheme of discovery targets.
pub const TARGET_SCHEME: &str = "discovery";

/// Timing of the resolver's connections and health probes.
#[derive(Debug, Clone, Copy)]
pub struct ResolverOptions {
    /// Timeout of establishing a connection to an address.
    pub connect_timeout: Duration,
    /// Timeout of opening a health watch.
    pub probe_timeout: Duration,
    /// Pause before re-opening a health watch that failed or ended.
    pub retry_interval: Duration,
}

impl Default for ResolverOptions {
    fn default() -> Self {
        ResolverOptions {
            connect_timeout: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(1),
            retry_interval: Duration::from_secs(1),
        }
    }
}

/// A balanced, health-checked channel to the service named by `target`
/// (`discovery:///<name>`), kept current by watching its pods. Must be called inside a
/// tokio runtime; the background work ends when the channel and its clones are dropped.
pub fn channel(
    discovery: &Discovery,
    target: &str,
    options: ResolverOptions,
) -> Result<Channel, RegistryError> {
    let service = service_of_target(target)?;
    Ok(channel_from_updates(discovery.watch(&service), options))
}

/// A balanced, health-checked channel fed by any stream of full instance lists.
pub fn channel_from_updates(
    updates: impl Stream<Item = Vec<ServiceInstance>> + Send + 'static,
    options: ResolverOptions,
) -> Channel {
    balancer::spawn(updates, options)
}

/// The service name of a `discovery:///<name>` target.
pub fn service_of_target(target: &str) -> Result<String, RegistryError> {
    let invalid = |reason: &str| RegistryError::InvalidTarget {
        target: target.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = target
        .strip_prefix(TARGET_SCHEME)
        .and_then(|r| r.strip_prefix("://"))
        .ok_or_else(|| invalid("expected discovery:///<service name>"))?;
    let (_authority, path) = rest
        .split_once('/')
        .ok_or_else(|| invalid("expected discovery:///<service name>"))?;
    let name = path.trim_matches('/');
    if name.is_empty() {
        return Err(invalid("empty service name"));
    }
    Ok(name.to_owned())
}

/// `host:port` of the first `grpc://` endpoint of every instance, without duplicates.
pub fn grpc_addresses(instances: &[ServiceInstance]) -> Vec<String> {
    let mut addresses: Vec<String> = Vec::new();
    for instance in instances {
        let first_grpc = instance
            .endpoints
            .iter()
            .filter_map(|e| Endpoint::parse(e).ok())
            .find(|e| e.scheme == "grpc")
            .map(|e| format!("{}:{}", crate::format_host(&e.host), e.port));
        if let Some(address) = first_grpc.filter(|a| !addresses.contains(a)) {
            addresses.push(address);
        }
    }
    addresses
}

/// The INFO line logged after an applied update.
pub fn update_line(instances: &[ServiceInstance]) -> String {
    format!(
        "[resolver] update instances: {}",
        ServiceInstance::list_json(instances)
    )
}

/// The WARN line logged when an update holds no usable endpoint.
pub fn zero_endpoint_line(instances: &[ServiceInstance]) -> String {
    format!(
        "[resolver] Zero endpoint found,refused to write, instances: {}",
        ServiceInstance::list_json(instances)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn instance(pod: &str, endpoints: &[&str]) -> ServiceInstance {
        ServiceInstance {
            id: format!("{pod}.go-micro.user-srv"),
            name: "go-micro.user-srv".into(),
            version: "0723caf".into(),
            metadata: Default::default(),
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[rstest]
    #[case("discovery:///go-micro.user-srv", "go-micro.user-srv")]
    #[case("discovery://default/go-micro.token-srv", "go-micro.token-srv")]
    fn targets_name_the_service(#[case] target: &str, #[case] service: &str) {
        assert_eq!(service_of_target(target).unwrap(), service);
    }

    #[rstest]
    #[case("dns:///user-srv")]
    #[case("discovery:///")]
    #[case("discovery://user-srv")]
    fn bad_targets_are_rejected(#[case] target: &str) {
        let error = service_of_target(target).unwrap_err().to_string();
        assert!(error.contains(target), "{error}");
    }

    #[test]
    fn first_grpc_endpoint_per_instance_without_duplicates() {
        let instances = [
            instance(
                "a",
                &[
                    "http://10.244.0.7:8080",
                    "grpc://10.244.0.7:9090",
                    "grpc://10.244.0.7:9091",
                ],
            ),
            instance("b", &["http://10.244.0.8:8080"]),
            instance("c", &["grpc://[fd00::9]:9090"]),
            instance("d", &["grpc://10.244.0.7:9090"]),
        ];
        assert_eq!(
            grpc_addresses(&instances),
            ["10.244.0.7:9090", "[fd00::9]:9090"]
        );
    }

    #[test]
    fn log_lines_carry_compact_json_in_go_micro_key_order() {
        let instances = [instance(
            "user-srv-5fc4d67dd5-sm9g4",
            &["grpc://10.244.0.9:9090"],
        )];
        assert_eq!(
            update_line(&instances),
            r#"[resolver] update instances: [{"id":"user-srv-5fc4d67dd5-sm9g4.go-micro.user-srv","name":"go-micro.user-srv","version":"0723caf","metadata":{},"endpoints":["grpc://10.244.0.9:9090"]}]"#
        );
        assert_eq!(
            zero_endpoint_line(&[]),
            "[resolver] Zero endpoint found,refused to write, instances: []"
        );
    }
}
