//! `harness`: run the conformance suite, or bring a local cluster up and down.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use harness::cluster::BackendKind;
use harness::cluster::local::{default_state_dir, prepare_images};
use harness::features::Level;
use harness::preflight::{self, is_usage_error};
use harness::profile::reference_profile_path;
use harness::report::ReportResult;
use harness::run::{RunOptions, run, write_image_list};
use harness::{cases, images};

/// The exit codes, shown by `--help`.
const EXIT_STATUS: &str = "\
Exit status:
  0  nothing failed: every case that ran passed (a selection with --case/--feature that passes
     succeeds and claims no level it did not test), or the command did what it says
  1  the implementation failed: a case failed or could not run after a crash, the level given
     with --require-level was not reached, or (bench) a profile was not measured
  2  usage error, refused before any cluster work: unknown option, case ID or feature, a
     feature the profile does not declare, conflicting options, an unwritable report
     directory, an unreadable or invalid profile, a manifests directory that is missing or
     holds no objects
  3  the harness could not test: the cluster did not start, images could not be delivered,
     the deployment failed, or an I/O step failed (the reports say why when they could be
     written)";

/// The level a run can be required to reach.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RequiredLevel {
    /// Every Core feature declared, every Core case run and passed.
    Core,
}

#[derive(Parser)]
#[command(
    name = "harness",
    version,
    about = "Conformance harness for Go-Micro-style discovery and configuration on Kubernetes",
    after_help = EXIT_STATUS
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a cluster, deploy the profile's implementation, run the cases, write the reports.
    #[command(after_help = EXIT_STATUS)]
    Run {
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
        registry: Option<harness::images::push::Registry>,
    },
    /// Start a local cluster in the background and keep it (local backend).
    Up {
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
    },
    /// Stop the local cluster started by `harness up` and remove everything it left.
    Down,
    /// Run the kubectl built with the control plane against the `harness up` cluster
    /// (e.g. `harness kubectl -- get pods -A`).
    Kubectl {
        /// Arguments passed to kubectl as they are.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Measure an implementation (or several, with ratios) on fresh clusters: start and deploy
    /// times, registration/resolver/reload latencies, login load, memory, watch traffic.
    Bench {
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
        load_duration: std::time::Duration,
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
        window: std::time::Duration,
        /// An earlier run's JSON: print each figure's change against it after the table.
        #[arg(long, value_name = "OLD.json")]
        compare: Option<PathBuf>,
        /// With --compare: compare this JSON instead of running the bench (no cluster).
        #[arg(long, value_name = "NEW.json", requires = "compare")]
        against: Option<PathBuf>,
    },
    /// List the conformance cases with their contract section, level and feature.
    Cases {
        /// Print one case's entry of the contract (docs/contract.md): what it does, what a
        /// failure usually means and the clauses it traces to.
        #[arg(long, value_name = "ID")]
        explain: Option<String>,
    },
    /// Print the JSON Schema of a profile or of the conformance report (committed as
    /// `schemas/profile.schema.json` and `schemas/report.schema.json`).
    Schema {
        #[arg(value_enum)]
        document: harness::schema::Document,
    },
    /// Write the profile's local images as OCI image archives (no Docker) and print their
    /// references, digests and sizes; `ctr -n k8s.io images import` accepts them.
    Images {
        /// Profile whose images are written (default: the reference services).
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Where the archives go (one `<image>.tar` each).
        #[arg(long, default_value = "target/oci-images")]
        out_dir: PathBuf,
    },
    /// Runs a local cluster in the foreground (started by `harness up`).
    #[command(hide = true)]
    ClusterDaemon {
        /// A JSON list of the image archives to import.
        #[arg(long)]
        image_archives: PathBuf,
        /// Loopback registries the node may pull from.
        #[arg(long = "pull-registry")]
        pull_registries: Vec<String>,
    },
}

/// How the user started this program, for hints they can paste: `cargo run [--release] -p
/// harness --` under cargo, `harness` when PATH finds this very executable, else its path.
fn invocation(exe: &std::path::Path) -> String {
    let under_cargo = std::env::var_os("CARGO").is_some();
    let profile_dir = exe.parent().and_then(|dir| dir.file_name());
    match profile_dir.and_then(|dir| dir.to_str()) {
        Some("release") if under_cargo => return "cargo run --release -p harness --".into(),
        Some("debug") if under_cargo => return "cargo run -p harness --".into(),
        _ => {}
    }
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| std::fs::canonicalize(dir.join("harness")).ok().as_deref() == Some(exe))
    });
    if on_path {
        "harness".into()
    } else {
        exe.display().to_string()
    }
}

fn main() -> ExitCode {
    let command = Cli::parse().command;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(command)) {
        Ok(code) => code,
        Err(error) if is_usage_error(&error) => {
            eprintln!("error: {error:#}");
            eprintln!("(usage error: nothing was started; see `harness --help`)");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(3)
        }
    }
}

