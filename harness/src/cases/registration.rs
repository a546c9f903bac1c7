//! REG: self-registration on the pod (CONTRACT.md §1).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};

use super::{Case, Ctx, case_fn};
use crate::features::Feature;
use crate::{normalize, pods};

pub(super) fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "REG-001",
            feature: Feature::Registration,
            section: "§1",
            summary: "every pod carries the five registry keys with the contract's values; other labels untouched",
            lever: None,
            run: case_fn!(pods_carry_registration),
        },
        Case {
            id: "REG-002",
            feature: Feature::Deregistration,
            section: "§1",
            summary: "deleting a pod shows the deregistration PATCH before the pod disappears",
            lever: None,
            run: case_fn!(deregisters_before_deletion),
        },
    ]
}

async fn pods_carry_registration(ctx: &Ctx) -> Result<Value> {
    let profile = &ctx.profile;
    let mut observed = BTreeMap::new();
    for (role, service) in profile.all_services() {
        let template_labels = template_labels(ctx, &service.deployment).await?;
        for pod in ctx.ready_pods(service).await? {
            let problems = pods::registration_problems(profile, service, &pod);
            if !problems.is_empty() {
                bail!("pod {}: {}", pod.name_any(), problems.join("; "));
            }
            let labels = pod.labels();
            for (key, value) in &template_labels {
                if key.starts_with(&format!("{}-service-", profile.key_prefix)) {
                    continue;
                }
                if labels.get(key) != Some(value) {
                    bail!(
                        "pod {}: label {key}={value} of the pod template was changed or removed",
                        pod.name_any()
                    );
                }
            }
            let annotation = |suffix: &str| -> Value {
                pod.annotations()
                    .get(&profile.key(suffix))
                    .and_then(|v| serde_json::from_str(v).ok())
                    .unwrap_or(Value::Null)
            };
            observed.insert(
                role,
                json!({
                    "labels": {
                        profile.key("id"): normalize::instance_id(&labels[&profile.key("id")], &service.deployment),
                        profile.key("app"): labels[&profile.key("app")],
                        profile.key("version"): "[version]",
                    },
                    "annotations": {
                        profile.key("metadata"): annotation("metadata"),
                        profile.key("protocols"): annotation("protocols"),
                    },
                    "otherLabels": template_labels.keys().filter(|k| !k.starts_with(&format!("{}-service-", profile.key_prefix))).collect::<Vec<_>>(),
                }),
            );
        }
    }
    Ok(json!(observed))
}

async fn template_labels(ctx: &Ctx, deployment: &str) -> Result<BTreeMap<String, String>> {
    let api: Api<Deployment> = Api::namespaced(ctx.client(), ctx.namespace());
    let deployment = api.get(deployment).await?;
    Ok(deployment
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.labels)
        .unwrap_or_default())
}

async fn deregisters_before_deletion(ctx: &Ctx) -> Result<Value> {
    let profile = &ctx.profile;
    let service = &profile.services.user;
    let pod = ctx.ready_pods(service).await?.remove(0);
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(ctx.client(), ctx.namespace());
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher::watcher(api.clone(), config).boxed();
    // Wait for the initial listing so that no event after the delete is missed.
    loop {
        match events.next().await.context("pod watch ended")?? {
            Event::InitDone => break,
            _ => continue,
        }
    }
    api.delete(&name, &DeleteParams::default()).await?;
    let id_key = profile.key("id");
    let deregistered = |p: &Pod| {
        let labels = p.labels();
        let annotations = p.annotations();
        labels.get(&id_key).is_some_and(String::is_empty)
            && labels
                .get(&profile.key("app"))
                .is_some_and(String::is_empty)
            && labels
                .get(&profile.key("version"))
                .is_some_and(String::is_empty)
            && annotations
                .get(&profile.key("metadata"))
                .is_some_and(|v| v == "{}")
            && annotations
                .get(&profile.key("protocols"))
                .is_some_and(|v| v == "{}")
    };
    let mut deregistered_keys = None;
    let outcome = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(event) = events.next().await {
            match event? {
                Event::Apply(p) | Event::InitApply(p) if deregistered(&p) => {
                    deregistered_keys = Some(registry_keys(profile, &p));
                }
                Event::Delete(_) => return Ok::<_, anyhow::Error>(deregistered_keys.take()),
                _ => {}
            }
        }
        bail!("pod watch ended before pod {name} was deleted")
    })
    .await
    .with_context(|| format!("pod {name} was not deleted within 60 s"))??;
    // Leave the cluster as found: the Deployment replaces the pod.
    ctx.wait_rolled_out(service).await?;
    ctx.wait_in_service(service).await?;
    let Some(keys) = outcome else {
        bail!(
            "pod {name} disappeared without the deregistration PATCH (labels \"\" and annotations {{}}) being observed"
        );
    };
    Ok(json!({ "lastStateBeforeDeletion": keys }))
}

/// The five registry keys of a pod as they stand (absent keys as null).
fn registry_keys(profile: &crate::profile::Profile, pod: &Pod) -> Value {
    let mut keys = serde_json::Map::new();
    for suffix in ["id", "app", "version"] {
        keys.insert(
            profile.key(suffix),
            json!(pod.labels().get(&profile.key(suffix))),
        );
    }
    for suffix in ["metadata", "protocols"] {
        keys.insert(
            profile.key(suffix),
            json!(pod.annotations().get(&profile.key(suffix))),
        );
    }
    Value::Object(keys)
}
