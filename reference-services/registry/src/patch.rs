//! Bodies of the registration and deregistration PATCH requests (CONTRACT §1).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::{Endpoint, RegistryError, ServiceInstance, keys};

/// The protocols annotation content: port (as a string) → scheme, from the endpoints.
pub fn protocols_of(endpoints: &[String]) -> Result<BTreeMap<String, String>, RegistryError> {
    endpoints
        .iter()
        .map(|endpoint| {
            Endpoint::parse(endpoint)
                .map(|parsed| (parsed.port.to_string(), parsed.scheme))
                .map_err(|reason| RegistryError::InvalidEndpoint {
                    endpoint: endpoint.clone(),
                    reason,
                })
        })
        .collect()
}

/// Strategic-merge patch registering `instance` on its pod: three labels, two annotations.
pub fn register_patch(instance: &ServiceInstance) -> Result<Value, RegistryError> {
    let metadata = serde_json::to_string(&instance.metadata).expect("string map serialises");
    let protocols =
        serde_json::to_string(&protocols_of(&instance.endpoints)?).expect("string map serialises");
    Ok(labels_and_annotations(
        [&instance.id, &instance.name, &instance.version],
        [&metadata, &protocols],
    ))
}

/// Strategic-merge patch deregistering: empty labels, `{}` annotations.
pub fn deregister_patch() -> Value {
    labels_and_annotations(["", "", ""], ["{}", "{}"])
}

fn labels_and_annotations(
    [id, app, version]: [&str; 3],
    [metadata, protocols]: [&str; 2],
) -> Value {
    json!({
        "metadata": {
            "labels": {
                keys::LABEL_ID: id,
                keys::LABEL_APP: app,
                keys::LABEL_VERSION: version,
            },
            "annotations": {
                keys::ANNOTATION_METADATA: metadata,
                keys::ANNOTATION_PROTOCOLS: protocols,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin_instance() -> ServiceInstance {
        ServiceInstance {
            id: "admin-srv-7d9f-x2k.go-micro.admin-srv".into(),
            name: "go-micro.admin-srv".into(),
            version: "0.1.0".into(),
            metadata: BTreeMap::from([("zone".into(), "a".into())]),
            endpoints: vec![
                "http://10.244.0.7:8080".into(),
                "grpc://10.244.0.7:9090".into(),
            ],
        }
    }

    #[test]
    fn register_body_has_exactly_three_labels_and_two_annotations() {
        insta::assert_snapshot!(
            serde_json::to_string_pretty(&register_patch(&admin_instance()).unwrap()).unwrap()
        );
    }

    #[test]
    fn empty_metadata_is_an_empty_object() {
        let instance = ServiceInstance {
            metadata: BTreeMap::new(),
            ..admin_instance()
        };
        let body = register_patch(&instance).unwrap();
        assert_eq!(
            body["metadata"]["annotations"][keys::ANNOTATION_METADATA],
            "{}"
        );
        assert_eq!(
            body["metadata"]["annotations"][keys::ANNOTATION_PROTOCOLS],
            r#"{"8080":"http","9090":"grpc"}"#
        );
    }

    #[test]
    fn deregister_body_clears_labels_and_annotations() {
        assert_eq!(
            deregister_patch().to_string(),
            r#"{"metadata":{"labels":{"gomicro-service-id":"","gomicro-service-app":"","gomicro-service-version":""},"annotations":{"gomicro-service-metadata":"{}","gomicro-service-protocols":"{}"}}}"#
        );
    }

    #[test]
    fn invalid_endpoint_is_reported() {
        let instance = ServiceInstance {
            endpoints: vec!["10.0.0.1:9090".into()],
            ..admin_instance()
        };
        let error = register_patch(&instance).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid endpoint \"10.0.0.1:9090\": missing \"scheme://\""
        );
    }
}
