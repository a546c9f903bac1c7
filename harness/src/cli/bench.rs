//! `harness bench`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;

use crate::bench::{self, BenchOptions, compare};
use crate::cluster::{BackendKind, provider};
use crate::error::UsageError;
use crate::preflight;
use crate::profile::reference_profile_path;

#[derive(clap::Args)]
pub(super) struct BenchArgs {
    /// Cluster backend.
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendKind,
    /// Profiles to measure, in order (repeatable; default: the reference services).
    #[arg(long = "profile")]
    profiles: Vec<PathBuf>,
    /// Where the JSON results go.
    #[arg(long, default_value = "reports/bench.json")]
    json: PathBuf,
    /// Concurrent logins during the load phases.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Longest duration of each load phase (e.g. 10s).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    load_duration: Duration,
    /// Most requests of each load phase.
    #[arg(long, default_value_t = 500_000)]
    max_requests: usize,
    /// Scaling rounds (two new pods each) and config reloads measured.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Unrelated Pending pods created for the admin-srv memory/traffic figures (0 skips).
    #[arg(long, default_value_t = 2000)]
    unrelated_pods: usize,
    /// Idle and settle window around the unrelated pods (e.g. 10s).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    window: Duration,
    /// An earlier run's JSON: print each figure's change against it after the table.
    #[arg(long, value_name = "OLD.json")]
    compare: Option<PathBuf>,
    /// With --compare: compare this JSON instead of running the bench (no cluster).
    #[arg(long, value_name = "NEW.json", requires = "compare")]
    against: Option<PathBuf>,
}

impl BenchArgs {
    pub(super) async fn execute(self, harness_exe: PathBuf) -> Result<ExitCode> {
        let load_json =
            |path: &PathBuf| compare::load(path).map_err(|error| UsageError(format!("{error:#}")));
        let compare = self.compare.as_ref().map(load_json).transpose()?;
        if let (Some(old), Some(new)) = (&compare, &self.against) {
            print!("{}", compare::render(old, &load_json(new)?));
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(why) = provider(self.backend).refuses_bench() {
            return Err(UsageError(why.into()).into());
        }
        let profiles = if self.profiles.is_empty() {
            vec![reference_profile_path()]
        } else {
            self.profiles
        };
        for profile in &profiles {
            preflight::load_profile(profile)?;
        }
        if let Some(dir) = self.json.parent().filter(|d| !d.as_os_str().is_empty()) {
            preflight::check_writable_dir(dir, "the directory of --json")?;
        }
        if cfg!(debug_assertions) {
            // A dev build of the harness deploys dev builds of the images (crate::images), and
            // its own load generator is unoptimised too: the figures would not be the product's.
            return Err(UsageError(
                "harness bench measures speed, so it runs from a release build: \
                 `cargo run --release -p harness -- bench` (which builds the images in release too)"
                    .into(),
            )
            .into());
        }
        let options = BenchOptions {
            backend: self.backend,
            profiles,
            json: self.json,
            concurrency: self.concurrency,
            load_duration: self.load_duration,
            max_requests: self.max_requests,
            rounds: self.rounds,
            unrelated_pods: self.unrelated_pods,
            window: self.window,
            harness_exe,
            compare,
        };
        let report = bench::run(&options).await?;
        let unmeasured = report
            .profiles
            .iter()
            .any(|p| p.metrics.cluster_start.is_none());
        Ok(if unmeasured {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }
}
