//! The `harness` command line: its options and one module per subcommand.

mod bench;
mod cases;
mod cluster;
mod images;
mod run;
mod schema;
mod versions;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::error::is_usage_error;
use crate::profile::reference_profile_path;

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
    Run(run::RunArgs),
    /// Start a local cluster in the background and keep it (local backend).
    Up(cluster::UpArgs),
    /// Stop the local cluster started by `harness up` and remove everything it left.
    Down,
    /// Run the kubectl built with the control plane against the `harness up` cluster
    /// (e.g. `harness kubectl -- get pods -A`).
    Kubectl(cluster::KubectlArgs),
    /// Measure an implementation (or several, with ratios) on fresh clusters: start and deploy
    /// times, registration/resolver/reload latencies, login load, memory, watch traffic.
    Bench(bench::BenchArgs),
    /// List the conformance cases with their contract section, level and feature.
    Cases(cases::CasesArgs),
    /// List the supported Kubernetes minors: what the local and k3s backends run for each, the
    /// default, and which ones the local backend has built.
    Versions,
    /// Print the JSON Schema of a profile or of the conformance report (committed as
    /// `schemas/profile.schema.json` and `schemas/report.schema.json`).
    Schema(schema::SchemaArgs),
    /// Write the profile's local images as OCI image archives (no Docker) and print their
    /// references, digests and sizes; `ctr -n k8s.io images import` accepts them.
    Images(images::ImagesArgs),
    /// Runs a local cluster in the foreground (started by `harness up`).
    #[command(hide = true)]
    ClusterDaemon(cluster::DaemonArgs),
}

/// Runs the `harness` command line: parses the arguments, runs the subcommand and maps its
/// outcome to the documented exit status.
pub fn main() -> ExitCode {
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
    let exe = std::env::current_exe().context("cannot find the harness executable")?;
    match command {
        Command::Run(args) => args.execute(exe).await,
        Command::Up(args) => args.execute(&exe).await,
        Command::Down => cluster::down().await,
        Command::Kubectl(args) => args.execute(&exe),
        Command::Bench(args) => args.execute(exe).await,
        Command::Cases(args) => args.execute(),
        Command::Schema(args) => args.execute(),
        Command::Versions => versions::execute(),
        Command::Images(args) => args.execute(),
        Command::ClusterDaemon(args) => args.execute().await,
    }
}

/// The profile given, else the reference services'.
fn profile_or_reference(profile: Option<PathBuf>) -> PathBuf {
    profile.unwrap_or_else(reference_profile_path)
}

/// How the user started this program, for hints they can paste: `cargo run [--release] -p
/// harness --` under cargo, `harness` when PATH finds this very executable, else its path.
fn invocation(exe: &Path) -> String {
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
