//! `harness run`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::cluster::BackendKind;
use crate::features::Level;
use crate::images::push::Registry;
use crate::report::ReportResult;
use crate::run::{RunOptions, run, run_matrix};

/// The level a run can be required to reach.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RequiredLevel {
    /// Every Core feature declared, every Core case run and passed.
    Core,
}

#[derive(clap::Args)]
pub(super) struct RunArgs {
    /// Cluster backend.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendKind,
    /// Profile of the implementation under test (default: the reference services).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Where the conformance report, JUnit XML, summary and diagnostics go.
    #[arg(long, default_value = "reports")]
    report_dir: PathBuf,
    /// Leave the cluster running afterwards (local: as a `harness up` daemon).
    #[arg(long)]
    keep_cluster: bool,
    /// Run only these case IDs (repeatable; `harness cases` lists them).
    #[arg(long = "case")]
    cases: Vec<String>,
    /// Run only the cases of these features (repeatable; must be declared by the profile;
    /// with --case, every named case must belong to one of them).
    #[arg(long = "feature")]
    features: Vec<String>,
    /// Succeed only when this level is reached with every one of its cases run: the
    /// conformance claim a third party publishes (exit 1 otherwise).
    #[arg(long, value_enum)]
    require_level: Option<RequiredLevel>,
    /// Push the images (the profile's and the harness's pod image) to this registry and
    /// deploy the pushed references: how images reach a cluster the harness did not start
    /// (HOST[:PORT]/PREFIX; plain HTTP only to a loopback registry).
    #[arg(long, value_name = "HOST[:PORT]/PREFIX")]
    registry: Option<Registry>,
    /// The Kubernetes minor(s) to start (`1.34`, or `1.34,1.37`: the suite once per version,
    /// a report directory each and a table of all in summary.md); `harness versions` lists the
    /// supported ones. Default: the profile's `kubernetesVersion`, else the newest supported.
    /// A kubeconfig cluster must run the one given.
    #[arg(
        long,
        value_delimiter = ',',
        env = crate::profile::KUBERNETES_VERSION_ENV,
        value_name = "MINOR[,MINOR...]"
    )]
    kubernetes_version: Vec<String>,
}

impl RunArgs {
    pub(super) async fn execute(self, harness_exe: PathBuf) -> Result<ExitCode> {
        let mut options = RunOptions {
            backend: self.backend,
            profile: super::profile_or_reference(self.profile),
            report_dir: self.report_dir,
            keep_cluster: self.keep_cluster,
            cases: self.cases,
            features: self.features,
            required_level: self.require_level.map(|RequiredLevel::Core| Level::Core),
            registry: self.registry,
            kubernetes_version: None,
            harness_exe,
        };
        let results: Vec<ReportResult> = match self.kubernetes_version.as_slice() {
            [] | [_] => {
                options.kubernetes_version = self.kubernetes_version.into_iter().next();
                vec![run(&options).await?.result]
            }
            versions => run_matrix(&options, versions)
                .await?
                .into_iter()
                .map(|(_, report)| report.result)
                .collect(),
        };
        // A version the harness could not test outweighs a failure: the run is incomplete.
        Ok(if results.contains(&ReportResult::Error) {
            ExitCode::from(3)
        } else if results.iter().all(|r| *r == ReportResult::Success) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}
