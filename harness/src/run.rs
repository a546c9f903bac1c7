//! `harness run`: cluster → deploy → cases → reports.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cases::{self, Outcome};
use crate::cluster::local::{self, LocalBackend};
use crate::cluster::{BackendKind, Cluster, External, k3s, kubeconfig};
use crate::context::Ctx;
use crate::preflight::{self, UsageError};
use crate::profile::Profile;
use crate::report::{self, ConformanceReport, ReportWriter};
use crate::{deploy, images};

/// Longest wait for a rollout or a registration during deployment.
pub const DEPLOY_DEADLINE: Duration = Duration::from_secs(180);

/// Options of one conformance run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub backend: BackendKind,
    pub profile: PathBuf,
    pub report_dir: PathBuf,
    pub keep_cluster: bool,
    /// Only these case IDs (all when empty).
    pub cases: Vec<String>,
    /// Only the cases of these features (all when empty).
    pub features: Vec<String>,
    /// The `harness` executable (for the local daemon).
    pub harness_exe: PathBuf,
}

/// Starts (or attaches to) a cluster of the requested backend with the profile's images.
pub async fn start_cluster(
    backend: BackendKind,
    profile: &Profile,
    keep: bool,
    harness_exe: &Path,
) -> Result<Cluster> {
    let backend = backend.resolve().await;
    eprintln!("[harness] backend: {}", backend.name());
    let started = Instant::now();
    let cluster = match backend {
        BackendKind::Local => {
            let images = local::prepare_images(profile)?;
            let (local, client) = if keep {
                let list = write_image_list(&images)?;
                LocalBackend::up(harness_exe, &list).await?
            } else {
                LocalBackend::start(images).await?
            };
            Cluster::new(backend, client, Box::new(local)).await?
        }
        BackendKind::K3s => {
            let archives = images::local_archives(profile)?;
            let expected: Vec<String> = profile
                .images
                .iter()
                .filter(|(_, image)| image.local.is_some() || image.archive.is_some())
                .map(|(name, _)| name.clone())
                .collect();
            let (k3s, client) =
                k3s::K3sCluster::start(&archives, &images::docker_builds(profile), &expected)
                    .await?;
            Cluster::new(backend, client, Box::new(k3s)).await?
        }
        BackendKind::Kubeconfig => {
            Cluster::new(backend, kubeconfig::connect().await?, Box::new(External)).await?
        }
        BackendKind::Auto => unreachable!("resolved above"),
    };
    eprintln!(
        "[harness] cluster ready in {:.1} s (Kubernetes {})",
        started.elapsed().as_secs_f64(),
        cluster.kubernetes_version()
    );
    Ok(cluster)
}

/// Where `harness up` leaves the list of image archives for its daemon.
fn image_list_path() -> PathBuf {
    local::default_state_dir().join("image-archives.json")
}

/// Writes the list of image archives where `harness up` and the daemon can share it.
pub fn write_image_list(images: &[PathBuf]) -> Result<PathBuf> {
    let dir = local::default_state_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = image_list_path();
    std::fs::write(&path, serde_json::to_vec_pretty(images)?)?;
    Ok(path)
}

/// `harness down`: stops the `harness up` cluster, then removes the files the harness itself
/// left in the state directory, and the directory once empty.
pub async fn stop_local_daemon() -> Result<()> {
    let dir = local::default_state_dir();
    local_cluster::daemon::down(&dir).await?;
    match std::fs::remove_file(image_list_path()) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).context("cannot remove the image archive list"),
    }
    // Only succeeds when empty (kept logs stay, with their directory).
    let _ = std::fs::remove_dir(&dir);
    Ok(())
}

/// What `run` checks before any cluster work: the profile and its manifests, the case
/// selection, the options and the report directory. Returns the profile and the case IDs
/// to run (empty: all).
pub fn check_options(options: &RunOptions) -> Result<(Profile, Vec<String>), UsageError> {
    let profile = preflight::load_profile(&options.profile)?;
    let selection = preflight::select_cases(&profile, &options.cases, &options.features)?;
    preflight::check_backend_options(options.backend, options.keep_cluster)?;
    preflight::check_writable_dir(&options.report_dir, "--report-dir")?;
    Ok((profile, selection))
}

/// Runs the conformance suite and writes the reports; the report says whether it passed.
/// Bad options are refused with a [`UsageError`] before a cluster starts.
pub async fn run(options: &RunOptions) -> Result<ConformanceReport> {
    let started = Instant::now();
    let (profile, selection) = check_options(options)?;
    let cluster = start_cluster(
        options.backend,
        &profile,
        options.keep_cluster,
        &options.harness_exe,
    )
    .await?;
    let backend = cluster.backend().name();
    let version = cluster.kubernetes_version().to_string();
    let client = cluster.client();
    let mut ctx = Ctx::new(cluster, profile.clone())?;
    // Watching from before the deployment, so a crash while it rolls out is seen too.
    if let Err(error) = ctx.watch_stability("deployment").await {
        eprintln!("[stability] cannot watch the implementation's pods: {error:#}");
    }
    let deploy_started = Instant::now();
    let deployed = deploy::deploy(&client, &profile, DEPLOY_DEADLINE).await;
    eprintln!(
        "[harness] deploy step took {:.1} s",
        deploy_started.elapsed().as_secs_f64()
    );
    // Crashes before the first case are named at run level only.
    ctx.unexpected_terminations().await;
    ctx.set_stability_phase("between cases", false);
    let mut results = match &deployed {
        Ok(()) => cases::run_all(&ctx, &selection).await,
        Err(error) => {
            eprintln!("[harness] deployment failed: {error:#}");
            failed_all(&ctx, &selection, &format!("deployment failed: {error:#}"))
        }
    };
    ctx.set_stability_phase("after the last case", false);
    ctx.unexpected_terminations().await;
    let stability = ctx.stability();
    ctx.stop_stability_watch();
    // A termination reported after its case ended still fails that case.
    for result in &mut results {
        let before = result.outcome.clone();
        cases::fail_for_crashes(result, &stability.unexpected);
        if result.outcome != before {
            eprintln!(
                "[case] {} FAILED after all: {}",
                result.id,
                result.reason.as_deref().unwrap_or_default()
            );
        }
    }
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let report =
        report::build(&profile, backend, &version, &results, date).with_stability(stability);
    let writer = ReportWriter::new(&options.report_dir, ctx.secrets.redactor());
    report::write_all(&report, &writer)?;
    let failed = results.iter().any(|r| r.outcome == Outcome::Failed)
        || !report.stability.record.unexpected.is_empty();
    if failed
        && let Err(error) = report::diagnostics::collect(&client, &profile.namespace, &writer).await
    {
        eprintln!("[report] could not collect diagnostics: {error:#}");
    }
    eprintln!(
        "[harness] {:?}: {} passed, {} failed, {} skipped in {:.1} s; reports in {}",
        report.result,
        report.statistics.passed,
        report.statistics.failed,
        report.statistics.skipped,
        started.elapsed().as_secs_f64(),
        options.report_dir.display()
    );
    ctx.cluster.shutdown(options.keep_cluster).await?;
    Ok(report)
}

fn failed_all(ctx: &Ctx, only: &[String], reason: &str) -> Vec<cases::CaseResult> {
    cases::all()
        .iter()
        .map(|case| {
            let selected = only.is_empty() || only.iter().any(|id| id == case.id);
            let outcome = if selected && ctx.profile.supports(case.feature) {
                Outcome::Failed
            } else {
                Outcome::Skipped
            };
            cases::CaseResult::unrun(case, outcome, Some(reason.to_string()))
        })
        .collect()
}
