//! Daemon mode end to end: `up` (detached daemon), idempotent `up`, a crashed daemon
//! (SIGKILL) leaving a running pod behind, and `down` cleaning everything up.
//!
//!     cargo test -p local-cluster --test daemon -- --ignored --nocapture
//!
//! Skips visibly when not root or the binaries are missing (see tests/cluster.rs).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{HostBefore, assert_nothing_left, kubectl, kubectl_until, should_run};
use local_cluster::daemon;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const STATE_DIR: &str = "/run/gomicro-conformance-daemon-test";

fn serve_args(images: &Path) -> Vec<String> {
    ["serve", "--state-dir", STATE_DIR, "--images"]
        .into_iter()
        .map(str::to_string)
        .chain([images.display().to_string()])
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the built control plane; see the module docs"]
async fn up_is_idempotent_and_down_cleans_up_after_a_crashed_daemon() {
    if !should_run("up_is_idempotent_and_down_cleans_up_after_a_crashed_daemon") {
        return;
    }
    let state_dir = Path::new(STATE_DIR);
    let exe = Path::new(env!("CARGO_BIN_EXE_gmc-local-cluster"));
    let image_dir = tempfile::tempdir().unwrap();
    let images_file = image_dir.path().join("images.json");
    std::fs::write(
        &images_file,
        serde_json::to_string(&[common::sleeper_image(image_dir.path())]).unwrap(),
    )
    .unwrap();
    daemon::down(state_dir).await.unwrap();
    let before = HostBefore::capture();

    let info = daemon::up(state_dir, exe, &serve_args(&images_file))
        .await
        .unwrap();
    assert_eq!(daemon::status(state_dir), Some(info.clone()));
    let again = daemon::up(state_dir, exe, &serve_args(&images_file))
        .await
        .unwrap();
    assert_eq!(
        again.pid, info.pid,
        "a second up reuses the running cluster"
    );

    let manifest = image_dir.path().join("deployment.json");
    std::fs::write(&manifest, common::sleeper_deployment().to_string()).unwrap();
    let (ok, out) = kubectl(
        &info.kubectl,
        &info.kubeconfig,
        &["apply", "-f", &manifest.display().to_string()],
    );
    assert!(ok, "{out}");
    kubectl_until(
        &info.kubectl,
        &info.kubeconfig,
        &[
            "get",
            "pods",
            "-l",
            "app=sleeper",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ],
        "Running",
    )
    .await;

    // Crash: the daemon dies without stopping anything.
    kill(Pid::from_raw(info.pid as i32), Signal::SIGKILL).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while daemon::status(state_dir).is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "daemon still reported live"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    daemon::down(state_dir).await.unwrap();
    assert_nothing_left(state_dir, &before);
    daemon::down(state_dir)
        .await
        .expect("down is Ok when nothing runs");
}
