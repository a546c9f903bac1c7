//! Measures the local cluster's start time and a pod's start: starts the cluster N times
//! (default 5); each time creates a pod of the pause image (imported at every start) and times
//! create → Ready, then stops the cluster. Prints each time and the medians. Needs root and
//! built binaries.
//!
//!     cargo run -p local-cluster --example start_timing -- [N]

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::wait::await_condition;
use local_cluster::{ClusterSpec, LocalCluster, PAUSE_IMAGE};

fn is_ready(pod: Option<&Pod>) -> bool {
    pod.and_then(|p| p.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn pod_start(cluster: &LocalCluster, run: usize) -> anyhow::Result<Duration> {
    let pods: Api<Pod> = Api::namespaced(cluster.client().await?, "default");
    let name = format!("timing-{run}");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "pause", "image": PAUSE_IMAGE}]}
    }))?;
    let created = Instant::now();
    pods.create(&PostParams::default(), &pod).await?;
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(pods, &name, is_ready),
    )
    .await??;
    Ok(created.elapsed())
}

fn median(times: &mut [Duration]) -> String {
    times.sort();
    let all: Vec<String> = times
        .iter()
        .map(|t| format!("{:.2}", t.as_secs_f64()))
        .collect();
    format!(
        "median {:.2} s (sorted: {} s)",
        times[times.len() / 2].as_secs_f64(),
        all.join(", ")
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(5);
    let mut spec =
        ClusterSpec::with_defaults(Vec::new(), local_cluster::versions::default_release())?;
    spec.state_dir = "/run/gomicro-conformance-timing".into();
    let (mut starts, mut pods) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let started = Instant::now();
        let cluster = LocalCluster::start(spec.clone()).await?;
        let took = started.elapsed();
        let pod = pod_start(&cluster, run).await;
        cluster.stop().await?;
        let pod = pod?;
        eprintln!(
            "run {run}: node Ready in {:.2} s, pod Ready in {:.2} s",
            took.as_secs_f64(),
            pod.as_secs_f64()
        );
        starts.push(took);
        pods.push(pod);
    }
    println!(
        "start to node Ready over {runs} runs: {}",
        median(&mut starts)
    );
    println!("pod create to Ready: {}", median(&mut pods));
    Ok(())
}
