//! `harness up`, `down`, `kubectl` and the hidden `cluster-daemon` behind `up`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cluster::local::{default_state_dir, stop_daemon};
use crate::cluster::{BackendKind, UpRequest, provider};
use crate::preflight;

#[derive(clap::Args)]
pub(super) struct UpArgs {
    /// Cluster backend; only `local` keeps a cluster running in the background.
    #[arg(long, value_enum, default_value = "local")]
    backend: BackendKind,
    /// Profile whose local images the cluster can run.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// A registry on loopback (`127.0.0.1:PORT`) the node may pull from over plain HTTP
    /// (repeatable); every other registry stays routed to a closed port.
    #[arg(long = "pull-registry", value_name = "HOST:PORT")]
    pull_registries: Vec<String>,
    /// Import no image: the cluster gets them as any cluster would (e.g. `harness run
    /// --backend kubeconfig --registry …` pushes them to a --pull-registry).
    #[arg(long)]
    no_images: bool,
    /// The Kubernetes minor to run (`harness versions` lists them; default: the profile's,
    /// else the newest supported).
    #[arg(long, env = crate::profile::KUBERNETES_VERSION_ENV)]
    kubernetes_version: Option<String>,
}

impl UpArgs {
    pub(super) async fn execute(self, harness_exe: &Path) -> Result<ExitCode> {
        let mut profile = preflight::load_profile(&super::profile_or_reference(self.profile))?;
        if let Some(version) = self.kubernetes_version {
            profile.kubernetes_version =
                Some(preflight::kubernetes_release(&version)?.minor.clone());
        }
        let started = std::time::Instant::now();
        let info = provider(self.backend)
            .up(UpRequest {
                profile: &profile,
                harness_exe,
                pull_registries: self.pull_registries,
                no_images: self.no_images,
            })
            .await?;
        let me = super::invocation(harness_exe);
        println!(
            "local cluster is up in {:.1} s (daemon pid {}, API server {})",
            started.elapsed().as_secs_f64(),
            info.pid,
            info.api_server
        );
        println!("  export KUBECONFIG={}", info.kubeconfig.display());
        println!("  {} get nodes", info.kubectl.display());
        println!("  {me} kubectl -- get pods -A      # the same kubectl, kubeconfig set");
        println!("stop it with:\n  {me} down");
        Ok(ExitCode::SUCCESS)
    }
}

/// `harness down`.
pub(super) async fn down() -> Result<ExitCode> {
    stop_daemon().await?;
    println!("local cluster is down");
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub(super) struct KubectlArgs {
    /// Arguments passed to kubectl as they are.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

impl KubectlArgs {
    /// Replaces this process with kubectl; returns only when that fails.
    pub(super) fn execute(self, harness_exe: &Path) -> Result<ExitCode> {
        use std::os::unix::process::CommandExt;
        let Some(info) = local_cluster::daemon::status(&default_state_dir()) else {
            anyhow::bail!(
                "no local cluster is up; start one with `{} up`",
                super::invocation(harness_exe)
            );
        };
        let error = std::process::Command::new(&info.kubectl)
            .env("KUBECONFIG", &info.kubeconfig)
            .args(self.args)
            .exec();
        Err(anyhow::Error::new(error).context(format!("cannot run {}", info.kubectl.display())))
    }
}

#[derive(clap::Args)]
pub(super) struct DaemonArgs {
    /// A JSON list of the image archives to import.
    #[arg(long)]
    image_archives: PathBuf,
    /// Loopback registries the node may pull from.
    #[arg(long = "pull-registry")]
    pull_registries: Vec<String>,
    /// The supported Kubernetes minor to run (default: the default one).
    #[arg(long)]
    kubernetes_version: Option<String>,
}

impl DaemonArgs {
    pub(super) async fn execute(self) -> Result<ExitCode> {
        let text = std::fs::read(&self.image_archives)
            .with_context(|| format!("cannot read {}", self.image_archives.display()))?;
        let images = serde_json::from_slice(&text)
            .context("the list of image archives is not valid JSON")?;
        let release = match &self.kubernetes_version {
            Some(version) => local_cluster::versions::release(version)?,
            None => local_cluster::versions::default_release(),
        };
        let mut spec = local_cluster::ClusterSpec::with_defaults(images, release)?;
        spec.pull_registries = self.pull_registries;
        local_cluster::daemon::serve(spec).await?;
        Ok(ExitCode::SUCCESS)
    }
}
