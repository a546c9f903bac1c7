//! `harness run`: cluster → deploy → cases → reports.

use std::path::{Path, PathBuf};
use std::time::Instant;

use std::panic::AssertUnwindSafe;

use anyhow::{Context, Result};
use futures::FutureExt;

use crate::cases;
use crate::cluster::{BackendKind, Cluster, provider};
use crate::context::Ctx;
use crate::error::UsageError;
use crate::features::{Declared, Level};
use crate::images::push::Registry;
use crate::preflight;
use crate::profile::Profile;
use crate::report::{self, ConformanceReport, ReportResult, ReportWriter};
use crate::secrets::KnownSecrets;
use crate::verdict::{self, CaseResult, Outcome, Runner};
use crate::{deploy, images};

/// Options of one conformance run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Cluster backend (`--backend`).
    pub backend: BackendKind,
    /// The profile of the implementation under test.
    pub profile: PathBuf,
    /// Where the reports go.
    pub report_dir: PathBuf,
    /// Leave the cluster running afterwards.
    pub keep_cluster: bool,
    /// Only these case IDs (all when empty).
    pub cases: Vec<String>,
    /// Only the cases of these features (all when empty).
    pub features: Vec<String>,
    /// The level the run must reach to succeed (`--require-level`).
    pub required_level: Option<Level>,
    /// A registry the images are pushed to and the cluster pulls from (`--registry`).
    pub registry: Option<Registry>,
    /// The Kubernetes minor to start (`--kubernetes-version`); `None`: the profile's, else the
    /// default. [`run_matrix`] runs several.
    pub kubernetes_version: Option<String>,
    /// The `harness` executable (for the local daemon).
    pub harness_exe: PathBuf,
}

/// Starts (or attaches to) a cluster of the requested backend with the profile's images.
pub(crate) async fn start_cluster(
    backend: BackendKind,
    profile: &Profile,
    keep: bool,
    harness_exe: &Path,
) -> Result<Cluster> {
    let prepared = provider(backend).prepare(profile, harness_exe).await?;
    eprintln!("[harness] backend: {}", prepared.kind.name());
    let started = Instant::now();
    let cluster = Cluster::start(prepared, keep).await?;
    eprintln!(
        "[harness] cluster ready in {:.1} s (Kubernetes {})",
        started.elapsed().as_secs_f64(),
        cluster.kubernetes_version()
    );
    Ok(cluster)
}

/// What `run` checks before any cluster work: the profile and its manifests, the case
/// selection, the options and the report directory. Returns the profile and the case IDs
/// to run (empty: all).
pub(crate) fn check_options(options: &RunOptions) -> Result<(Profile, Vec<String>), UsageError> {
    let mut profile = preflight::load_profile(&options.profile)?;
    if let Some(version) = &options.kubernetes_version {
        profile.kubernetes_version = Some(preflight::kubernetes_release(version)?.minor.clone());
    }
    let selection = preflight::select_cases(&profile, &options.cases, &options.features)?;
    preflight::check_backend_options(options.backend, options.keep_cluster)?;
    preflight::check_writable_dir(&options.report_dir, "--report-dir")?;
    Ok((profile, selection))
}

