//! Dropping a [`LocalCluster`] without `stop()` (the panic path) still tears it down.
//!
//!     cargo test -p local-cluster --test drop_cleanup -- --ignored --nocapture
//!
//! Skips visibly when not root or the binaries are missing (see tests/cluster.rs).

mod common;

use std::path::Path;

use common::{HostBefore, assert_nothing_left, should_run};
use local_cluster::LocalCluster;

const STATE_DIR: &str = "/run/gomicro-conformance-drop-test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and the built control plane; see the module docs"]
async fn dropping_a_running_cluster_removes_everything() {
    if !should_run("dropping_a_running_cluster_removes_everything") {
        return;
    }
    let image_dir = tempfile::tempdir().unwrap();
    let before = HostBefore::capture();
    let spec = common::spec(STATE_DIR, image_dir.path());
    let cluster = LocalCluster::start(spec).await.unwrap();
    drop(cluster);
    assert_nothing_left(Path::new(STATE_DIR), &before);
}
