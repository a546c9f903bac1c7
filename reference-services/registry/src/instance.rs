//! The registry's unit: one running instance of a service.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One instance of a service. Serialises with the keys in Go-Micro's order:
/// `id`, `name`, `version`, `metadata`, `endpoints`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInstance {
    /// Unique id, by convention `<pod name>.<service name>`.
    pub id: String,
    /// Service name, e.g. `go-micro.user-srv`.
    pub name: String,
    /// Build version of the service.
    pub version: String,
    /// Free-form string metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Endpoint URLs such as `grpc://10.244.0.9:9090`.
    #[serde(default)]
    pub endpoints: Vec<String>,
}

impl ServiceInstance {
    /// Compact JSON of a list of instances, as written in the resolver log lines.
    pub fn list_json(instances: &[ServiceInstance]) -> String {
        serde_json::to_string(instances).expect("instances always serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys_follow_go_micro_order() {
        let instance = ServiceInstance {
            id: "user-srv-5fc4d67dd5-sm9g4.go-micro.user-srv".into(),
            name: "go-micro.user-srv".into(),
            version: "0723caf".into(),
            metadata: BTreeMap::new(),
            endpoints: vec!["grpc://10.244.0.9:9090".into()],
        };
        assert_eq!(
            ServiceInstance::list_json(&[instance]),
            r#"[{"id":"user-srv-5fc4d67dd5-sm9g4.go-micro.user-srv","name":"go-micro.user-srv","version":"0723caf","metadata":{},"endpoints":["grpc://10.244.0.9:9090"]}]"#
        );
    }
}
