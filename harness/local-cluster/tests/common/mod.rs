//! Shared helpers of the real-cluster tests: skip logic, a small test image, kubectl,
//! and checks that a cluster left nothing behind.
#![allow(dead_code)] // each test binary uses a subset

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use local_cluster::sysctls::{NODE_SYSCTLS, RecordedSysctls};
use oci_archive::{ImageConfig, Layer, write_archive};

/// Image name of the test image.
pub const IMAGE: &str = "gmc.test/sleeper:1";
/// Generous deadline for cluster-side waits.
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// True when the test should run; prints why it is skipped otherwise. With
/// GOMICRO_LOCAL_E2E_REQUIRED set, a skip is a failure.
pub fn should_run(test: &str) -> bool {
    let reason = if !nix::unistd::geteuid().is_root() {
        Some("not running as root".to_string())
    } else if let Err(error) = local_cluster::ensure_node_binaries() {
        Some(format!("{error:#}"))
    } else {
        let bin_dir = std::env::var_os(local_cluster::BIN_DIR_ENV)
            .map(PathBuf::from)
            .or_else(|| local_cluster::cached_bin_dir(local_cluster::versions::default_release()));
        match bin_dir {
            Some(dir) if local_cluster::check_binaries(&dir).is_ok() => None,
            _ => Some(format!(
                "control-plane binaries not built (run {})",
                local_cluster::build_script().display()
            )),
        }
    };
    let Some(reason) = reason else {
        return true;
    };
    assert!(
        std::env::var_os("GOMICRO_LOCAL_E2E_REQUIRED").is_none(),
        "GOMICRO_LOCAL_E2E_REQUIRED is set but: {reason}"
    );
    eprintln!("SKIPPED {test}: {reason}");
    false
}

/// Writes the test image's archive to `dir` and returns its path: `/bin/sh /app/run.sh`
/// printing a greeting, then `exec sleep 3600`; with cat, ls and perl (whose built-in socket
/// calls serve and dial TCP without any module) for exec and port-forward checks.
pub fn sleeper_image(dir: &Path) -> PathBuf {
    let app = dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("run.sh"),
        "echo \"hello from $(cat /etc/hostname)\"\nexec sleep 3600\n",
    )
    .unwrap();
    let mut layer = Layer::new();
    for program in [
        "/bin/sh",
        "/bin/sleep",
        "/bin/cat",
        "/bin/ls",
        "/usr/bin/perl",
    ] {
        layer.add_program(Path::new(program), program).unwrap();
    }
    layer.add_dir(&app, "/app").unwrap();
    let archive = dir.join("sleeper.tar");
    write_archive(
        &archive,
        IMAGE,
        &[layer],
        &ImageConfig {
            entrypoint: vec!["/bin/sh".into(), "/app/run.sh".into()],
            ..ImageConfig::default()
        },
    )
    .unwrap();
    archive
}

/// The spec of a test cluster in `state_dir` with the test image (its archive in `image_dir`).
pub fn spec(state_dir: &str, image_dir: &Path) -> local_cluster::ClusterSpec {
    local_cluster::ClusterSpec {
        bin_dir: local_cluster::ensure_binaries(local_cluster::versions::default_release())
            .unwrap(),
        node_bin_dir: local_cluster::ensure_node_binaries().unwrap(),
        state_dir: state_dir.into(),
        images: vec![sleeper_image(image_dir)],
        pull_registries: Vec::new(),
    }
}

/// A one-replica Deployment `sleeper` of [`IMAGE`], as JSON.
pub fn sleeper_deployment() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "sleeper", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "sleeper"}},
            "template": {
                "metadata": {"labels": {"app": "sleeper"}},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [{"name": "main", "image": IMAGE}]
                }
            }
        }
    })
}

/// Runs kubectl with a scrubbed env; (success, stdout+stderr). Its discovery cache goes under
/// cargo's test scratch directory (without HOME kubectl would write `.kube/` into the crate).
pub fn kubectl(kubectl: &Path, kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let cache_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kubectl-cache");
    let output = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(&cache_dir)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Retries kubectl until its output contains `expected`.
pub async fn kubectl_until(kubectl_bin: &Path, kubeconfig: &Path, args: &[&str], expected: &str) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (ok, text) = kubectl(kubectl_bin, kubeconfig, args);
        if ok && text.contains(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`kubectl {}` never showed {expected:?}; last output: {text}",
            args.join(" ")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// What the host looks like before a cluster starts, to compare with after it stopped.
pub struct HostBefore {
    netns: BTreeSet<String>,
    links: BTreeSet<String>,
    sysctls: BTreeMap<String, String>,
    host_dirs: BTreeMap<&'static str, bool>,
    /// Processes running the test image's command already (another run's leftovers).
    sleepers: BTreeSet<String>,
}

/// The test image's long-running command, as its processes show it.
const SLEEPER_COMMAND: &str = "sleep 3600";

/// Host directories the kubelet and libcni write whatever their configuration says.
const HOST_DIRS: [&str; 4] = [
    "/var/lib/cni",
    "/var/lib/kubelet",
    "/var/log/containers",
    "/run/containerd",
];

fn sysctl_values() -> BTreeMap<String, String> {
    NODE_SYSCTLS
        .iter()
        .map(|name| {
            let path = format!("/proc/sys/{}", name.replace('.', "/"));
            let value = std::fs::read_to_string(path).unwrap().trim().to_string();
            (name.to_string(), value)
        })
        .collect()
}

impl HostBefore {
    /// Records the host now.
    pub fn capture() -> Self {
        // The type is the product's own record; reading it here as well checks it parses.
        RecordedSysctls::record(Path::new("/proc/sys"), &NODE_SYSCTLS).unwrap();
        Self {
            netns: netns_names(),
            links: all_links(),
            sysctls: sysctl_values(),
            host_dirs: HOST_DIRS
                .into_iter()
                .map(|d| (d, Path::new(d).exists()))
                .collect(),
            sleepers: live_processes_mentioning(SLEEPER_COMMAND)
                .into_iter()
                .collect(),
        }
    }
}

/// `gmc-*` network namespaces.
pub fn netns_names() -> BTreeSet<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("gmc-"))
        .map(str::to_string)
        .collect()
}

