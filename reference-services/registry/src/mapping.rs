//! Pod → service instance (CONTRACT §2).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use crate::{ServiceInstance, format_host, keys};

/// A pod whose registry annotations cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("pod {pod}: annotation {annotation} is not a JSON object of strings: {source}")]
pub struct MappingError {
    /// `namespace/name` of the pod.
    pub pod: String,
    /// The malformed annotation key.
    pub annotation: &'static str,
    /// The JSON error.
    pub source: serde_json::Error,
}

/// Whether a pod serves traffic: phase Running, condition Ready True, not terminating,
/// and it has a pod IP.
pub fn is_discoverable(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    let running = status.phase.as_deref() == Some("Running");
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let has_ip = status.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty());
    running && ready && has_ip && pod.metadata.deletion_timestamp.is_none()
}

/// Maps a pod to the instance it advertises: id, name and version from the labels, metadata
/// from its annotation, one endpoint per declared container port at `status.podIP`.
pub fn instance_from_pod(pod: &Pod) -> Result<ServiceInstance, MappingError> {
    let label = |key: &str| {
        pod.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(key))
            .cloned()
            .unwrap_or_default()
    };
    let metadata = string_map_annotation(pod, keys::ANNOTATION_METADATA)?;
    let protocols = string_map_annotation(pod, keys::ANNOTATION_PROTOCOLS)?;
    let host = format_host(
        pod.status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .unwrap_or_default(),
    );
    let endpoints = pod
        .spec
        .iter()
        .flat_map(|spec| &spec.containers)
        .flat_map(|container| container.ports.iter().flatten())
        .map(|port| {
            let number = port.container_port;
            let scheme = protocols
                .get(&number.to_string())
                .cloned()
                .or_else(|| {
                    port.name
                        .as_deref()
                        .filter(|n| !n.is_empty())
                        .map(scheme_of_port_name)
                })
                .unwrap_or_else(|| port.protocol.clone().unwrap_or_else(|| "TCP".to_owned()));
            format!("{scheme}://{host}:{number}")
        })
        .collect();
    Ok(ServiceInstance {
        id: label(keys::LABEL_ID),
        name: label(keys::LABEL_APP),
        version: label(keys::LABEL_VERSION),
        metadata,
        endpoints,
    })
}

/// The scheme a port name implies: the part before the first `-` (`grpc-port` → `grpc`).
fn scheme_of_port_name(name: &str) -> String {
    name.split('-').next().unwrap_or(name).to_owned()
}

/// Reads a JSON string map annotation; absent, empty, `{}` and `null` give an empty map.
fn string_map_annotation(
    pod: &Pod,
    annotation: &'static str,
) -> Result<BTreeMap<String, String>, MappingError> {
    let raw = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotation))
        .map(|v| v.trim())
        .unwrap_or_default();
    if raw.is_empty() {
        return Ok(BTreeMap::new());
    }
    serde_json::from_str::<Option<BTreeMap<String, String>>>(raw)
        .map(Option::unwrap_or_default)
        .map_err(|source| MappingError {
            pod: pod_key(pod),
            annotation,
            source,
        })
}

