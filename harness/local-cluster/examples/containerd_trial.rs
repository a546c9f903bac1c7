//! Development aid for the real-node work (issue 10): starts the private containerd with the
//! pause image imported (and any archives given), prints its socket, and stops it, removing
//! its directory, when stdin closes.
//!
//!     cargo run -p local-cluster --example containerd_trial -- /run/gmc-trial/containerd [archive.tar ...]

use std::io::Read as _;
use std::path::PathBuf;

use local_cluster::{Containerd, PAUSE_IMAGE, ensure_node_binaries, write_pause_archive};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(PathBuf::from);
    let dir = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: containerd_trial DIR [archive.tar ...]"))?;
    let bin = ensure_node_binaries()?;
    let containerd = Containerd::start(&dir, &bin, PAUSE_IMAGE)?;
    let pause = dir.join("pause.tar");
    write_pause_archive(&bin, &pause)?;
    for archive in std::iter::once(pause).chain(args) {
        containerd.import(&archive)?;
    }
    println!("{}", containerd.paths().socket().display());
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    containerd.stop()
}
