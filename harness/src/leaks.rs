//! Where an implementation could leak a secret, and finding secrets there (CONTRACT.md §5,
//! secret hygiene). The places, precisely:
//!
//! - the log of every container (init containers included) of every pod of the profile's three
//!   Deployments, current and previous instance;
//! - those pods' labels and annotations (what the implementation's registration writes);
//! - every ConfigMap of the namespace except the signing key's own source (the token service's
//!   ConfigMap): data, binaryData, labels and annotations;
//! - every Event of the namespace (all its string fields).
//!
//! A secret counts when it stands alone (no letter or digit right before or after it, so
//! `123456` inside a timestamp's `.123456Z` does not); a JWT-shaped string always counts.
//! Findings name the place (pod, container, line; or object kind, name and field), never
//! the secret.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams};
use serde_json::Value;

use crate::context::Ctx;
use crate::normalize;
use crate::pods;
use crate::secrets::{Redactor, SecretKind};

/// One secret found somewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leak {
    /// Where: `pod P container C line N`, `ConfigMap M field data.x line N`, ...
    pub place: String,
    pub kind: SecretKind,
}

impl std::fmt::Display for Leak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.place, self.kind.describe())
    }
}

/// What a scan covered, normalised for snapshots (pod-name hashes hidden; counts that vary
/// with the run's history, such as events or previous instances, left out).
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Coverage {
    /// `<pod>/<container>` of every current container log read.
    pub container_logs: Vec<String>,
    /// Pods whose labels and annotations were read.
    pub pod_metadata: Vec<String>,
    /// The ConfigMap left out as the signing key's source.
    pub config_map_excluded: String,
    /// Whether the namespace's events were read.
    pub events: bool,
}

/// Longest wait for a container's log to stop growing before it is read for good.
const SETTLE_DEADLINE: Duration = Duration::from_secs(5);
/// Interval of the log reads that decide whether a log has settled.
const SETTLE_POLL: Duration = Duration::from_millis(100);

/// Scans every place listed in the module doc for what `redactor` knows.
pub(crate) async fn scan(ctx: &Ctx, redactor: &Redactor) -> Result<(Coverage, Vec<Leak>)> {
    let mut coverage = Coverage {
        config_map_excluded: ctx.profile.services.token.config_map.clone(),
        ..Coverage::default()
    };
    let mut leaks = Vec::new();
    for (_, service) in ctx.profile.all_services() {
        for pod in pods::all_pods(&ctx.client(), ctx.namespace(), service).await? {
            let name = pod.name_any();
            let shown = normalize::pod_name(&name, &service.deployment);
            for (key, value) in pod.labels() {
                leaks.extend(in_text(redactor, value, &format!("pod {name} label {key}")));
            }
            for (key, value) in pod.annotations() {
                leaks.extend(in_text(
                    redactor,
                    value,
                    &format!("pod {name} annotation {key}"),
                ));
            }
            coverage.pod_metadata.push(shown.clone());
            for (container, started, has_previous) in containers(&pod) {
                let place = format!("pod {name} container {container}");
                if started {
                    let log = settled_log(ctx, &name, &container, false).await?;
                    leaks.extend(in_text(redactor, &log, &place));
                    coverage.container_logs.push(format!("{shown}/{container}"));
                }
                if has_previous {
                    let log = settled_log(ctx, &name, &container, true).await?;
                    let place = format!("{place} (previous instance)");
                    leaks.extend(in_text(redactor, &log, &place));
                }
            }
        }
    }
    let maps = Api::<ConfigMap>::namespaced(ctx.client(), ctx.namespace())
        .list(&ListParams::default())
        .await
        .context("listing the namespace's ConfigMaps")?;
    for map in maps.items {
        if map.name_any() == coverage.config_map_excluded {
            continue;
        }
        let place = format!("ConfigMap {}", map.name_any());
        let mut value = serde_json::json!({
            "data": map.data,
            "labels": map.metadata.labels,
            "annotations": map.metadata.annotations,
        });
        for (key, bytes) in map.binary_data.iter().flatten() {
            value["binaryData"][key] = Value::String(String::from_utf8_lossy(&bytes.0).into());
        }
        leaks.extend(in_object(redactor, &value, &place));
    }
    let events = Api::<Event>::namespaced(ctx.client(), ctx.namespace())
        .list(&ListParams::default())
        .await
        .context("listing the namespace's events")?;
    for event in events.items {
        let place = format!("Event {}", event.name_any());
        leaks.extend(in_object(redactor, &serde_json::to_value(&event)?, &place));
    }
    coverage.events = true;
    // Several pods of a service (during a rollout) are one entry each.
    for list in [&mut coverage.container_logs, &mut coverage.pod_metadata] {
        list.sort();
        list.dedup();
    }
    Ok((coverage, leaks))
}

