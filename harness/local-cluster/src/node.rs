//! The node's files (containerd's config and registry hosts, the CNI network, the kubelet's
//! and kube-proxy's configurations) and the images it runs: the pause image and the run's
//! archives, imported into containerd's CRI namespace.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::containerd;
use crate::files::write_public;
use crate::layout::{
    BRIDGE, CLUSTER_POD_CIDR, NODE_IP, NODE_NAME, NODE_POD_NET, SERVICE_NET, StateLayout,
};
use crate::node_config::{
    KubeProxySettings, KubeletSettings, PodNetwork, cni_conflist, kube_proxy_config, kubelet_config,
};
use crate::pause_image::{PAUSE_IMAGE, write_pause_archive};

/// Writes every node component's configuration below the state dir.
pub(crate) fn write_configs(
    layout: &StateLayout,
    node_bin_dir: &Path,
    pull_registries: &[String],
) -> anyhow::Result<()> {
    let containerd = layout.containerd();
    containerd.prepare(node_bin_dir, PAUSE_IMAGE, pull_registries)?;
    let network = PodNetwork {
        bridge: BRIDGE.into(),
        gateway: NODE_IP,
        subnet: NODE_POD_NET,
        service_cidr: SERVICE_NET,
        ipam_data_dir: layout.ipam_dir(),
    };
    write_json(
        &containerd
            .cni_conf_dir()
            .join("10-gomicro-conformance.conflist"),
        &cni_conflist(&network),
    )?;
    let kubelet = KubeletSettings {
        node_ip: NODE_IP,
        containerd_socket: containerd.socket(),
        client_ca_file: layout.pki("ca.crt"),
        tls_cert_file: layout.pki("kubelet.crt"),
        tls_private_key_file: layout.pki("kubelet.key"),
        pod_logs_dir: layout.pod_logs_dir(),
        cluster_dns: None,
    };
    write_json(
        &layout.config_file("kubelet.json"),
        &kubelet_config(&kubelet),
    )?;
    let kube_proxy = KubeProxySettings {
        kubeconfig: layout.kubeconfig("kube-proxy"),
        node_name: NODE_NAME.into(),
        node_ip: NODE_IP,
        cluster_cidr: CLUSTER_POD_CIDR.into(),
    };
    write_json(
        &layout.config_file("kube-proxy.json"),
        &kube_proxy_config(&kube_proxy),
    )
}

fn write_json(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    write_public(path, &serde_json::to_string_pretty(value)?)
}

/// Writes the pause image and imports it and `archives` into the running containerd (before
/// the kubelet starts: a pod must never find its image missing and try a pull).
pub(crate) fn import_images(
    layout: &StateLayout,
    node_bin_dir: &Path,
    archives: &[PathBuf],
) -> anyhow::Result<()> {
    let pause = layout.images_dir().join("pause.tar");
    std::fs::create_dir_all(layout.images_dir())
        .with_context(|| format!("creating {}", layout.images_dir().display()))?;
    write_pause_archive(node_bin_dir, &pause)?;
    let socket = layout.containerd().socket();
    let ctr = node_bin_dir.join("ctr");
    for archive in std::iter::once(&pause).chain(archives) {
        containerd::import(&ctr, &socket, archive)
            .with_context(|| format!("importing image archive {}", archive.display()))?;
    }
    Ok(())
}
