//! admin-srv's memory and watch traffic while thousands of unrelated pods exist.
//!
//! The pods live in their own namespace and select a node label no node has, so they stay
//! Pending and nothing runs them. Traffic is what admin-srv's pod network namespace receives
//! (`/proc/<pid>/net/dev`), which at rest is essentially its watch streams from the API server.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use super::report::{Figure, UnrelatedPods, mib, unit};
use crate::context::Ctx;
use crate::wait::wait_until;

/// Namespace holding the unrelated pods.
pub(crate) const NAMESPACE: &str = "bench-unrelated";
/// Concurrent create requests.
const CREATE_CONCURRENCY: usize = 16;
const DEADLINE: Duration = Duration::from_secs(300);

fn pending_pod(index: usize) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": format!("unrelated-{index:05}"), "labels": { "app": "unrelated" } },
        "spec": {
            "automountServiceAccountToken": false,
            "nodeSelector": { "conformance.gomicro.dev/no-such-node": "true" },
            "containers": [{ "name": "idle", "image": "unrelated.invalid/idle:0" }],
        },
    }))
    .expect("a static pod shape")
}

/// Creates namespace `name` and waits until it admits pods.
pub(super) async fn create_namespace(client: &kube::Client, name: &str) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(json!({ "metadata": { "name": name } }))?;
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    // Pods are admitted once the namespace's default ServiceAccount exists.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
    wait_until(
        DEADLINE,
        "the default ServiceAccount of the bench namespace",
        || async { Ok(accounts.get_opt("default").await?.map(drop)) },
    )
    .await
}

/// Deletes namespace `name` (if it exists) and waits until it is gone.
pub(super) async fn delete_namespace(client: &kube::Client, name: &str) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(name).await?.is_some() {
        namespaces.delete(name, &DeleteParams::default()).await?;
    }
    wait_until(
        DEADLINE,
        &format!("namespace {name} to be gone"),
        || async { Ok(namespaces.get_opt(name).await?.is_none().then_some(())) },
    )
    .await
}

/// Measures admin-srv (its container `admin`, through the backend's runtime lever) idle for
/// `window`, then while `count` unrelated pods are created and for `window` after; removes
/// them again.
pub(crate) async fn measure(
    ctx: &Ctx,
    admin: &str,
    count: usize,
    window: Duration,
) -> Result<UnrelatedPods> {
    let client = ctx.client();
    let runtime = ctx.cluster.runtime().map_err(anyhow::Error::msg)?;
    let stats = || runtime.container_stats(admin);
    let rss_before = mib(stats()?.memory_bytes);
    let rx_start = stats()?.pod_rx_bytes;
    tokio::time::sleep(window).await;
    let rx_idle = stats()?.pod_rx_bytes - rx_start;

    let measured = async {
        let rx_before = stats()?.pod_rx_bytes;
        let started = Instant::now();
        create_namespace(&client, NAMESPACE).await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
        futures::stream::iter(0..count)
            .map(|i| {
                let pods = pods.clone();
                async move {
                    pods.create(&PostParams::default(), &pending_pod(i))
                        .await
                        .with_context(|| format!("creating unrelated pod {i}"))
                }
            })
            .buffer_unordered(CREATE_CONCURRENCY)
            .try_for_each(|_| async { Ok(()) })
            .await?;
        let create_s = started.elapsed().as_secs_f64();
        eprintln!("[bench] {count} unrelated pods created in {create_s:.1} s");
        tokio::time::sleep(window).await;
        let rx_with_pods = stats()?.pod_rx_bytes - rx_before;
        anyhow::Ok(UnrelatedPods {
            pods: Figure::new(count as f64, unit::PODS),
            create: Figure::new(create_s, unit::SECONDS),
            rss_before: Figure::new(rss_before, unit::MIB),
            rss_after: Figure::new(mib(stats()?.memory_bytes), unit::MIB),
            rx_idle: Figure::new(rx_idle as f64, unit::BYTES),
            idle_window: Figure::new(window.as_secs_f64(), unit::SECONDS),
            rx_with_pods: Figure::new(rx_with_pods as f64, unit::BYTES),
            pods_window: Figure::new(started.elapsed().as_secs_f64(), unit::SECONDS),
        })
    }
    .await;
    let cleaned = delete_namespace(&client, NAMESPACE).await;
    let result = measured?;
    cleaned.context("removing the unrelated pods")?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unrelated_pods_can_never_be_scheduled_or_carry_tokens() {
        let pod = pending_pod(7);
        assert_eq!(pod.metadata.name.as_deref(), Some("unrelated-00007"));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.automount_service_account_token, Some(false));
        assert!(
            spec.node_selector
                .unwrap()
                .contains_key("conformance.gomicro.dev/no-such-node")
        );
    }
}
