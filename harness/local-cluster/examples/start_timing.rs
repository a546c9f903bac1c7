//! Measures the local cluster's start time: starts and stops it N times (default 5) and
//! prints each start time and the median. Needs root and built binaries.
//!
//!     cargo run -p local-cluster --example start_timing -- [N]

use std::time::{Duration, Instant};

use local_cluster::{ClusterSpec, ImageMap, LocalCluster};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(5);
    let mut spec = ClusterSpec::with_defaults(ImageMap::new())?;
    spec.state_dir = "/run/gomicro-conformance-timing".into();
    let mut times = Vec::new();
    for run in 1..=runs {
        let started = Instant::now();
        let cluster = LocalCluster::start(spec.clone()).await?;
        let took = started.elapsed();
        eprintln!("run {run}: ready in {:.2} s", took.as_secs_f64());
        times.push(took);
        cluster.stop().await?;
    }
    times.sort();
    let median: Duration = times[times.len() / 2];
    let all: Vec<String> = times
        .iter()
        .map(|t| format!("{:.2}", t.as_secs_f64()))
        .collect();
    println!(
        "start to node Ready over {runs} runs: median {:.2} s (sorted: {} s)",
        median.as_secs_f64(),
        all.join(", ")
    );
    Ok(())
}
