//! A private containerd for the node: root, state, sockets, shim sockets and runc state under
//! one directory; every registry routed to a closed loopback port (a missing image fails at
//! once, with no DNS lookup and no traffic off the machine); the project's pause image as
//! the sandbox image; `restrict_oom_score_adj` (this machine kind lacks CAP_SYS_RESOURCE).

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::cleanup::unmount_below;
use crate::files::tail;

/// The containerd namespace the kubelet's CRI uses; images are imported into it.
pub const CRI_NAMESPACE: &str = "k8s.io";
/// Where every registry host is routed: a loopback port nothing listens on.
pub const CLOSED_REGISTRY: &str = "http://127.0.0.1:1";
/// How long containerd gets to answer on its socket after start.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long containerd gets to exit after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest shim socket directory containerd accepts (a Unix socket path is at most 108 bytes).
pub(crate) const MAX_SHIM_SOCKET_DIR: usize = 42;

/// Paths of one private containerd, all below `dir`.
#[derive(Debug, Clone)]
pub struct ContainerdPaths {
    dir: PathBuf,
    shim_sockets: PathBuf,
}

impl ContainerdPaths {
    /// The layout below `dir` (shim sockets in `dir/s`).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            shim_sockets: dir.join("s"),
        }
    }

    /// The same with the shim sockets in `shim_sockets` (containerd refuses a directory
    /// longer than [`MAX_SHIM_SOCKET_DIR`]).
    pub fn with_shim_sockets(mut self, shim_sockets: &Path) -> Self {
        self.shim_sockets = shim_sockets.to_path_buf();
        self
    }
    /// The gRPC socket (the kubelet's `containerRuntimeEndpoint`, ctr's `--address`).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }
    /// The CNI config directory containerd reads.
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.dir.join("cni/net.d")
    }
    /// The config file (containerd's `--config`).
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.toml")
    }
    fn certs_dir(&self) -> PathBuf {
        self.dir.join("certs.d")
    }
    fn log(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }

    /// Creates the directory and writes the config and the registry hosts files: every registry
    /// routed to the closed port but `pull_registries`, loopback registries (`HOST:PORT`) the
    /// run itself serves, which containerd may pull from over plain HTTP.
    pub fn prepare(
        &self,
        node_bin_dir: &Path,
        sandbox_image: &str,
        pull_registries: &[String],
    ) -> anyhow::Result<()> {
        let shim_sockets = self.shim_sockets.as_os_str().len();
        if shim_sockets > MAX_SHIM_SOCKET_DIR {
            bail!(
                "containerd's shim socket directory {} is {shim_sockets} bytes long; containerd \
                 accepts at most {MAX_SHIM_SOCKET_DIR} (choose a shorter state dir)",
                self.shim_sockets.display()
            );
        }
        std::fs::create_dir_all(self.certs_dir().join("_default"))
            .and_then(|()| std::fs::create_dir_all(self.cni_conf_dir()))
            .with_context(|| format!("creating {}", self.dir.display()))?;
        std::fs::write(
            self.certs_dir().join("_default/hosts.toml"),
            default_registry_hosts(),
        )?;
        for registry in pull_registries {
            check_loopback_registry(registry)?;
            let dir = self.certs_dir().join(registry);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            std::fs::write(dir.join("hosts.toml"), loopback_registry_hosts(registry))?;
        }
        std::fs::write(
            self.config(),
            render_config(self, node_bin_dir, sandbox_image),
        )?;
        Ok(())
    }
}