async fn dispatch(command: Command) -> Result<ExitCode> {
    let profile_or_default = |p: Option<PathBuf>| p.unwrap_or_else(reference_profile_path);
    let exe = std::env::current_exe().context("cannot find the harness executable")?;
    match command {
        Command::Run {
            backend,
            profile,
            report_dir,
            keep_cluster,
            cases,
            features,
            require_level,
            registry,
        } => {
            let options = RunOptions {
                backend,
                profile: profile_or_default(profile),
                report_dir,
                keep_cluster,
                cases,
                features,
                required_level: require_level.map(|RequiredLevel::Core| Level::Core),
                registry,
                harness_exe: exe,
            };
            let report = run(&options).await?;
            Ok(match report.result {
                ReportResult::Success => ExitCode::SUCCESS,
                ReportResult::Error => ExitCode::from(3),
                _ => ExitCode::FAILURE,
            })
        }
        Command::Up {
            backend,
            profile,
            pull_registries,
            no_images,
        } => {
            if backend != BackendKind::Local {
                return Err(preflight::UsageError(format!(
                    "`harness up` keeps a local cluster running; for {} use `harness run --backend {} --keep-cluster`",
                    backend.name(),
                    backend.name()
                ))
                .into());
            }
            for registry in &pull_registries {
                local_cluster::check_loopback_registry(registry).map_err(|error| {
                    preflight::UsageError(format!("--pull-registry: {error:#}"))
                })?;
            }
            let profile = preflight::load_profile(&profile_or_default(profile))?;
            let archives = if no_images {
                local_cluster::ensure_binaries()?;
                local_cluster::ensure_node_binaries()?;
                Vec::new()
            } else {
                prepare_images(&profile, &exe)?
            };
            let list = write_image_list(&archives)?;
            let mut args = vec![
                "cluster-daemon".into(),
                "--image-archives".into(),
                list.display().to_string(),
            ];
            for registry in pull_registries {
                args.extend(["--pull-registry".to_string(), registry]);
            }
            let started = std::time::Instant::now();
            let info = local_cluster::daemon::up(&default_state_dir(), &exe, &args).await?;
            let me = invocation(&exe);
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
        Command::Kubectl { args } => {
            let Some(info) = local_cluster::daemon::status(&default_state_dir()) else {
                anyhow::bail!(
                    "no local cluster is up; start one with `{} up`",
                    invocation(&exe)
                );
            };
            use std::os::unix::process::CommandExt;
            let error = std::process::Command::new(&info.kubectl)
                .env("KUBECONFIG", &info.kubeconfig)
                .args(args)
                .exec();
            Err(anyhow::Error::new(error).context(format!("cannot run {}", info.kubectl.display())))
        }
        Command::Images { profile, out_dir } => {
            let profile = preflight::load_profile(&profile_or_default(profile))?;
            let local = images::prepare_local(&profile)?;
            for written in images::oci::write_archives(&local, &out_dir)? {
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
        Command::Schema { document } => {
            print!("{}", harness::schema::render(document));
            Ok(ExitCode::SUCCESS)
        }
        Command::Down => {
            harness::run::stop_local_daemon().await?;
            println!("local cluster is down");
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            backend,
            profiles,
            json,
            concurrency,
            load_duration,
            max_requests,
            rounds,
            unrelated_pods,
            window,
            compare,
            against,
        } => {
            let load_json = |path: &PathBuf| {
                harness::bench::compare::load(path)
                    .map_err(|error| preflight::UsageError(format!("{error:#}")))
            };
            if backend == BackendKind::Kubeconfig && against.is_none() {
                return Err(preflight::UsageError(
                    "`harness bench` measures clusters it starts itself (their start time, their unrelated pods, its baseline image): use --backend local, or --backend k3s where a Docker engine runs; the kubeconfig backend's cluster is not the harness's to measure".into(),
                )
                .into());
            }
            let compare = compare.as_ref().map(load_json).transpose()?;
            if let (Some(old), Some(new)) = (&compare, &against) {
                print!("{}", harness::bench::compare::render(old, &load_json(new)?));
                return Ok(ExitCode::SUCCESS);
            }
            let profiles = if profiles.is_empty() {
                vec![reference_profile_path()]
            } else {
                profiles
            };
            for profile in &profiles {
                preflight::load_profile(profile)?;
            }
            if let Some(dir) = json.parent().filter(|d| !d.as_os_str().is_empty()) {
                preflight::check_writable_dir(dir, "the directory of --json")?;
            }
            let options = harness::bench::BenchOptions {
                backend,
                profiles,
                json,
                concurrency,
                load_duration,
                max_requests,
                rounds,
                unrelated_pods,
                window,
                harness_exe: exe,
                compare,
            };
            let report = harness::bench::run(&options).await?;
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
        Command::Cases { explain: Some(id) } => match harness::contract::explain(&id) {
            Some(text) => {
                print!("{text}");
                Ok(ExitCode::SUCCESS)
            }
            None => Err(preflight::UsageError(format!(
                "unknown case {id}; `harness cases` lists them"
            ))
            .into()),
        },
        Command::Cases { explain: None } => {
            println!(
                "{:<10} {:<8} {:<9} {:<26} summary",
                "id", "contract", "level", "feature"
            );
            for case in cases::all() {
                println!(
                    "{:<10} {:<8} {:<9} {:<26} {}",
                    case.id,
                    case.section,
                    case.level().name(),
                    case.feature.name(),
                    case.summary
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::ClusterDaemon {
            image_archives,
            pull_registries,
        } => {
            let text = std::fs::read(&image_archives)
                .with_context(|| format!("cannot read {}", image_archives.display()))?;
            let images = serde_json::from_slice(&text)
                .context("the list of image archives is not valid JSON")?;
            let mut spec = local_cluster::ClusterSpec::with_defaults(images)?;
            spec.pull_registries = pull_registries;
            local_cluster::daemon::serve(spec).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
