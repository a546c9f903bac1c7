//! The Node object and its heartbeats: registration, Lease renewal (~10 s) and node status
//! refresh (~60 s).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use tokio_util::sync::CancellationToken;

use crate::config::{KUBELET_PORT, KubeletConfig};

/// Lease renewal period.
pub const LEASE_PERIOD: Duration = Duration::from_secs(10);
/// Node status refresh period.
pub const STATUS_PERIOD: Duration = Duration::from_secs(60);
/// Lease duration (as the kubelet's default).
pub const LEASE_DURATION_SECONDS: i32 = 40;

/// Facts about the host reported in `nodeInfo` and capacity.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub kubelet_version: String,
    pub memory_kib: u64,
    pub boot_id: String,
    pub machine_id: String,
    pub kernel_version: String,
    pub os_image: String,
}

impl HostFacts {
    /// Reads `/proc` and `/etc`; `kubelet_version` comes from the API server's `/version`.
    pub fn gather(kubelet_version: String) -> Self {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let memory_kib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        let os_image = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_else(|| "Linux".into());
        Self {
            kubelet_version,
            memory_kib,
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            machine_id: read("/etc/machine-id"),
            kernel_version: read("/proc/sys/kernel/osrelease"),
            os_image,
        }
    }
}

/// The node's status as this kubelet reports it.
pub fn node_status(
    config: &KubeletConfig,
    facts: &HostFacts,
    now: Timestamp,
    ready_since: Timestamp,
) -> NodeStatus {
    let resources: BTreeMap<String, Quantity> = [
        ("cpu", "2".to_owned()),
        ("memory", format!("{}Ki", facts.memory_kib)),
        ("pods", "110".to_owned()),
        ("ephemeral-storage", "10Gi".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), Quantity(v)))
    .collect();
    let condition = |kind: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: kind.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(ready_since)),
    };
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        conditions: Some(vec![
            condition(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            condition(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            ),
            condition(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            condition(
                "Ready",
                "True",
                "KubeletReady",
                "process kubelet is posting ready status",
            ),
        ]),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: config.node_ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: config.node_name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(KUBELET_PORT),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: std::env::consts::ARCH
                .replace("x86_64", "amd64")
                .replace("aarch64", "arm64"),
            boot_id: facts.boot_id.clone(),
            container_runtime_version: format!("process://{}", env!("CARGO_PKG_VERSION")),
            kernel_version: facts.kernel_version.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: facts.kubelet_version.clone(),
            machine_id: facts.machine_id.clone(),
            operating_system: "linux".into(),
            os_image: facts.os_image.clone(),
            system_uuid: facts.machine_id.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node_object(config: &KubeletConfig) -> Node {
    let arch = std::env::consts::ARCH
        .replace("x86_64", "amd64")
        .replace("aarch64", "arm64");
    Node {
        metadata: ObjectMeta {
            name: Some(config.node_name.clone()),
            labels: Some(
                [
                    ("kubernetes.io/hostname", config.node_name.as_str()),
                    ("kubernetes.io/os", "linux"),
                    ("kubernetes.io/arch", arch.as_str()),
                    ("beta.kubernetes.io/os", "linux"),
                    ("beta.kubernetes.io/arch", arch.as_str()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(config.pod_cidr.to_string()),
            pod_cidrs: Some(vec![config.pod_cidr.to_string()]),
            ..Default::default()
        }),
        status: None,
    }
}

/// Creates the Node (if missing) and posts its status; returns the Node's UID.
pub async fn register(
    client: &kube::Client,
    config: &KubeletConfig,
    facts: &HostFacts,
) -> anyhow::Result<String> {
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes
        .create(&PostParams::default(), &node_object(config))
        .await
    {
        Ok(_) => tracing::info!(node = %config.node_name, "registered node"),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            tracing::info!(node = %config.node_name, "node already registered")
        }
        Err(e) => return Err(e).context("cannot create Node"),
    }
    let now = Timestamp::now();
    post_status(&nodes, config, facts, now, now).await?;
    let node = nodes
        .get(&config.node_name)
        .await
        .context("cannot read back Node")?;
    node.metadata.uid.context("Node has no uid")
}

async fn post_status(
    nodes: &Api<Node>,
    config: &KubeletConfig,
    facts: &HostFacts,
    now: Timestamp,
    ready_since: Timestamp,
) -> anyhow::Result<()> {
    let patch = serde_json::json!({ "status": node_status(config, facts, now, ready_since) });
    nodes
        .patch_status(
            &config.node_name,
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
        .context("cannot update Node status")?;
    Ok(())
}

async fn renew_lease(
    client: &kube::Client,
    config: &KubeletConfig,
    node_uid: &str,
) -> anyhow::Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let spec = LeaseSpec {
        holder_identity: Some(config.node_name.clone()),
        lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
        renew_time: Some(MicroTime(Timestamp::now())),
        ..Default::default()
    };
    match leases.get_opt(&config.node_name).await? {
        Some(_) => {
            let patch = serde_json::json!({ "spec": spec });
            leases
                .patch(
                    &config.node_name,
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await?;
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.node_name.clone()),
                    namespace: Some("kube-node-lease".into()),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: config.node_name.clone(),
                        uid: node_uid.to_owned(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
                spec: Some(spec),
            };
            leases.create(&PostParams::default(), &lease).await?;
        }
    }
    Ok(())
}

/// Renews the Lease every [`LEASE_PERIOD`] and the status every [`STATUS_PERIOD`] until shutdown.
pub async fn heartbeat(
    client: kube::Client,
    config: KubeletConfig,
    facts: HostFacts,
    node_uid: String,
    shutdown: CancellationToken,
) {
    let nodes: Api<Node> = Api::all(client.clone());
    let ready_since = Timestamp::now();
    let mut lease_tick = tokio::time::interval(LEASE_PERIOD);
    let mut status_tick = tokio::time::interval(STATUS_PERIOD);
    status_tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = lease_tick.tick() => {
                if let Err(err) = renew_lease(&client, &config, &node_uid).await {
                    tracing::warn!(err = format!("{err:#}"), "cannot renew node lease");
                }
            }
            _ = status_tick.tick() => {
                if let Err(err) = post_status(&nodes, &config, &facts, Timestamp::now(), ready_since).await {
                    tracing::warn!(err = format!("{err:#}"), "cannot refresh node status");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_has_what_controllers_and_kubectl_read() {
        let config = KubeletConfig {
            node_name: "local-node".into(),
            node_ip: "10.244.0.1".parse().unwrap(),
            pod_cidr: "10.244.0.0/24".parse().unwrap(),
            bridge: "gmc0".into(),
            state_dir: "/tmp/x".into(),
            images: Default::default(),
            api_server_host: "10.244.0.1".into(),
            api_server_port: 6443,
            ca_cert_pem: String::new(),
            serving_cert_pem: String::new(),
            serving_key_pem: String::new(),
        };
        let facts = HostFacts::gather("v1.35.4".into());
        let status = node_status(&config, &facts, Timestamp::now(), Timestamp::now());
        assert_eq!(
            status.capacity.as_ref().unwrap()["pods"],
            Quantity("110".into())
        );
        assert_eq!(
            status.allocatable.as_ref().unwrap()["cpu"],
            Quantity("2".into())
        );
        let ready = status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        let addresses = status.addresses.as_ref().unwrap();
        assert_eq!(addresses[0].type_, "InternalIP");
        assert_eq!(addresses[0].address, "10.244.0.1");
        assert_eq!(
            status
                .daemon_endpoints
                .unwrap()
                .kubelet_endpoint
                .unwrap()
                .port,
            10250
        );
        assert_eq!(status.node_info.unwrap().kubelet_version, "v1.35.4");
        assert_eq!(
            node_object(&config).spec.unwrap().pod_cidr.as_deref(),
            Some("10.244.0.0/24")
        );
    }
}