/// Runs the conformance suite and writes the reports, whatever happens once the options are
/// checked: a cluster that does not start, a deployment that fails or a panic in the harness
/// gives a report whose result is `error` (the harness could not test). Bad options are refused
/// with a [`UsageError`] before a cluster starts; an error is returned only when the reports
/// cannot be written.
pub async fn run(options: &RunOptions) -> Result<ConformanceReport> {
    verdict::install_panic_hook();
    let started = Instant::now();
    let (profile, selection) = check_options(options)?;
    let declared = profile.features.clone();
    let mut tested = Tested::default();
    let stage = AssertUnwindSafe(test(options, &profile, &selection, &mut tested));
    let failure = match stage.catch_unwind().await {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(format!("{error:#}")),
        Err(panic) => Some(format!(
            "harness error during set-up: {}",
            verdict::panic_text(panic.as_ref())
        )),
    };
    let redactor = tested.secrets.redactor();
    let results = match (&failure, tested.results.take()) {
        (None, Some(results)) => results,
        (failure, _) => {
            let why = failure.clone().unwrap_or_else(|| "no case ran".into());
            eprintln!("[harness] could not test: {why}");
            not_run_all(
                &declared,
                &selection,
                &format!("not run: the harness could not test: {why}"),
            )
        }
    };
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let backend = tested
        .backend
        .map_or(options.backend.name(), BackendKind::name);
    let mut report = report::build(&profile, backend, &tested.version, &results, date)
        .with_stability(tested.stability.take().unwrap_or_default())
        .with_required_level(options.required_level);
    if let Some(why) = failure {
        report = report.could_not_test(redactor.redact(&why).into_owned());
    }
    let writer = ReportWriter::new(&options.report_dir, redactor);
    report::write_all(&report, &writer)?;
    if report.result != ReportResult::Success {
        if let Some(client) = &tested.client
            && let Err(error) =
                report::diagnostics::collect(client, &profile.namespace, &writer).await
        {
            eprintln!("[report] could not collect diagnostics: {error:#}");
        }
        for (name, text) in &tested.cluster_logs {
            if let Err(error) = writer.write(Path::new("diagnostics/cluster-logs").join(name), text)
            {
                eprintln!("[report] could not write the cluster log {name}: {error:#}");
            }
        }
    }
    eprintln!(
        "[harness] {} ({:.1} s); reports in {}",
        report.headline(),
        started.elapsed().as_secs_f64(),
        options.report_dir.display()
    );
    if let Some(cluster) = tested.cluster.take() {
        cluster.shutdown(options.keep_cluster).await?;
    }
    Ok(report)
}

/// Runs the suite once per Kubernetes version (each on a cluster of its own, its reports in
/// `<report dir>/kubernetes-<minor>/`), then writes `<report dir>/summary.md`: a table of the
/// results per feature and version. Every version is checked before the first cluster starts.
pub async fn run_matrix(
    options: &RunOptions,
    versions: &[String],
) -> Result<Vec<(String, ConformanceReport)>> {
    let mut minors: Vec<String> = Vec::new();
    for version in versions {
        let minor = preflight::kubernetes_release(version)?.minor.clone();
        if minors.contains(&minor) {
            return Err(UsageError(format!("--kubernetes-version names {minor} twice")).into());
        }
        minors.push(minor);
    }
    if provider(options.backend).refuses_keep().is_some() {
        return Err(UsageError(format!(
            "--kubernetes-version with {} versions needs a backend that starts its clusters \
             (local, k3s, auto): the {} backend's cluster runs one version",
            minors.len(),
            options.backend.name()
        ))
        .into());
    }
    if options.keep_cluster {
        return Err(UsageError(
            "conflicting options: --keep-cluster with several --kubernetes-version values (one \
             cluster per version is started and stopped)"
                .into(),
        )
        .into());
    }
    preflight::check_writable_dir(&options.report_dir, "--report-dir")?;
    let mut reports = Vec::new();
    for (index, minor) in minors.iter().enumerate() {
        eprintln!(
            "[harness] Kubernetes {minor} ({} of {})",
            index + 1,
            minors.len()
        );
        let version_options = RunOptions {
            kubernetes_version: Some(minor.clone()),
            report_dir: options.report_dir.join(report::matrix::version_dir(minor)),
            ..options.clone()
        };
        reports.push((minor.clone(), run(&version_options).await?));
    }
    let summary = report::matrix::render(&reports);
    // The table holds verdicts and versions only: nothing to redact.
    let writer = ReportWriter::new(&options.report_dir, Default::default());
    report::write_summary(&writer, &summary)?;
    eprintln!("{summary}");
    Ok(reports)
}

