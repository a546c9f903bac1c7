//! BAD: malformed and oversized input to every entry point: ConfigMaps, foreign pods, login
//! bodies and gRPC messages. Each gives a clear error, nothing crashes, the last good state stays.

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::support::bad_input::{
    each_bad_body, each_malformed_message, message_answered, message_refused, refused,
};
use super::support::foreign::{delete_afterwards, foreign_pod, idle_image};
use super::support::resolver::{admin_log, discoverable_ids, wait_in_sync};
use super::support::token_config::{
    rejection_message, reports_rejection, restore_token_config_afterwards,
};
use super::support::{identity, still_same_pods};
use super::{Case, Ctx, case_fn};
use crate::configmap::{self, CONFIG_KEY};
use crate::features::Feature;
use crate::login::{any_login, check_reply};
use crate::normalize;
use crate::profile::ServiceSpec;
use crate::wait::{wait_for, wait_until};

pub(super) fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "BAD-001",
            feature: Feature::ConfigBadInput,
            section: "§4",
            summary: "a tab-indented (malformed) YAML config.yaml is rejected naming the entry; the last good config serves",
            lever: None,
            run: case_fn!(malformed_yaml),
        },
        Case {
            id: "BAD-002",
            feature: Feature::ConfigBadInput,
            section: "§4",
            summary: "a malformed JSON entry (config.json) is rejected naming the entry; the last good config serves",
            lever: None,
            run: case_fn!(malformed_json),
        },
        Case {
            id: "BAD-003",
            feature: Feature::ConfigBadInput,
            section: "§4",
            summary: "an entry with an unknown format extension (config.toml) is rejected naming it; the last good config serves",
            lever: None,
            run: case_fn!(unknown_extension),
        },
        Case {
            id: "BAD-004",
            feature: Feature::ConfigBadInput,
            section: "§4",
            summary: "a ConfigMap over 1 MiB is refused by the API server; a malformed one just under 1 MiB is rejected with a short error",
            lever: None,
            run: case_fn!(one_mebibyte_configmap),
        },
        Case {
            id: "BAD-005",
            feature: Feature::DiscoveryBadInput,
            section: "§2",
            summary: "foreign pods with malformed gomicro annotations or invalid label values leave the resolver's state intact",
            lever: None,
            run: case_fn!(foreign_pods),
        },
        Case {
            id: "BAD-006",
            feature: Feature::StrictInputValidation,
            section: "§5",
            summary: "empty, non-JSON, truncated, wrongly typed, array, 1 MiB, XML and text/plain login bodies are refused with 4xx in the error shape; admin-srv keeps serving",
            lever: None,
            run: case_fn!(bad_bodies_refused),
        },
        Case {
            id: "BAD-007",
            feature: Feature::LoginBadInput,
            section: "§5",
            summary: "malformed gRPC LoginRequest messages are answered (no hang, no crash); admin-srv keeps serving",
            lever: None,
            run: case_fn!(malformed_messages_answered),
        },
        Case {
            id: "BAD-008",
            feature: Feature::StrictInputValidation,
            section: "§5",
            summary: "malformed gRPC LoginRequest messages are refused with INVALID_ARGUMENT (or gRPC's INTERNAL decode error); admin-srv keeps serving",
            lever: None,
            run: case_fn!(malformed_messages_refused),
        },
    ]
}

/// The largest `data` the API server stores in one ConfigMap.
const CONFIGMAP_LIMIT: usize = 1024 * 1024;
/// A rejection message longer than this echoes the input instead of explaining it.
const MAX_REJECTION_LINE: usize = 4096;

/// Removes one data entry of a service's ConfigMap (JSON merge patch with `null`).
async fn remove_entry(ctx: &Ctx, service: &ServiceSpec, key: &str) -> Result<()> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client(), ctx.namespace());
    api.patch(
        &service.config_map,
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { key: null } })),
    )
    .await
    .with_context(|| format!("removing {key} from ConfigMap {}", service.config_map))?;
    Ok(())
}

/// Puts `value` under `data_key` of token-srv's ConfigMap and expects a clear rejection naming
/// the entry while the deployed key keeps signing; restores the ConfigMap afterwards.
async fn rejected_entry(ctx: &Ctx, data_key: &str, value: String) -> Result<Value> {
    let token = &ctx.profile.services.token;
    let pod = ctx.ready_pods(token).await?.remove(0);
    let before = identity(ctx, token).await?;
    let log_before = ctx.logs(&pod).await?.len();
    let entry = format!("{}/{}/{data_key}", ctx.namespace(), token.config_map);
    restore_token_config_afterwards(ctx);
    if data_key != CONFIG_KEY {
        let (service, key) = (token.clone(), data_key.to_string());
        ctx.on_cleanup(&format!("removing {data_key}"), move |ctx| {
            Box::pin(async move { remove_entry(ctx, &service, &key).await })
        });
    }
    configmap::set_entry(ctx, token, data_key, &value).await?;
    let rejection = wait_until(
        ctx.profile.timeouts.step,
        &format!("token-srv to reject {entry}"),
        || async {
            let log = ctx.logs(&pod).await?;
            Ok(log
                .get(log_before..)
                .unwrap_or(&log)
                .lines()
                .find(|l| reports_rejection(l, &entry))
                .map(String::from))
        },
    )
    .await?;
    if rejection.len() > MAX_REJECTION_LINE {
        bail!(
            "the rejection of {entry} is {} bytes long: it echoes the input instead of naming the problem",
            rejection.len()
        );
    }
    let reply = any_login(ctx).await?;
    let last_good =
        check_reply(ctx, &reply, &ctx.profile.expectations.api_key).with_context(|| {
            format!("after rejecting {entry}, tokens no longer verify with the last good key")
        })?;
    still_same_pods(ctx, token, &before).await?;
    Ok(json!({ "rejection": rejection_message(&rejection, &entry), "loginAfter": last_good }))
}

