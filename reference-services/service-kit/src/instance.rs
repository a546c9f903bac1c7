//! The instance values a service registers (CONTRACT §1).

use std::net::IpAddr;

use gomicro_registry::{PodIdentity, ServiceInstance, format_host};

/// Build version: `GOMICRO_VERSION` at build time when set and not empty, else the crate
/// version.
pub const VERSION: &str = match option_env!("GOMICRO_VERSION") {
    Some(version) if !version.is_empty() => version,
    _ => env!("CARGO_PKG_VERSION"),
};

/// The instance of service `name` on `pod`: id `<pod name>.<name>`, version [`VERSION`],
/// empty metadata, one endpoint `scheme://<ip>:<port>` per `(scheme, port)`.
pub fn service_instance(
    name: &str,
    pod: &PodIdentity,
    ip: IpAddr,
    listeners: &[(&str, u16)],
) -> ServiceInstance {
    let host = format_host(&ip.to_string());
    ServiceInstance {
        id: format!("{}.{name}", pod.name),
        name: name.to_owned(),
        version: VERSION.to_owned(),
        metadata: Default::default(),
        endpoints: listeners
            .iter()
            .map(|(scheme, port)| format!("{scheme}://{host}:{port}"))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_instance_follows_the_contract() {
        let pod = PodIdentity {
            name: "admin-srv-6b7c9-q2x4z".into(),
            namespace: "go-micro".into(),
        };
        let ip: IpAddr = "10.244.0.7".parse().unwrap();
        let instance = service_instance(
            "go-micro.admin-srv",
            &pod,
            ip,
            &[("http", 8080), ("grpc", 9090)],
        );
        assert_eq!(instance.id, "admin-srv-6b7c9-q2x4z.go-micro.admin-srv");
        assert_eq!(instance.version, VERSION);
        assert!(instance.metadata.is_empty());
        assert_eq!(
            instance.endpoints,
            ["http://10.244.0.7:8080", "grpc://10.244.0.7:9090"]
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        let pod = PodIdentity {
            name: "p".into(),
            namespace: "n".into(),
        };
        let instance = service_instance("s", &pod, "fd00::7".parse().unwrap(), &[("grpc", 9090)]);
        assert_eq!(instance.endpoints, ["grpc://[fd00::7]:9090"]);
    }
}