/// The containers of a pod (init first) that have a log: `(name, current instance started,
/// previous instance exists)`. A container that never started wrote nothing.
fn containers(pod: &Pod) -> Vec<(String, bool, bool)> {
    let statuses = pod.status.iter().flat_map(|s| {
        let init = s.init_container_statuses.iter().flatten();
        init.chain(s.container_statuses.iter().flatten())
    });
    statuses
        .map(|s| {
            let state = s.state.as_ref();
            let started = state.is_some_and(|s| s.running.is_some() || s.terminated.is_some());
            let previous = s
                .last_state
                .as_ref()
                .is_some_and(|l| l.terminated.is_some());
            (s.name.clone(), started, previous)
        })
        .filter(|(_, started, previous)| *started || *previous)
        .collect()
}

/// A container's log once two reads [`SETTLE_POLL`] apart agree (lines still in the runtime's
/// pipe are then in it), or the last read after [`SETTLE_DEADLINE`].
async fn settled_log(ctx: &Ctx, pod: &str, container: &str, previous: bool) -> Result<String> {
    let api: Api<Pod> = Api::namespaced(ctx.client(), ctx.namespace());
    let params = LogParams {
        container: Some(container.to_string()),
        previous,
        ..LogParams::default()
    };
    let read = || async {
        api.logs(pod, &params)
            .await
            .with_context(|| format!("reading the log of pod {pod} container {container}"))
    };
    let started = Instant::now();
    let mut last = read().await?;
    while started.elapsed() < SETTLE_DEADLINE {
        tokio::time::sleep(SETTLE_POLL).await;
        let now = read().await?;
        if now == last {
            break;
        }
        last = now;
    }
    Ok(last)
}

/// Secrets in a text, by line: `<place> line N`.
pub(crate) fn in_text(redactor: &Redactor, text: &str, place: &str) -> Vec<Leak> {
    let multi_line = text.contains('\n');
    let mut leaks = Vec::new();
    for (index, line) in text.lines().enumerate() {
        for found in redactor.find(line) {
            if found.standalone || found.kind == SecretKind::Token {
                let place = if multi_line {
                    format!("{place} line {}", index + 1)
                } else {
                    place.to_string()
                };
                leaks.push(Leak {
                    place,
                    kind: found.kind,
                });
            }
        }
    }
    leaks
}

/// Secrets in every string of a JSON value: `<place> field a.b.c [line N]`.
pub(crate) fn in_object(redactor: &Redactor, value: &Value, place: &str) -> Vec<Leak> {
    let mut leaks = Vec::new();
    walk(value, String::new(), &mut |path, text| {
        leaks.extend(in_text(redactor, text, &format!("{place} field {path}")));
    });
    leaks
}

fn walk(value: &Value, path: String, visit: &mut dyn FnMut(&str, &str)) {
    let child = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::String(text) => visit(&path, text),
        Value::Object(map) => {
            for (key, value) in map {
                walk(value, child(key), visit);
            }
        }
        Value::Array(items) => {
            for (index, value) in items.iter().enumerate() {
                walk(value, format!("{path}[{index}]"), visit);
            }
        }
        _ => {}
    }
}

/// A failure reason naming every leak (the first 20, then a count), never a secret.
pub(crate) fn describe(leaks: &[Leak]) -> String {
    const SHOWN: usize = 20;
    let mut text = format!(
        "{} secret(s) found (values not shown): {}",
        leaks.len(),
        leaks
            .iter()
            .take(SHOWN)
            .map(Leak::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    );
    if leaks.len() > SHOWN {
        text.push_str(&format!("; and {} more", leaks.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn redactor() -> Redactor {
        Redactor::new([
            ("123456".to_string(), SecretKind::DemoPassword),
            ("conformance-key-1".to_string(), SecretKind::ApiKey),
        ])
    }

    #[test]
    fn log_leaks_are_named_by_line_and_timestamps_do_not_count() {
        let log = "starting\n2026-12-01T23:00:00.123456Z INFO ok\nINFO args=userName:\"thangn\" password:\"123456\"\nkey conformance-key-1 token eyJhbGciOi.eyJzdWIi.c2ln\n";
        let leaks = in_text(&redactor(), log, "pod admin-srv-x container admin-srv");
        let shown: Vec<String> = leaks.iter().map(Leak::to_string).collect();
        assert_eq!(
            shown,
            [
                "pod admin-srv-x container admin-srv line 3: the demo user's password",
                "pod admin-srv-x container admin-srv line 4: an auth.api_key value",
                "pod admin-srv-x container admin-srv line 4: a JWT (issued token)",
            ]
        );
        assert!(!describe(&leaks).contains("123456"));
        assert!(describe(&leaks).starts_with("3 secret(s) found"));
    }

    #[test]
    fn object_leaks_are_named_by_field() {
        let object = json!({ "data": { "config.yaml": "a: 1\npassword: 123456\n" }, "labels": { "app": "x" }, "list": ["conformance-key-1"] });
        let shown: Vec<String> = in_object(&redactor(), &object, "ConfigMap cache")
            .iter()
            .map(Leak::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "ConfigMap cache field data.config.yaml line 2: the demo user's password",
                "ConfigMap cache field list[0]: an auth.api_key value",
            ]
        );
    }
}
