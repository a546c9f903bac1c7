//! Configuration of the process kubelet: node identity, pod network, image map, TLS material.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How an image name maps to a local directory tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalImage {
    /// Directory on the host holding the image's files.
    pub root: PathBuf,
    /// Where the tree appears inside the pod's mount namespace (e.g. `/app`).
    pub mount_path: PathBuf,
    /// Entrypoint and default arguments, e.g. `["/app/token-srv", "-conf", "/app/conf"]`:
    /// the first element plays ENTRYPOINT, the rest CMD.
    pub entrypoint: Vec<String>,
    /// Default working directory inside the pod (`/` when absent); a relative entrypoint
    /// (`./server`) is found from here.
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// The image's environment (Dockerfile `ENV`): after the runtime defaults, before the
    /// container's `envFrom` and `env`, which override it.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// Image name (as written in pod specs) → local tree.
pub type ImageMap = BTreeMap<String, LocalImage>;

/// An IPv4 network in CIDR notation, e.g. `10.244.0.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Cidr {
    network: Ipv4Addr,
    prefix_len: u8,
}

/// Why a CIDR string was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    #[error("CIDR {0:?} is not of the form a.b.c.d/len")]
    Syntax(String),
    #[error("CIDR {0:?} has a prefix length above 30 (no room for pods)")]
    PrefixTooLong(String),
    #[error("CIDR {0:?} has host bits set (did you mean {1}?)")]
    HostBitsSet(String, Ipv4Cidr),
}

impl Ipv4Cidr {
    /// Builds a CIDR from a network address and prefix length; host bits must be zero.
    pub fn new(network: Ipv4Addr, prefix_len: u8) -> Result<Self, CidrError> {
        let text = format!("{network}/{prefix_len}");
        if prefix_len > 30 {
            return Err(CidrError::PrefixTooLong(text));
        }
        let masked = Self {
            network: Ipv4Addr::from(u32::from(network) & mask(prefix_len)),
            prefix_len,
        };
        if masked.network != network {
            return Err(CidrError::HostBitsSet(text, masked));
        }
        Ok(masked)
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `addr` lies inside the network.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.prefix_len) == u32::from(self.network)
    }

    /// The broadcast address (last address of the range).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix_len))
    }
}

fn mask(prefix_len: u8) -> u32 {
    if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix_len))
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || CidrError::Syntax(s.to_owned());
        let (addr, len) = s.split_once('/').ok_or_else(syntax)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| syntax())?;
        let len: u8 = len.parse().map_err(|_| syntax())?;
        if len > 32 {
            return Err(syntax());
        }
        Self::new(addr, len)
    }
}

impl TryFrom<String> for Ipv4Cidr {
    type Error = CidrError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Ipv4Cidr> for String {
    fn from(value: Ipv4Cidr) -> Self {
        value.to_string()
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// Everything [`crate::run`] needs.
#[derive(Clone, Debug)]
pub struct KubeletConfig {
    /// Name of the Node object, e.g. `local-node`.
    pub node_name: String,
    /// The bridge address; the kubelet serves on it and pods reach the API server there.
    pub node_ip: Ipv4Addr,
    /// Pod network; pod IPs are allocated from `.2` upward, skipping `node_ip`.
    pub pod_cidr: Ipv4Cidr,
    /// Existing bridge (up, carrying `node_ip`) the pods' veths are attached to.
    pub bridge: String,
    /// Directory the kubelet owns: `pods/<uid>/…` (logs, roots, records).
    pub state_dir: PathBuf,
    /// Image name → local tree.
    pub images: ImageMap,
    /// `KUBERNETES_SERVICE_HOST` handed to pods.
    pub api_server_host: String,
    /// `KUBERNETES_SERVICE_PORT` handed to pods.
    pub api_server_port: u16,
    /// Cluster CA (PEM), written as `ca.crt` into pods.
    pub ca_cert_pem: String,
    /// Serving certificate (PEM chain) for the kubelet's HTTPS server on `node_ip:10250`.
    pub serving_cert_pem: String,
    /// Private key (PEM) of the serving certificate.
    pub serving_key_pem: String,
}

/// Port of the kubelet's HTTPS server.
pub const KUBELET_PORT: u16 = 10250;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_cidr() {
        let cidr: Ipv4Cidr = "10.244.0.0/24".parse().unwrap();
        assert_eq!(cidr.network(), Ipv4Addr::new(10, 244, 0, 0));
        assert_eq!(cidr.prefix_len(), 24);
        assert_eq!(cidr.broadcast(), Ipv4Addr::new(10, 244, 0, 255));
        assert_eq!(cidr.to_string(), "10.244.0.0/24");
        assert!(cidr.contains(Ipv4Addr::new(10, 244, 0, 7)));
        assert!(!cidr.contains(Ipv4Addr::new(10, 244, 1, 7)));
    }

    #[test]
    fn rejects_bad_cidrs() {
        assert!(matches!(
            "10.244.0.0".parse::<Ipv4Cidr>(),
            Err(CidrError::Syntax(_))
        ));
        assert!(matches!(
            "10.244.0.0/33".parse::<Ipv4Cidr>(),
            Err(CidrError::Syntax(_))
        ));
        assert!(matches!(
            "10.244.0.0/31".parse::<Ipv4Cidr>(),
            Err(CidrError::PrefixTooLong(_))
        ));
        let err = "10.244.0.1/24".parse::<Ipv4Cidr>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "CIDR \"10.244.0.1/24\" has host bits set (did you mean 10.244.0.0/24?)"
        );
    }

    #[test]
    fn image_deserializes_from_json_with_optional_working_dir() {
        let image: LocalImage = serde_json::from_str(
            r#"{"root":"/srv/img","mount_path":"/app","entrypoint":["/app/x","-v"]}"#,
        )
        .unwrap();
        assert_eq!(image.working_dir, None);
        assert_eq!(image.entrypoint, ["/app/x", "-v"]);
        assert!(
            serde_json::from_str::<LocalImage>(
                r#"{"root":"/","mount_path":"/a","entrypoint":[],"x":1}"#
            )
            .is_err()
        );
    }
}
