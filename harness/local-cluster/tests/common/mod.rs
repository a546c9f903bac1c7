//! Shared helpers of the real-cluster tests: skip logic, a trivial local image, kubectl,
//! and checks that a cluster left nothing behind.
#![allow(dead_code)] // each test binary uses a subset

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use local_cluster::{ImageMap, LocalImage};

/// Image name of the trivial test image.
pub const IMAGE: &str = "gmc.test/sleeper:1";
/// Generous deadline for cluster-side waits.
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// True when the test should run; prints why it is skipped otherwise. With
/// GOMICRO_LOCAL_E2E_REQUIRED set, a skip is a failure.
pub fn should_run(test: &str) -> bool {
    let reason = if !nix::unistd::geteuid().is_root() {
        Some("not running as root".to_string())
    } else {
        let bin_dir = std::env::var_os(local_cluster::BIN_DIR_ENV)
            .map(PathBuf::from)
            .or_else(local_cluster::cached_bin_dir);
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

/// A local image: `/bin/sh /app/run.sh` printing a greeting, then `exec sleep 3600`.
pub fn sleeper_image(dir: &Path) -> ImageMap {
    std::fs::write(
        dir.join("run.sh"),
        "echo \"hello from $HOSTNAME\"\nexec sleep 3600\n",
    )
    .unwrap();
    let mut images = ImageMap::new();
    images.insert(
        IMAGE.to_string(),
        LocalImage {
            root: dir.to_path_buf(),
            mount_path: "/app".into(),
            entrypoint: vec!["/bin/sh".into(), "/app/run.sh".into()],
            working_dir: None,
            env: Default::default(),
        },
    );
    images
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

fn gmc_links() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_string())
        .filter(|name| name.starts_with("gmc"))
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

/// Asserts that no trace of a cluster in `state_dir` remains: links, new netns (compared with
/// `netns_before`), mounts, component and pod processes, routes, state files.
pub fn assert_nothing_left(state_dir: &Path, netns_before: &BTreeSet<String>) {
    assert_eq!(gmc_links(), Vec::<String>::new(), "gmc* links remain");
    let leaked: Vec<String> = netns_names().difference(netns_before).cloned().collect();
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
        "component processes remain"
    );
    assert_eq!(
        live_processes_mentioning("sleep 3600"),
        Vec::<String>::new(),
        "pod processes remain"
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
    assert!(!state_dir.join("cluster").exists(), "state files remain");
    assert!(!state_dir.join("kubelet").exists(), "kubelet files remain");
}