fn all_links() -> BTreeSet<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_string())
        .collect()
}

fn kubepods_cgroups() -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|hierarchy| hierarchy.path().join("kubepods"))
        .chain([PathBuf::from("/sys/fs/cgroup/kubepods")])
        .filter(|cgroup| cgroup.exists())
        .collect()
}

fn nft_tables() -> String {
    Command::new("nft")
        .args(["list", "tables"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn container_log_links_into(state_dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir("/var/log/containers")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| std::fs::read_link(p).is_ok_and(|t| t.starts_with(state_dir)))
        .collect()
}

fn mounts_below(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .map(str::to_string)
        .collect()
}

fn live_processes_mentioning(text: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let state = stat[stat.rfind(')')? + 1..]
                .split_whitespace()
                .next()?
                .to_string();
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (pid != std::process::id() && state != "Z" && cmdline.contains(text))
                .then(|| format!("{pid}: {cmdline}"))
        })
        .collect()
}

/// Asserts that no trace of a cluster in `state_dir` remains, compared with `before`: links
/// (bridge, veths), netns, mounts, component, shim and container processes, kubepods cgroups,
/// nft tables, routes, sysctls, host files and state files. Prints what it checked.
pub fn assert_nothing_left(state_dir: &Path, before: &HostBefore) {
    let new_links: Vec<String> = all_links().difference(&before.links).cloned().collect();
    assert!(new_links.is_empty(), "links remain: {new_links:?}");
    let leaked: Vec<String> = netns_names().difference(&before.netns).cloned().collect();
    assert!(leaked.is_empty(), "gmc-* netns remain: {leaked:?}");
    assert_eq!(
        mounts_below(state_dir),
        Vec::<String>::new(),
        "mounts remain"
    );
    let state = state_dir.display().to_string();
    assert_eq!(
        live_processes_mentioning(&state),
        Vec::<String>::new(),
        "component or shim processes remain"
    );
    let sleepers: Vec<String> = live_processes_mentioning(SLEEPER_COMMAND)
        .into_iter()
        .filter(|p| !before.sleepers.contains(p))
        .collect();
    assert_eq!(sleepers, Vec::<String>::new(), "container processes remain");
    assert_eq!(kubepods_cgroups(), Vec::<PathBuf>::new(), "cgroups remain");
    let tables = nft_tables();
    assert!(
        !tables.contains("kube-proxy"),
        "nft tables remain: {tables}"
    );
    let routes = Command::new("ip")
        .args(["route", "show", "type", "unreachable"])
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout);
    assert!(
        !routes.contains("10.244.0.0/16") && !routes.contains("10.96.0.0/16"),
        "unreachable routes remain: {routes}"
    );
    assert_eq!(sysctl_values(), before.sysctls, "sysctls changed");
    for (dir, existed) in &before.host_dirs {
        if !existed {
            assert!(!Path::new(dir).exists(), "{dir} was created and remains");
        }
    }
    let state_text = format!("\"netns\":\"{}/", state_dir.display());
    let cached: Vec<PathBuf> = std::fs::read_dir("/var/lib/cni/results")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains(&state_text)))
        .collect();
    assert_eq!(
        cached,
        Vec::<PathBuf>::new(),
        "CNI result cache entries remain"
    );
    assert_eq!(
        container_log_links_into(state_dir),
        Vec::<PathBuf>::new(),
        "/var/log/containers links remain"
    );
    for dir in ["cluster", "kubelet", "node", "s"] {
        assert!(
            !state_dir.join(dir).exists(),
            "{dir}/ remains in the state dir"
        );
    }
    assert!(
        !state_dir.join("sysctls.json").exists(),
        "sysctls.json remains"
    );
    eprintln!(
        "[e2e] nothing left: no new links or netns, no mounts below {state}, no component, shim \
         or container processes, no kubepods cgroups, no kube-proxy nft tables, no CNI cache entries, no unreachable \
         routes, sysctls {:?} as before, host dirs {:?} as before, no state files",
        before.sysctls, before.host_dirs
    );
}