/// What the test stage produced, kept when it stops early.
#[derive(Default)]
struct Tested {
    backend: Option<BackendKind>,
    version: String,
    client: Option<kube::Client>,
    cluster: Option<Cluster>,
    secrets: KnownSecrets,
    results: Option<Vec<CaseResult>>,
    stability: Option<crate::stability::Stability>,
    /// The ends of the cluster's own logs, kept for the diagnostics.
    cluster_logs: Vec<(String, String)>,
}

/// Starts the cluster, deploys the implementation and runs the cases, filling `tested` as it
/// goes; an error is why the harness could not test.
async fn test(
    options: &RunOptions,
    profile: &Profile,
    selection: &[String],
    tested: &mut Tested,
) -> Result<()> {
    tested.secrets = KnownSecrets::for_profile(profile);
    let delivered;
    let profile = match &options.registry {
        Some(registry) => {
            delivered = images::push::deliver(profile, registry, &options.harness_exe)
                .await
                .context("the images could not be delivered")?;
            &delivered
        }
        None => profile,
    };
    let cluster = start_cluster(
        options.backend,
        profile,
        options.keep_cluster,
        &options.harness_exe,
    )
    .await
    .context("the cluster did not start")?;
    tested.backend = Some(cluster.backend());
    tested.version = cluster.kubernetes_version().to_string();
    let client = cluster.client();
    tested.client = Some(client.clone());
    let mut ctx = Ctx::new(cluster, profile.clone())?;
    ctx.secrets = tested.secrets.clone();
    // Watching from before the deployment, so a crash while it rolls out is seen too.
    if let Err(error) = ctx.watch_stability("deployment").await {
        eprintln!("[stability] cannot watch the implementation's pods: {error:#}");
    }
    let deploy_started = Instant::now();
    let deployed = deploy::deploy(&client, profile).await;
    eprintln!(
        "[harness] deploy step took {:.1} s",
        deploy_started.elapsed().as_secs_f64()
    );
    // Crashes before the first case are named at run level only.
    ctx.unexpected_terminations().await;
    ctx.set_stability_phase("between cases", false);
    let outcome = match deployed {
        Ok(()) => {
            let mut results = Runner::new(&ctx, &profile.features)
                .run_all(selection)
                .await;
            ctx.set_stability_phase("after the last case", false);
            ctx.unexpected_terminations().await;
            let stability = ctx.stability();
            // A termination reported after its case ended still fails that case.
            for result in &mut results {
                let before = result.outcome;
                verdict::fail_for_crashes(result, &stability.unexpected);
                if result.outcome != before {
                    eprintln!(
                        "[case] {} FAILED after all: {}",
                        result.id,
                        result.reason.as_deref().unwrap_or_default()
                    );
                }
            }
            tested.results = Some(results);
            tested.stability = Some(stability);
            Ok(())
        }
        Err(error) => {
            tested.stability = Some(ctx.stability());
            Err(error.context("the deployment failed"))
        }
    };
    ctx.stop_stability_watch();
    let failed = outcome.is_err()
        || tested
            .results
            .iter()
            .flatten()
            .any(|r| matches!(r.outcome, Outcome::Failed | Outcome::NotRun));
    if failed {
        tested.cluster_logs = ctx.cluster.logs().unwrap_or_else(|error| {
            eprintln!("[report] could not read the cluster's logs: {error:#}");
            Vec::new()
        });
    }
    tested.cluster = Some(ctx.into_cluster());
    outcome
}

/// Every case as it stands when nothing could run: not selected, skipped (undeclared) or not run.
fn not_run_all(declared: &Declared, only: &[String], reason: &str) -> Vec<CaseResult> {
    cases::all()
        .iter()
        .map(|case| {
            if !only.is_empty() && !only.iter().any(|id| id == case.id) {
                CaseResult::unrun(case, Outcome::NotSelected, None)
            } else if !declared.contains(&case.feature) {
                CaseResult::unrun(case, Outcome::Skipped, None)
            } else {
                CaseResult::unrun(case, Outcome::NotRun, Some(reason.to_string()))
            }
        })
        .collect()
}
