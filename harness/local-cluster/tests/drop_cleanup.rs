//! Dropping a [`LocalCluster`] without `stop()` (the panic path) still tears it down.
//!
//!     cargo test -p local-cluster --test drop_cleanup -- --ignored --nocapture
//!
//! Skips visibly when not root or the binaries are missing (see tests/cluster.rs).

mod common;

use std::path::Path;

use common::{assert_nothing_left, netns_names, should_run};
use local_cluster::{ClusterSpec, LocalCluster};

const STATE_DIR: &str = "/run/gomicro-conformance-drop-test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the built control plane; see the module docs"]
async fn dropping_a_running_cluster_removes_everything() {
    if !should_run("dropping_a_running_cluster_removes_everything") {
        return;
    }
    let image_dir = tempfile::tempdir().unwrap();
    let netns_before = netns_names();
    let spec = ClusterSpec {
        bin_dir: local_cluster::ensure_binaries().unwrap(),
        state_dir: STATE_DIR.into(),
        images: common::sleeper_image(image_dir.path()),
    };
    let cluster = LocalCluster::start(spec).await.unwrap();
    drop(cluster);
    assert_nothing_left(Path::new(STATE_DIR), &netns_before);
}