/// `namespace/name` of a pod.
pub(crate) fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    /// A Running, Ready pod of `go-micro.user-srv` built from JSON, with `ports` and annotations.
    pub(crate) fn pod(
        name: &str,
        ip: &str,
        ports: serde_json::Value,
        annotations: serde_json::Value,
    ) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "namespace": "go-micro",
                "labels": {
                    "app": "user-srv",
                    "gomicro-service-id": format!("{name}.go-micro.user-srv"),
                    "gomicro-service-app": "go-micro.user-srv",
                    "gomicro-service-version": "v1.0.0"
                },
                "annotations": annotations
            },
            "spec": { "containers": [ { "name": "user-srv", "ports": ports } ] },
            "status": {
                "phase": "Running",
                "podIP": ip,
                "conditions": [ { "type": "Ready", "status": "True" } ]
            }
        }))
        .expect("valid pod JSON")
    }

    fn user_pod(annotations: serde_json::Value) -> Pod {
        pod(
            "user-srv-1",
            "10.244.0.9",
            json!([{ "name": "grpc-port", "containerPort": 9090, "protocol": "TCP" }]),
            annotations,
        )
    }

    #[test]
    fn maps_labels_metadata_and_endpoints() {
        let annotations = json!({ "gomicro-service-metadata": "{\"zone\":\"a\"}", "gomicro-service-protocols": "{\"9090\":\"grpc\"}" });
        insta::assert_json_snapshot!(instance_from_pod(&user_pod(annotations)).unwrap());
    }

    #[rstest]
    #[case::from_protocols_annotation(json!({"name": "web-port", "containerPort": 9090, "protocol": "TCP"}), json!({"gomicro-service-protocols": "{\"9090\":\"grpc\"}"}), "grpc://10.244.0.9:9090")]
    #[case::from_port_name_prefix(json!({"name": "grpc-port", "containerPort": 9090, "protocol": "TCP"}), json!({}), "grpc://10.244.0.9:9090")]
    #[case::from_port_name_without_dash(json!({"name": "http", "containerPort": 8080}), json!({}), "http://10.244.0.9:8080")]
    #[case::from_port_protocol(json!({"containerPort": 9090, "protocol": "UDP"}), json!({}), "UDP://10.244.0.9:9090")]
    #[case::protocol_defaults_to_tcp(json!({"containerPort": 9090}), json!({"gomicro-service-protocols": "{\"8080\":\"http\"}"}), "TCP://10.244.0.9:9090")]
    fn scheme_fallbacks(
        #[case] port: serde_json::Value,
        #[case] annotations: serde_json::Value,
        #[case] expected: &str,
    ) {
        let instance =
            instance_from_pod(&pod("p", "10.244.0.9", json!([port]), annotations)).unwrap();
        assert_eq!(instance.endpoints, [expected]);
    }

    #[test]
    fn endpoints_follow_declared_port_order_across_containers() {
        let mut pod = pod(
            "p",
            "10.244.0.9",
            json!([{ "name": "http-port", "containerPort": 8080 }]),
            json!({}),
        );
        let second: k8s_openapi::api::core::v1::Container = serde_json::from_value(
            json!({ "name": "b", "ports": [{ "name": "grpc-port", "containerPort": 9090 }] }),
        )
        .unwrap();
        pod.spec.as_mut().unwrap().containers.push(second);
        assert_eq!(
            instance_from_pod(&pod).unwrap().endpoints,
            ["http://10.244.0.9:8080", "grpc://10.244.0.9:9090"]
        );
    }

    #[test]
    fn ipv6_pod_ip_is_bracketed() {
        let pod = pod(
            "p",
            "fd00:10:244::9",
            json!([{ "name": "grpc-port", "containerPort": 9090 }]),
            json!({}),
        );
        assert_eq!(
            instance_from_pod(&pod).unwrap().endpoints,
            ["grpc://[fd00:10:244::9]:9090"]
        );
    }

    #[rstest]
    #[case::absent(json!({}))]
    #[case::empty(json!({"gomicro-service-metadata": ""}))]
    #[case::empty_object(json!({"gomicro-service-metadata": "{}"}))]
    #[case::null(json!({"gomicro-service-metadata": "null"}))]
    fn metadata_variants_give_an_empty_map(#[case] annotations: serde_json::Value) {
        assert!(
            instance_from_pod(&user_pod(annotations))
                .unwrap()
                .metadata
                .is_empty()
        );
    }

    #[rstest]
    #[case::metadata_not_json(json!({"gomicro-service-metadata": "{broken"}), "gomicro-service-metadata")]
    #[case::metadata_not_strings(json!({"gomicro-service-metadata": "{\"a\":1}"}), "gomicro-service-metadata")]
    #[case::protocols_array(json!({"gomicro-service-protocols": "[\"grpc\"]"}), "gomicro-service-protocols")]
    fn malformed_annotations_name_the_pod(
        #[case] annotations: serde_json::Value,
        #[case] key: &str,
    ) {
        let error = instance_from_pod(&user_pod(annotations)).unwrap_err();
        assert_eq!(error.annotation, key);
        assert!(
            error
                .to_string()
                .starts_with(&format!("pod go-micro/user-srv-1: annotation {key}")),
            "{error}"
        );
    }

    #[rstest]
    #[case::running_ready(None, "Running", "True", true)]
    #[case::pending(None, "Pending", "True", false)]
    #[case::not_ready(None, "Running", "False", false)]
    #[case::terminating(Some("2026-01-01T00:00:00Z"), "Running", "True", false)]
    fn discoverability(
        #[case] deletion: Option<&str>,
        #[case] phase: &str,
        #[case] ready: &str,
        #[case] expected: bool,
    ) {
        let mut pod = user_pod(json!({}));
        let status = pod.status.as_mut().unwrap();
        status.phase = Some(phase.into());
        status.conditions.as_mut().unwrap()[0].status = ready.into();
        pod.metadata.deletion_timestamp =
            deletion.map(|t| serde_json::from_value(json!(t)).unwrap());
        assert_eq!(is_discoverable(&pod), expected);
    }

    #[test]
    fn pod_without_ip_is_not_discoverable() {
        let mut pod = user_pod(json!({}));
        pod.status.as_mut().unwrap().pod_ip = None;
        assert!(!is_discoverable(&pod));
    }
}
