//! `harness images`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::{images, preflight};

#[derive(clap::Args)]
pub(super) struct ImagesArgs {
    /// Profile whose images are written (default: the reference services).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Where the archives go (one `<image>.tar` each).
    #[arg(long, default_value = "target/oci-images")]
    out_dir: PathBuf,
}

impl ImagesArgs {
    pub(super) fn execute(self) -> Result<ExitCode> {
        let profile = preflight::load_profile(&super::profile_or_reference(self.profile))?;
        let local = images::prepare_local(&profile)?;
        for written in images::oci::write_archives(&local, &self.out_dir)? {
            println!(
                "{}  {}  {:.1} MiB  {} ms  {}",
                written.summary.reference,
                written.summary.manifest_digest,
                written.summary.archive_bytes as f64 / (1024.0 * 1024.0),
                written.elapsed.as_millis(),
                written.path.display()
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
