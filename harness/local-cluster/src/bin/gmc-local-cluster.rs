//! Stand-alone driver of the local cluster (the harness CLI offers the same through
//! `harness up` / `harness down`):
//!
//!     gmc-local-cluster up|down|status|cleanup|serve [--state-dir DIR] [--images FILE.json]
//!
//! `up` starts a detached daemon (`serve`) and prints cluster.json; `--images` names a JSON
//! array of OCI (or `docker save`) image archives imported at start.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use local_cluster::layout::DEFAULT_STATE_DIR;
use local_cluster::{ClusterSpec, daemon};

struct Args {
    command: String,
    state_dir: PathBuf,
    images: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut argv = std::env::args().skip(1);
    let command = argv.next().context(
        "usage: gmc-local-cluster up|down|status|cleanup|serve [--state-dir DIR] [--images FILE]",
    )?;
    let mut args = Args {
        command,
        state_dir: PathBuf::from(DEFAULT_STATE_DIR),
        images: None,
    };
    while let Some(flag) = argv.next() {
        let value = argv
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--state-dir" => args.state_dir = value.into(),
            "--images" => args.images = Some(value.into()),
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

fn read_images(path: Option<&PathBuf>) -> anyhow::Result<Vec<PathBuf>> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("parsing the list of image archives {}", path.display()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = parse_args()?;
    match args.command.as_str() {
        "serve" => {
            let mut spec = ClusterSpec::with_defaults(
                read_images(args.images.as_ref())?,
                local_cluster::versions::default_release(),
            )?;
            spec.state_dir = args.state_dir;
            daemon::serve(spec).await
        }
        "up" => {
            let mut forwarded = vec!["serve".to_string(), "--state-dir".to_string()];
            forwarded.push(args.state_dir.display().to_string());
            if let Some(images) = &args.images {
                forwarded.push("--images".into());
                forwarded.push(std::path::absolute(images)?.display().to_string());
            }
            let exe = std::env::current_exe()?;
            let info = daemon::up(&args.state_dir, &exe, &forwarded).await?;
            println!("{}", serde_json::to_string_pretty(&info)?);
            Ok(())
        }
        "down" => daemon::down(&args.state_dir).await,
        "status" => match daemon::status(&args.state_dir) {
            Some(info) => {
                println!("{}", serde_json::to_string_pretty(&info)?);
                Ok(())
            }
            None => bail!(
                "no local cluster daemon runs for {}",
                args.state_dir.display()
            ),
        },
        "cleanup" => {
            for removed in local_cluster::cleanup_stale(&args.state_dir)? {
                println!("removed {removed}");
            }
            Ok(())
        }
        other => bail!("unknown command {other} (up, down, status, cleanup, serve)"),
    }
}