async fn malformed_yaml(ctx: &Ctx) -> Result<Value> {
    let text = "server:\n\tgrpc:\n\t\taddr: 0.0.0.0:9090\nauth:\n\tapi_key: from-tabs\n";
    rejected_entry(ctx, CONFIG_KEY, text.into()).await
}

async fn malformed_json(ctx: &Ctx) -> Result<Value> {
    let text = "{\"auth\": {\"api_key\": \"from-bad-json\",}}";
    rejected_entry(ctx, "config.json", text.into()).await
}

async fn unknown_extension(ctx: &Ctx) -> Result<Value> {
    let text = "[auth]\napi_key = \"from-toml\"\n";
    rejected_entry(ctx, "config.toml", text.into()).await
}

async fn one_mebibyte_configmap(ctx: &Ctx) -> Result<Value> {
    let token = &ctx.profile.services.token;
    let refused = configmap::set_entry(ctx, token, "padding", &"x".repeat(CONFIGMAP_LIMIT + 1))
        .await
        .err()
        .context("the API server stored a ConfigMap over 1 MiB")?;
    let status = refused
        .chain()
        .find_map(|e| match e.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(status)) => Some(status.code),
            _ => None,
        })
        .with_context(|| {
            format!("the oversized ConfigMap failed without an API status: {refused:#}")
        })?;
    // Just under the limit: one unclosed flow sequence of almost 1 MiB.
    let mut text = String::from("auth: [");
    text.push_str(&"x".repeat(CONFIGMAP_LIMIT - 8 * 1024));
    text.push('\n');
    let mut observed = rejected_entry(ctx, CONFIG_KEY, text).await?;
    observed["overLimitRefusedWith"] = json!(status);
    Ok(observed)
}

async fn foreign_pods(ctx: &Ctx) -> Result<Value> {
    let user = &ctx.profile.services.user;
    let replicas = discoverable_ids(ctx, user).await?.len();
    let before = identity(ctx, &ctx.profile.services.admin).await?;
    let admin_log_before = admin_log(ctx).await?.len();
    let image = idle_image(ctx);
    let api: Api<Pod> = Api::namespaced(ctx.client(), ctx.namespace());

    // Label values Kubernetes itself refuses never reach the registry.
    let mut invalid = foreign_pod(ctx, "invalid-label", &image, "{}", "{}");
    invalid.labels_mut().insert(
        ctx.profile.key("version"),
        "not a valid label value!".into(),
    );
    let refused = api
        .create(&PostParams::default(), &invalid)
        .await
        .err()
        .context("the API server accepted a pod with an invalid label value")?;
    let refused_code = match &refused {
        kube::Error::Api(status)
            if status.code == 422 && status.message.contains("metadata.labels") =>
        {
            status.code
        }
        other => bail!(
            "the invalid label value was not refused as an invalid metadata.labels value: {other}"
        ),
    };

    let malformed = [
        foreign_pod(ctx, "metadata", &image, "{not json", "{}"),
        foreign_pod(ctx, "protocols", &image, "{}", "{\"9090\": 9090}"),
    ];
    let names: Vec<String> = malformed.iter().map(|p| p.name_any()).collect();
    delete_afterwards(ctx, ctx.namespace(), &names);
    for pod in &malformed {
        api.create(&PostParams::default(), pod)
            .await
            .with_context(|| format!("creating foreign pod {}", pod.name_any()))?;
    }
    for name in &names {
        let ready = |pod: Option<&Pod>| pod.is_some_and(crate::pods::is_ready);
        let what = format!("foreign pod {name} to run and be Ready");
        wait_for(&api, name, ctx.profile.timeouts.step, &what, ready).await?;
    }
    let warnings = wait_until(
        ctx.profile.timeouts.step,
        "admin-srv to warn about each malformed foreign pod",
        || async {
            let log = admin_log(ctx).await?;
            let new = log.get(admin_log_before..).unwrap_or(&log);
            let warning = |name: &String| {
                new.lines()
                    .find(|l| l.contains(name.as_str()) && l.to_uppercase().contains("WARN"))
                    .map(|l| rejection_message(l, name))
            };
            Ok(names.iter().map(warning).collect::<Option<Vec<String>>>())
        },
    )
    .await?;
    let update = wait_in_sync(ctx, user, replicas).await?;
    let reply = any_login(ctx).await?;
    let login = check_reply(ctx, &reply, &ctx.profile.expectations.api_key)?;
    still_same_pods(ctx, &ctx.profile.services.admin, &before).await?;
    anyhow::Ok(json!({
        "invalidLabelRefusedWith": refused_code,
        "warnings": warnings,
        "resolverAfter": update.iter().map(|i| normalize::resolver_instance(i, &user.deployment)).collect::<Vec<_>>(),
        "loginAfter": login,
    }))
}

async fn bad_bodies_refused(ctx: &Ctx) -> Result<Value> {
    each_bad_body(ctx, refused).await
}

async fn malformed_messages_answered(ctx: &Ctx) -> Result<Value> {
    each_malformed_message(ctx, message_answered).await
}

async fn malformed_messages_refused(ctx: &Ctx) -> Result<Value> {
    each_malformed_message(ctx, message_refused).await
}
