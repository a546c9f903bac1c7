//! The bench's baseline: the cheapest unary HTTP and gRPC login handlers (package
//! `bench-baseline`), served from a pod of their own Deployment in their own namespace on the
//! cluster under test, loaded by the same generator at the same concurrency as the logins.
//! Logins divided by baseline requests say how close an implementation comes to what the
//! cluster, the machine and the load generator allow.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use gomicro_proto::admin_srv::v1::authentication_service_client::AuthenticationServiceClient;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use super::measure::{self, Counted};
use super::report::LoadPhase;
use super::unrelated::{create_namespace, delete_namespace};
use crate::context::{Ctx, connect_grpc};
use crate::load::{Budget, Target};
use crate::profile::{DockerBuild, ImageSource, LocalImageSource, Profile};
use crate::wait::wait_until;
use crate::{deploy, images, pod_process, pods};

/// Namespace and Deployment of the baseline.
pub(crate) const NAMESPACE: &str = "bench-baseline";
const NAME: &str = "bench-baseline";
/// The image, built from the cargo package of the same name.
const IMAGE: &str = "gomicro-conformance/bench-baseline:0.1.0";
const HTTP_PORT: u16 = 8080;
const GRPC_PORT: u16 = 9090;
const DEADLINE: Duration = Duration::from_secs(120);

/// Adds the baseline's image to `profile`'s images, so the cluster starts with it (local: the
/// build of the reference set, in release when benchmarking; k3s: the reference Dockerfile).
pub(crate) fn add_image(profile: &mut Profile) {
    // Without a checkout, the cargo build of the image is refused first (images::prepare_local).
    let root = images::checkout().unwrap_or_else(images::workspace_root);
    profile.images.insert(
        IMAGE.into(),
        ImageSource {
            local: Some(LocalImageSource {
                dir: None,
                cargo_package: Some(NAME.into()),
                conf: None,
                overlay: None,
                mount_path: "/app".into(),
                entrypoint: vec![format!("/app/{NAME}")],
                working_dir: None,
                env: BTreeMap::new(),
                host_paths: Vec::new(),
            }),
            archive: None,
            docker: Some(DockerBuild {
                context: root.clone(),
                dockerfile: root.join("reference-services/Dockerfile"),
                build_args: BTreeMap::from([("SERVICE".into(), NAME.into())]),
            }),
            replaces: Vec::new(),
        },
    );
}

fn deployment() -> Deployment {
    serde_json::from_value(json!({
        "metadata": { "name": NAME, "labels": { "app": NAME } },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": NAME } },
            "template": {
                "metadata": { "labels": { "app": NAME } },
                "spec": {
                    "automountServiceAccountToken": false,
                    "containers": [{
                        "name": NAME,
                        "image": IMAGE,
                        "imagePullPolicy": "IfNotPresent",
                        "ports": [
                            { "name": "http-port", "containerPort": HTTP_PORT },
                            { "name": "grpc-port", "containerPort": GRPC_PORT },
                        ],
                    }],
                },
            },
        },
    }))
    .expect("a static Deployment shape")
}

/// The baseline's HTTP and gRPC load phases, each with `budget`.
#[derive(Debug, Default)]
pub(crate) struct Baseline {
    pub http: Option<LoadPhase>,
    pub grpc: Option<LoadPhase>,
}

/// Deploys the baseline, loads it over HTTP and gRPC, and removes its namespace again (also
/// when a step fails).
pub(crate) async fn measure(ctx: &Ctx, budget: Budget) -> Result<Baseline> {
    let client = ctx.client();
    let measured = async {
        create_namespace(&client, NAMESPACE).await?;
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
        deployments
            .create(&PostParams::default(), &deployment())
            .await
            .context("creating the baseline Deployment")?;
        deploy::wait_rolled_out(&client, NAMESPACE, NAME, DEADLINE).await?;
        let pod = ready_pod(ctx).await?;
        let http_addr = pod_addr(ctx, &pod, HTTP_PORT).await?;
        let grpc_addr = pod_addr(ctx, &pod, GRPC_PORT).await?;
        let http = measure::http_target(&format!("http://{http_addr}"), budget.concurrency)?;
        let channel = connect_grpc(grpc_addr, &pod.name_any()).await?;
        let grpc = Target::Grpc(AuthenticationServiceClient::new(channel));
        let demo = &ctx.profile.expectations.demo_user;
        // Without a readiness probe the pod is Ready before it listens.
        wait_until(DEADLINE, "the baseline pod to answer", || async {
            Ok((http.login(demo).await.is_ok() && grpc.login(demo).await.is_ok()).then_some(()))
        })
        .await?;
        let cpu_containers: Vec<String> = pod_process::container_id(&pod)
            .map(str::to_string)
            .into_iter()
            .collect();
        let mut baseline = Baseline::default();
        for (target, phase) in [(&http, &mut baseline.http), (&grpc, &mut baseline.grpc)] {
            let (load, _) = measure::load_phase(
                ctx,
                target,
                budget,
                Counted::Requests,
                &cpu_containers,
                None,
            )
            .await;
            *phase = Some(load);
        }
        anyhow::Ok(baseline)
    }
    .await;
    let removed = delete_namespace(&client, NAMESPACE).await;
    let baseline = measured?;
    removed.context("removing the baseline namespace")?;
    Ok(baseline)
}

async fn ready_pod(ctx: &Ctx) -> Result<Pod> {
    let api: Api<Pod> = Api::namespaced(ctx.client(), NAMESPACE);
    let listed = api
        .list(&ListParams::default().labels(&format!("app={NAME}")))
        .await?;
    listed
        .items
        .into_iter()
        .find(pods::is_ready)
        .context("the baseline Deployment rolled out without a ready pod")
}

async fn pod_addr(ctx: &Ctx, pod: &Pod, port: u16) -> Result<std::net::SocketAddr> {
    let ip = pods::pod_ip(pod).context("the baseline pod has no IP")?;
    ctx.cluster
        .pod_addr(NAMESPACE, &pod.name_any(), ip, port)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_baseline_pod_carries_no_token_and_both_ports() {
        let deployment = deployment();
        let spec = deployment.spec.unwrap().template.spec.unwrap();
        assert_eq!(spec.automount_service_account_token, Some(false));
        let ports: Vec<i32> = spec.containers[0]
            .ports
            .iter()
            .flatten()
            .map(|p| p.container_port)
            .collect();
        assert_eq!(ports, [8080, 9090]);
        assert_eq!(spec.containers[0].image.as_deref(), Some(IMAGE));
    }
}
