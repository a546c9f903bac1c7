//! Locating (and if needed building) the upstream control-plane binaries and the node runtime.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use crate::sources::{self, CONTROLPLANE_BUILD, NODE_BUILD};
use crate::versions::Release;

/// Env var naming a directory with prebuilt binaries; skips the build script.
pub const BIN_DIR_ENV: &str = "GOMICRO_CONTROLPLANE_BIN_DIR";

/// Every binary the local backend needs in its bin dir.
pub const REQUIRED_BINARIES: [&str; 7] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "kube-proxy",
];

/// Env var naming a directory with the node runtime; skips `ci/node/build.sh`.
pub const NODE_BIN_DIR_ENV: &str = "GOMICRO_NODE_BIN_DIR";

/// Every binary of the node runtime in its bin dir (runc and the CNI plugins are links).
pub const NODE_BINARIES: [&str; 8] = [
    "containerd",
    "containerd-shim-runc-v2",
    "ctr",
    "pause",
    "runc",
    "cni/bridge",
    "cni/host-local",
    "cni/loopback",
];

/// The control plane's build script: the checkout's, else where its embedded copy is written
/// (see [`crate::sources`]).
pub fn build_script() -> PathBuf {
    sources::scripts_root_path().join(CONTROLPLANE_BUILD)
}

/// The node runtime's build script (containerd, pause; installs runc and the CNI plugins).
pub fn node_build_script() -> PathBuf {
    sources::scripts_root_path().join(NODE_BUILD)
}

/// Runs `ci/node/build.sh` (cached: returns at once once built) and returns its bin dir,
/// checked to hold [`NODE_BINARIES`]. With `GOMICRO_NODE_BIN_DIR` set, checks that instead.
pub fn ensure_node_binaries() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os(NODE_BIN_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => run_build_script(NODE_BUILD, &[], "the node runtime")?,
    };
    check_node_binaries(&dir)?;
    Ok(dir)
}

/// Names of required binaries missing (or not executable) in `bin_dir`.
pub(crate) fn missing_binaries(bin_dir: &Path) -> Vec<&'static str> {
    missing_from(bin_dir, &REQUIRED_BINARIES)
}

fn missing_from(bin_dir: &Path, names: &[&'static str]) -> Vec<&'static str> {
    use std::os::unix::fs::PermissionsExt as _;
    names
        .iter()
        .copied()
        .filter(|name| {
            !std::fs::metadata(bin_dir.join(name))
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
        .collect()
}

/// Checks that `node_bin_dir` holds the node runtime.
pub(crate) fn check_node_binaries(node_bin_dir: &Path) -> anyhow::Result<()> {
    let missing = missing_from(node_bin_dir, &NODE_BINARIES);
    if !missing.is_empty() {
        bail!(
            "node runtime missing in {}: {} (build it with {})",
            node_bin_dir.display(),
            missing.join(", "),
            node_build_script().display()
        );
    }
    Ok(())
}

/// Checks that `bin_dir` holds every required binary.
pub fn check_binaries(bin_dir: &Path) -> anyhow::Result<()> {
    let missing = missing_binaries(bin_dir);
    if !missing.is_empty() {
        bail!(
            "control-plane binaries missing in {}: {} (build them with {})",
            bin_dir.display(),
            missing.join(", "),
            build_script().display()
        );
    }
    Ok(())
}

/// Runs `ci/controlplane/build.sh` for `release` (progress on stderr; a cold build takes many
/// minutes, cached builds return at once) and returns the bin dir it prints as its last stdout
/// line. With `GOMICRO_CONTROLPLANE_BIN_DIR` set, checks and returns that directory instead.
pub fn ensure_binaries(release: &Release) -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        let dir = PathBuf::from(dir);
        check_binaries(&dir).with_context(|| format!("{BIN_DIR_ENV} is set"))?;
        return Ok(dir);
    }
    let what = format!("the control plane of Kubernetes {}", release.kubernetes);
    let dir = run_build_script(CONTROLPLANE_BUILD, &[&release.minor], &what)?;
    check_binaries(&dir)?;
    Ok(dir)
}

/// Runs a build script (its path in the repository; the embedded copy when there is no
/// checkout) that prints its bin dir as the last stdout line (progress on stderr).
fn run_build_script(relative: &str, args: &[&str], what: &str) -> anyhow::Result<PathBuf> {
    let script = sources::scripts_root()
        .with_context(|| format!("cannot write the build script of {what}"))?
        .join(relative);
    let script = script.as_path();
    let output = Command::new("bash")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running bash {}", script.display()))?;
    match output.status.code() {
        Some(0) => {}
        Some(2) => bail!(
            "the Go toolchain (or gcc) is missing: `bash {}` needs `go` (>= 1.26.6) and gcc on \
             PATH to build {what} (its output is above)",
            script.display()
        ),
        _ => bail!(
            "building {what} failed: `bash {}` exited with {} (its output is above)",
            script.display(),
            output.status
        ),
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    last_line(&stdout)
        .map(PathBuf::from)
        .with_context(|| format!("`bash {}` printed no bin dir", script.display()))
}

/// Where `build.sh` caches the binaries of `release` (whether built or not), computed like the
/// script does: `$GOMICRO_CACHE_DIR` or `$XDG_CACHE_HOME/gomicro-conformance` or
/// `~/.cache/gomicro-conformance`, then `controlplane/kubernetes-<v>_etcd-<v>/bin`.
pub fn cached_bin_dir(release: &Release) -> Option<PathBuf> {
    Some(sources::cache_root()?.join(bin_dir_name(release)))
}

/// Whether `release`'s control plane is built in the cache.
pub fn is_built(release: &Release) -> bool {
    cached_bin_dir(release).is_some_and(|dir| missing_binaries(&dir).is_empty())
}

fn bin_dir_name(release: &Release) -> String {
    format!(
        "controlplane/kubernetes-{}_etcd-{}/bin",
        release.kubernetes, release.etcd
    )
}

fn last_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).rfind(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_dir_name_follows_the_versions() {
        let release = Release {
            minor: "1.35".into(),
            kubernetes: "v1.35.4".into(),
            etcd: "v3.6.16".into(),
            k3s_tag: "v1.35.6-k3s1".into(),
            default: false,
        };
        assert_eq!(
            bin_dir_name(&release),
            "controlplane/kubernetes-v1.35.4_etcd-v3.6.16/bin"
        );
    }

    #[test]
    fn last_line_skips_trailing_blank_lines() {
        assert_eq!(last_line("x\n/bin/dir\n\n"), Some("/bin/dir"));
        assert_eq!(last_line("\n"), None);
    }

    #[test]
    fn missing_binaries_reports_absent_and_non_executable_files() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        for name in REQUIRED_BINARIES {
            std::fs::write(dir.path().join(name), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(
                dir.path().join(name),
                std::fs::Permissions::from_mode(0o755),
            )
            .unwrap();
        }
        assert!(missing_binaries(dir.path()).is_empty());
        std::fs::remove_file(dir.path().join("etcd")).unwrap();
        std::fs::set_permissions(
            dir.path().join("kubectl"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert_eq!(missing_binaries(dir.path()), vec!["etcd", "kubectl"]);
        let err = check_binaries(dir.path()).unwrap_err().to_string();
        assert!(err.contains("etcd, kubectl"), "{err}");
    }

    #[test]
    fn build_script_is_in_the_workspace() {
        assert!(build_script().is_file(), "{}", build_script().display());
        assert!(
            node_build_script().is_file(),
            "{}",
            node_build_script().display()
        );
    }
}
