//! RBAC: the service account can do what the fixtures grant and no more; without RBAC a service
//! fails clearly (CONTRACT.md §1, §6); with `namespace-isolation` it reads no pod outside its
//! namespace (E6.1).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::support::namespace::scratch_namespace;
use super::{Case, Ctx, case_fn};
use crate::features::Feature;
use crate::normalize;
use crate::wait::{wait_for, wait_until};

pub(super) fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "RBAC-001",
            feature: Feature::Rbac,
            section: "§6",
            summary: "SubjectAccessReview: the service account has exactly the pod and ConfigMap rights of the fixtures",
            lever: None,
            run: case_fn!(service_account_rights),
        },
        Case {
            id: "RBAC-002",
            feature: Feature::Rbac,
            section: "§1, §6",
            summary: "a service started without its RBAC fails at startup with an error naming the refusal",
            lever: None,
            run: case_fn!(without_rbac_fails_clearly),
        },
        Case {
            id: "RBAC-003",
            feature: Feature::NamespaceIsolation,
            section: "§6",
            summary: "SubjectAccessReview: the service account may not get, list, watch or patch pods in all namespaces or in another namespace",
            lever: None,
            run: case_fn!(no_pod_rights_elsewhere),
        },
    ]
}

/// A namespace other than the implementation's, for RBAC-003 (a review needs no such namespace).
const ELSEWHERE: &str = "conformance-elsewhere";

/// (verb, resource, namespace or "" for all, expected to be allowed)
type Expectation = (&'static str, &'static str, String, bool);

/// RBAC-001's rights in the namespace (C6.2, C6.3): pod rights in other namespaces are not
/// looked at, Core allows them.
fn expectations(namespace: &str) -> Vec<Expectation> {
    let ns = || namespace.to_string();
    vec![
        ("get", "pods", ns(), true),
        ("list", "pods", ns(), true),
        ("watch", "pods", ns(), true),
        ("patch", "pods", ns(), true),
        ("get", "configmaps", ns(), true),
        ("list", "configmaps", ns(), true),
        ("watch", "configmaps", ns(), true),
        ("delete", "pods", ns(), false),
        ("create", "pods", ns(), false),
        ("get", "secrets", ns(), false),
        ("list", "secrets", ns(), false),
        ("create", "deployments", ns(), false),
        ("list", "configmaps", "kube-system".into(), false),
        ("create", "pods/exec", ns(), false),
    ]
}

async fn allowed(
    ctx: &Ctx,
    user: &str,
    groups: &[String],
    verb: &str,
    resource: &str,
    namespace: &str,
) -> Result<bool> {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (resource, None),
    };
    let group = if resource == "deployments" {
        "apps"
    } else {
        ""
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            groups: Some(groups.to_vec()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                subresource,
                group: Some(group.into()),
                namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SubjectAccessReview> = Api::all(ctx.client());
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .context("creating a SubjectAccessReview")?;
    Ok(answer.status.map(|s| s.allowed).unwrap_or(false))
}

/// RBAC-003's pod rights in all namespaces and in another one (E6.1): none.
fn no_pod_rights_outside() -> Vec<Expectation> {
    ["", ELSEWHERE]
        .into_iter()
        .flat_map(|namespace| {
            ["get", "list", "watch", "patch"]
                .map(|verb| (verb, "pods", namespace.to_string(), false))
        })
        .collect()
}

async fn service_account_rights(ctx: &Ctx) -> Result<Value> {
    check_rights(ctx, expectations(ctx.namespace())).await
}

async fn no_pod_rights_elsewhere(ctx: &Ctx) -> Result<Value> {
    check_rights(ctx, no_pod_rights_outside()).await
}

/// Asks a SubjectAccessReview for each expectation of the profile's service account; fails
/// naming every answer that differs.
async fn check_rights(ctx: &Ctx, expectations: Vec<Expectation>) -> Result<Value> {
    let ns = ctx.namespace();
    let user = format!("system:serviceaccount:{ns}:{}", ctx.profile.service_account);
    let groups = vec![
        "system:serviceaccounts".to_string(),
        format!("system:serviceaccounts:{ns}"),
        "system:authenticated".into(),
    ];
    let mut rows = Vec::new();
    let mut wrong = Vec::new();
    for (verb, resource, namespace, expected) in expectations {
        let got = allowed(ctx, &user, &groups, verb, resource, &namespace).await?;
        let scope = if namespace.is_empty() {
            "all namespaces".to_string()
        } else {
            namespace.replace(ns, "[namespace]")
        };
        rows.push(json!({ "verb": verb, "resource": resource, "scope": scope, "allowed": got }));
        if got != expected {
            wrong.push(format!(
                "{verb} {resource} in {}: allowed={got}, expected {expected}",
                if namespace.is_empty() {
                    "all namespaces"
                } else {
                    &namespace
                }
            ));
        }
    }
    if !wrong.is_empty() {
        bail!("service account {user}: {}", wrong.join("; "));
    }
    Ok(json!(rows))
}

async fn without_rbac_fails_clearly(ctx: &Ctx) -> Result<Value> {
    // A pod of the token service's own template, in a fresh namespace, under an account with no bindings.
    let deployments: Api<Deployment> = Api::namespaced(ctx.client(), ctx.namespace());
    let template = deployments
        .get(&ctx.profile.services.token.deployment)
        .await?
        .spec
        .map(|s| s.template)
        .context("token deployment has no template")?;
    let probe_ns = scratch_namespace(ctx, "conformance-rbac").await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client(), &probe_ns);
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": { "name": "no-rbac" } }))?,
        )
        .await?;
    let mut spec = template.spec.context("token template has no pod spec")?;
    spec.service_account_name = Some("no-rbac".into());
    spec.restart_policy = Some("Never".into());
    let mut labels = template.metadata.and_then(|m| m.labels).unwrap_or_default();
    labels.retain(|k, _| k == "app");
    let pod = Pod {
        metadata: kube::api::ObjectMeta {
            name: Some("token-without-rbac".into()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(spec),
        ..Default::default()
    };
    let pods: Api<Pod> = Api::namespaced(ctx.client(), &probe_ns);
    // The service account may take a moment to be usable for token requests.
    wait_until(
        Duration::from_secs(30),
        "the probe pod to be created",
        || async {
            Ok(pods
                .create(&PostParams::default(), &pod)
                .await
                .ok()
                .map(|_| ()))
        },
    )
    .await?;
    let exit_code = |pod: &Pod| {
        let status = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
        Some(status.state.as_ref()?.terminated.as_ref()?.exit_code)
    };
    let exited = |pod: Option<&Pod>| pod.and_then(exit_code).is_some();
    let what = "the service without RBAC to exit";
    let pod = wait_for(
        &pods,
        "token-without-rbac",
        Duration::from_secs(90),
        what,
        exited,
    )
    .await?;
    let exit = pod.as_ref().and_then(exit_code).unwrap_or_default();
    if exit == 0 {
        bail!("the service without RBAC exited with status 0, expected a failure");
    }
    let log = pods.logs("token-without-rbac", &Default::default()).await?;
    let names_refusal = |line: &&str| {
        let lower = line.to_lowercase();
        (lower.contains("forbidden") || lower.contains("403"))
            && (lower.contains("configmaps") || lower.contains("pods"))
    };
    let Some(refusal) = log.lines().find(names_refusal) else {
        bail!(
            "the startup error does not name the refusal (403/forbidden and the resource): {}",
            log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        );
    };
    let refusal = normalize::log_message(refusal).replace(&probe_ns, "[namespace]");
    Ok(json!({ "exitCode": exit, "refusal": refusal }))
}
