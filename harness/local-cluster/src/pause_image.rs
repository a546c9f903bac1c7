//! The pod sandbox image: the project's static pause program (ci/node/pause/pause.c) as an
//! OCI archive the harness writes, so no registry is ever needed for a pod to start.

use std::path::Path;

use oci_archive::{ArchiveSummary, ImageConfig, Layer, write_archive};

/// The sandbox image's reference (containerd's pinned sandbox image). `localhost/` marks an
/// image that exists only where it was imported.
pub const PAUSE_IMAGE: &str = "localhost/gomicro-conformance/pause:1";

/// Writes the pause image archive to `archive` from `node_bin_dir/pause` (a static program:
/// the layer holds that one file).
pub fn write_pause_archive(node_bin_dir: &Path, archive: &Path) -> anyhow::Result<ArchiveSummary> {
    let mut layer = Layer::new();
    layer.add_program(&node_bin_dir.join("pause"), "/pause")?;
    write_archive(
        archive,
        PAUSE_IMAGE,
        &[layer],
        &ImageConfig {
            entrypoint: vec!["/pause".into()],
            ..ImageConfig::default()
        },
    )
}
