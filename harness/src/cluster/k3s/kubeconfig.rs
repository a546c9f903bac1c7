//! The k3s admin kubeconfig: read out of the container, pointed at the mapped API port on
//! 127.0.0.1, written to a private temporary file for humans, and turned into a client.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kube::config::Kubeconfig;

use super::short_id;

/// The API server as reached from this machine: always loopback (the serving certificate
/// covers 127.0.0.1, and the harness sends traffic nowhere else).
pub(super) fn api_server_url(port: u16) -> String {
    format!("https://127.0.0.1:{port}")
}

/// Replaces the `server:` of every cluster in a kubeconfig with `server_url`, keeping the rest
/// of the text as it is (so the result is also the file humans use), and checks the result.
pub(super) fn rewrite_kubeconfig_server(yaml: &str, server_url: &str) -> Result<String> {
    let mut rewritten = String::with_capacity(yaml.len());
    let mut replaced = 0;
    for line in yaml.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        if line.trim_start().starts_with("server:") {
            let _ = writeln!(rewritten, "{indent}server: {server_url}");
            replaced += 1;
        } else {
            let _ = writeln!(rewritten, "{line}");
        }
    }
    if replaced == 0 {
        bail!("k3s kubeconfig has no `server:` entry to rewrite");
    }
    let parsed = Kubeconfig::from_yaml(&rewritten)
        .context("k3s kubeconfig does not parse after rewriting")?;
    let servers: Vec<Option<&str>> = parsed
        .clusters
        .iter()
        .map(|c| c.cluster.as_ref().and_then(|c| c.server.as_deref()))
        .collect();
    if servers.is_empty() || servers.iter().any(|server| *server != Some(server_url)) {
        bail!("k3s kubeconfig: rewriting the server gave {servers:?}, expected {server_url}");
    }
    Ok(rewritten)
}

/// A per-container path in the temporary directory.
pub(super) fn temp_path(container_id: &str, extension: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "gomicro-conformance-k3s-{}.{extension}",
        short_id(container_id)
    ))
}

/// Writes a file readable only by its owner (it holds the cluster's admin key).
pub(super) fn write_private_file(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A file removed when dropped.
pub(super) struct TempFile(pub(super) PathBuf);

impl TempFile {
    /// Leaves the file in place and returns its path.
    pub(super) fn keep(self) -> PathBuf {
        let this = std::mem::ManuallyDrop::new(self);
        this.0.clone()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K3S_KUBECONFIG: &str = "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Y2E=
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
";

    #[test]
    fn kubeconfig_server_points_at_the_mapped_port() {
        let url = api_server_url(32771);
        let rewritten = rewrite_kubeconfig_server(K3S_KUBECONFIG, &url).unwrap();
        assert!(
            rewritten.contains("    server: https://127.0.0.1:32771\n"),
            "{rewritten}"
        );
        assert!(!rewritten.contains("6443"), "{rewritten}");
        let parsed = Kubeconfig::from_yaml(&rewritten).unwrap();
        assert_eq!(
            parsed.clusters[0]
                .cluster
                .as_ref()
                .unwrap()
                .server
                .as_deref(),
            Some(url.as_str())
        );
        assert_eq!(parsed.current_context.as_deref(), Some("default"));
        // Everything but the server line is kept.
        assert_eq!(rewritten.replace("32771", "6443"), K3S_KUBECONFIG);
    }

    #[test]
    fn kubeconfig_without_server_is_rejected() {
        let text = K3S_KUBECONFIG.replace("    server: https://127.0.0.1:6443\n", "");
        let err = rewrite_kubeconfig_server(&text, "https://127.0.0.1:1").unwrap_err();
        assert!(format!("{err:#}").contains("no `server:`"), "{err:#}");
    }
}