/// Runs `<ctr> --address <socket> <args>` and returns its stdout; an error carries stderr.
pub fn ctr(ctr: &Path, socket: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(ctr)
        .arg("--address")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", ctr.display()))?;
    if !output.status.success() {
        bail!(
            "ctr {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Imports an OCI (or `docker save`) archive into the CRI namespace and unpacks it.
pub(crate) fn import(ctr_bin: &Path, socket: &Path, archive: &Path) -> anyhow::Result<()> {
    let archive = archive.to_str().context("archive path is not UTF-8")?;
    ctr(
        ctr_bin,
        socket,
        &["-n", CRI_NAMESPACE, "images", "import", "--local", archive],
    )
    .map(drop)
}

/// containerd's configuration (format version 4, as `containerd config default` of the
/// pinned v2 writes it) for `paths`, with runc and the CNI plugins from `node_bin_dir`.
pub(crate) fn render_config(
    paths: &ContainerdPaths,
    node_bin_dir: &Path,
    sandbox_image: &str,
) -> String {
    let dir = paths.dir.display();
    let shim_sockets = paths.shim_sockets.display();
    let bin = node_bin_dir.display();
    let socket = paths.socket().display().to_string();
    let certs = paths.certs_dir().display().to_string();
    let cni_conf = paths.cni_conf_dir().display().to_string();
    format!(
        r#"version = 4
root = '{dir}/root'
state = '{dir}/state'
imports = []
# Plugins that would touch host paths (/opt/containerd, /var/run/nri) or need what we do not use.
disabled_plugins = [
  'io.containerd.internal.v1.opt',
  'io.containerd.nri.v1.nri',
  'io.containerd.snapshotter.v1.blockfile',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.erofs',
  'io.containerd.snapshotter.v1.zfs',
]

[plugins.'io.containerd.server.v1.grpc']
  address = '{socket}'
[plugins.'io.containerd.server.v1.ttrpc']
  address = '{socket}.ttrpc'
[plugins.'io.containerd.shim.v1.manager']
  socket_dir = '{shim_sockets}'
[plugins.'io.containerd.transfer.v1.local']
  config_path = '{certs}'

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '{sandbox_image}'
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = '{certs}'

[plugins.'io.containerd.cri.v1.runtime']
  disable_apparmor = true
  # Without CAP_SYS_RESOURCE runc cannot lower oom_score_adj and every sandbox fails.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = '{bin}/runc'
        Root = '{dir}/runc'
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['{bin}/cni']
    conf_dir = '{cni_conf}'

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
"#
    )
}

/// `certs.d/_default/hosts.toml`: every registry host resolves to [`CLOSED_REGISTRY`].
pub(crate) fn default_registry_hosts() -> String {
    format!(
        "# Every registry: a closed loopback port, so nothing is pulled from off the machine.\n\
         server = \"{CLOSED_REGISTRY}\"\n\n[host.\"{CLOSED_REGISTRY}\"]\n  \
         capabilities = [\"pull\", \"resolve\"]\n"
    )
}

/// Refuses a registry that is not `127.x.y.z:PORT` (or `localhost:PORT`): the node may pull
/// only from a registry on this machine's loopback, never from off the machine.
pub fn check_loopback_registry(registry: &str) -> anyhow::Result<()> {
    let (host, port) = registry
        .rsplit_once(':')
        .with_context(|| format!("registry {registry:?}: expected HOST:PORT on loopback"))?;
    let loopback = host == "localhost"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback || port.parse::<u16>().is_err() {
        anyhow::bail!(
            "registry {registry:?}: the node pulls only from a registry on loopback (127.0.0.1:PORT)"
        );
    }
    Ok(())
}

/// `certs.d/<registry>/hosts.toml` for a loopback registry served over plain HTTP.
pub(crate) fn loopback_registry_hosts(registry: &str) -> String {
    format!(
        "# A registry on loopback that the run serves: pulled from over plain HTTP.\n\
         server = \"http://{registry}\"\n\n[host.\"http://{registry}\"]\n  \
         capabilities = [\"pull\", \"resolve\"]\n"
    )
}

/// A running private containerd (stopped, and its directory removed, by [`Containerd::stop`]
/// or on drop).
pub struct Containerd {
    child: Option<Child>,
    paths: ContainerdPaths,
    ctr: PathBuf,
}

impl Containerd {
    /// Writes the config below `dir` (created; it must not hold a live containerd) and
    /// starts `node_bin_dir/containerd` in its own process group; returns once it answers.
    pub fn start(dir: &Path, node_bin_dir: &Path, sandbox_image: &str) -> anyhow::Result<Self> {
        let paths = ContainerdPaths::new(dir);
        paths.prepare(node_bin_dir, sandbox_image, &[])?;
        let log = std::fs::File::create(paths.log())
            .with_context(|| format!("creating {}", paths.log().display()))?;
        let child = Command::new(node_bin_dir.join("containerd"))
            .arg("--config")
            .arg(paths.config())
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}/containerd", node_bin_dir.display()))?;
        let mut containerd = Self {
            child: Some(child),
            paths,
            ctr: node_bin_dir.join("ctr"),
        };
        containerd.wait_answering()?;
        Ok(containerd)
    }

    fn wait_answering(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "containerd exited at start ({status}); its log ends:\n{}",
                    tail(&self.paths.log(), 20)
                );
            }
            if self.paths.socket().exists() && self.ctr(&["version"]).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "containerd did not answer on {} within {START_TIMEOUT:?}; its log ends:\n{}",
                    self.paths.socket().display(),
                    tail(&self.paths.log(), 20)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The paths of this containerd.
    pub fn paths(&self) -> &ContainerdPaths {
        &self.paths
    }

    /// Runs `ctr --address <socket> <args>` and returns its stdout; an error carries stderr.
    pub fn ctr(&self, args: &[&str]) -> anyhow::Result<String> {
        ctr(&self.ctr, &self.paths.socket(), args)
    }

    /// Imports an OCI (or `docker save`) archive into the CRI namespace and unpacks it.
    pub fn import(&self, archive: &Path) -> anyhow::Result<()> {
        import(&self.ctr, &self.paths.socket(), archive)
    }

    /// Stops containerd (SIGTERM, then SIGKILL after a grace period), unmounts what is left
    /// below its directory and removes the directory.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            let group = Pid::from_raw(child.id() as i32);
            let _ = killpg(group, Signal::SIGTERM);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while child.try_wait()?.is_none() {
                if Instant::now() > deadline {
                    let _ = killpg(group, Signal::SIGKILL);
                    child.wait()?;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        unmount_below(&self.paths.dir)?;
        let _ = std::fs::remove_dir_all(&self.paths.shim_sockets);
        match std::fs::remove_dir_all(&self.paths.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", self.paths.dir.display()))
            }
            _ => Ok(()),
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            eprintln!("stopping containerd: {error:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_everything_private_and_routes_registries_to_loopback() {
        let paths = ContainerdPaths::new(Path::new("/run/gmc/containerd"));
        let config = render_config(
            &paths,
            Path::new("/cache/node/bin"),
            "docker.io/gomicro/pause:1",
        );
        for line in [
            "root = '/run/gmc/containerd/root'",
            "state = '/run/gmc/containerd/state'",
            "address = '/run/gmc/containerd/containerd.sock'",
            "address = '/run/gmc/containerd/containerd.sock.ttrpc'",
            "socket_dir = '/run/gmc/containerd/s'",
            "sandbox = 'docker.io/gomicro/pause:1'",
            "config_path = '/run/gmc/containerd/certs.d'",
            "restrict_oom_score_adj = true",
            "netns_mounts_under_state_dir = true",
            "BinaryName = '/cache/node/bin/runc'",
            "Root = '/run/gmc/containerd/runc'",
            "bin_dirs = ['/cache/node/bin/cni']",
            "conf_dir = '/run/gmc/containerd/cni/net.d'",
            "imports = []",
        ] {
            assert!(
                config.lines().any(|l| l.trim() == line),
                "missing {line:?} in\n{config}"
            );
        }
        let short = paths.clone().with_shim_sockets(Path::new(
            "/run/gmc/a-directory-name-far-too-long-for-shim-sockets",
        ));
        let error = short.prepare(Path::new("/bin"), "x", &[]).unwrap_err();
        assert!(format!("{error:#}").contains("at most 42"), "{error:#}");
        assert!(check_loopback_registry("127.0.0.1:5000").is_ok());
        for refused in ["10.0.0.1:5000", "registry.example:443", "127.0.0.1"] {
            assert!(check_loopback_registry(refused).is_err(), "{refused}");
        }
        let allowed = loopback_registry_hosts("127.0.0.1:5000");
        assert!(
            allowed.contains("server = \"http://127.0.0.1:5000\""),
            "{allowed}"
        );
        let hosts = default_registry_hosts();
        assert!(hosts.contains("server = \"http://127.0.0.1:1\""), "{hosts}");
    }
}
