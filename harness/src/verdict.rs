//! Running cases so that a verdict depends on the implementation alone (CONTRACT.md §8).
//!
//! - A case of an undeclared feature is skipped; a case needing a lever the backend lacks is
//!   not applicable; a case outside the selection is not selected. None of these runs.
//! - Before a case runs, the implementation must be as deployed (replica counts, ConfigMaps,
//!   Deployments available, every pod SERVING); the runner restores what a case
//!   left behind and waits up to the recovery timeout. A case that cannot start is "not run"
//!   and names what it waited for, instead of failing for "no ready pod".
//! - The body runs isolated: an error is the case's finding, a panic is a harness error of that
//!   case with its message and place, and the case timeout ends it. The restores it registered
//!   ([`Ctx::on_cleanup`]) run afterwards in every one of these cases, each with its own deadline.
//! - A container of the implementation that exits or restarts during a case, unless the case
//!   did it on purpose, fails that case, which is named as the trigger.
//!
//! The deadlines are the profile's `timeouts` (180 s per case, 120 s per restore and for the
//! recovery by default).

use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;

use crate::cases::{self, Case, MEASUREMENTS};
use crate::context::Ctx;
use crate::features::{Declared, Feature};
use crate::stability::Termination;
use crate::{deploy, manifests};

/// How one case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// It ran and every assertion held.
    Passed,
    /// It ran and an assertion failed (or the harness failed in it: the reason says so).
    Failed,
    /// Its feature is not declared by the profile.
    Skipped,
    /// It needs a lever the backend lacks; it counts for no feature.
    NotApplicable,
    /// The implementation was not back as deployed when it should have started.
    NotRun,
    /// Left out by `--case` / `--feature`.
    NotSelected,
}

impl Outcome {
    /// The word every report uses.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::NotApplicable => "not applicable",
            Outcome::NotRun => "not run",
            Outcome::NotSelected => "not selected",
        }
    }

    /// Whether the case ran.
    pub fn ran(self) -> bool {
        matches!(self, Outcome::Passed | Outcome::Failed)
    }
}

/// The result of running (or not running) one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// Case ID.
    pub id: String,
    /// The feature it checks.
    pub feature: Feature,
    /// What it proves.
    pub summary: String,
    /// Its outcome.
    pub outcome: Outcome,
    /// Why it failed or did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long it took.
    pub duration: Duration,
    /// Normalised observations (empty unless passed).
    #[serde(skip)]
    pub observations: serde_json::Value,
    /// Run-dependent figures the case measured (timings, counts), for the report.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub measurements: serde_json::Map<String, serde_json::Value>,
}

impl CaseResult {
    /// The result of a case that did not run.
    pub(crate) fn unrun(case: &Case, outcome: Outcome, reason: Option<String>) -> CaseResult {
        CaseResult {
            id: case.id.into(),
            feature: case.feature,
            summary: case.summary.into(),
            outcome,
            reason,
            duration: Duration::ZERO,
            observations: serde_json::Value::Null,
            measurements: serde_json::Map::new(),
        }
    }
}

/// Runs cases one after the other on one deployment, carrying what a later case needs to know
/// about an earlier one (the last unexpected crash, for "not run" reasons).
pub(crate) struct Runner<'a> {
    ctx: &'a Ctx,
    declared: &'a Declared,
    /// The last disruption the implementation may still be recovering from.
    last_disruption: Mutex<Option<String>>,
}

impl<'a> Runner<'a> {
    /// A runner for the profile's `declared` features on `ctx`.
    pub(crate) fn new(ctx: &'a Ctx, declared: &'a Declared) -> Runner<'a> {
        Runner {
            ctx,
            declared,
            last_disruption: Mutex::new(None),
        }
    }

    /// Runs the selected cases (all when `only` is empty) in registry order; the others are
    /// reported as not selected.
    pub(crate) async fn run_all(&self, only: &[String]) -> Vec<CaseResult> {
        let mut results = Vec::new();
        for case in cases::all() {
            if only.is_empty() || only.iter().any(|id| id == case.id) {
                results.push(self.run(&case).await);
            } else {
                let reason = "not selected by --case / --feature".to_string();
                results.push(CaseResult::unrun(&case, Outcome::NotSelected, Some(reason)));
            }
        }
        results
    }

    /// Runs one case: skipped, not applicable, not run or its verdict (see the module doc).
    pub(crate) async fn run(&self, case: &Case) -> CaseResult {
        let ctx = self.ctx;
        if !self.declared.contains(&case.feature) {
            let reason = format!("feature {} is not declared by the profile", case.feature);
            return CaseResult::unrun(case, Outcome::Skipped, Some(reason));
        }
        if let Some(reason) = case.lever.and_then(|lever| ctx.cluster.lacks(lever)) {
            eprintln!("[case] {} {reason}", case.id);
            return CaseResult::unrun(case, Outcome::NotApplicable, Some(reason));
        }
        let start = Instant::now();
        if let Err(error) = self.recover().await {
            let after = self
                .last_disruption
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_else(|| "the previous case".into());
            let reason = format!(
                "not run: the implementation did not recover after {after} within {:?}: {}",
                ctx.profile.timeouts.recovery,
                self.redact(&format!("{error:#}"))
            );
            eprintln!("[case] {} {reason}", case.id);
            let mut result = CaseResult::unrun(case, Outcome::NotRun, Some(reason));
            result.duration = start.elapsed();
            return result;
        }
        eprintln!("[case] {} {} ...", case.id, case.summary);
        ctx.set_stability_phase(case.id, true);
        let mut result = CaseResult::unrun(case, Outcome::Failed, None);
        let body = AssertUnwindSafe((case.run)(ctx)).catch_unwind();
        let case_timeout = ctx.profile.timeouts.case;
        let (ended, mut crashes) =
            until_crash(ctx, case.id, tokio::time::timeout(case_timeout, body)).await;
        match ended {
            // `fail_for_crashes` below puts the crash first in the reason.
            None => result.reason = Some(STOPPED_AT_CRASH.to_string()),
            Some(Ok(Ok(Ok(mut observations)))) => {
                result.outcome = Outcome::Passed;
                if let Some(serde_json::Value::Object(measured)) = observations
                    .as_object_mut()
                    .and_then(|o| o.remove(MEASUREMENTS))
                {
                    result.measurements = measured;
                }
                result.observations = observations;
            }
            Some(Ok(Ok(Err(error)))) => result.reason = Some(self.redact(&format!("{error:#}"))),
            Some(Ok(Err(panic))) => {
                result.reason = Some(format!(
                    "harness error in {}: {}",
                    case.id,
                    self.redact(&panic_text(panic.as_ref()))
                ));
            }
            Some(Err(_)) => {
                result.reason = Some(format!("did not finish within {case_timeout:?}"));
            }
        }
        for failure in run_cleanups(ctx).await {
            let failure = self.redact(&failure);
            eprintln!("[case] {} {failure}", case.id);
            result.outcome = Outcome::Failed;
            result.observations = serde_json::Value::Null;
            result.reason = Some(match result.reason.take() {
                Some(earlier) => format!("{earlier}; {failure}"),
                None => failure,
            });
        }
        // Terminations that finished before this case began (reported late) are the run's to
        // attribute (see `fail_for_crashes`).
        crashes.extend(ctx.unexpected_terminations().await);
        ctx.set_stability_phase("between cases", false);
        fail_for_crashes(&mut result, &crashes);
        if let Some(crash) = crashes.iter().find(|c| c.during == case.id) {
            *self
                .last_disruption
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(crash.summary());
        } else if result
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("did not finish"))
        {
            *self
                .last_disruption
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(format!("{} ran out of time", case.id));
        }
        result.duration = start.elapsed();
        eprintln!(
            "[case] {} {} in {:.1} s{}",
            case.id,
            match result.outcome {
                Outcome::Failed => "FAILED",
                other => other.word(),
            },
            result.duration.as_secs_f64(),
            result
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        result
    }

    fn redact(&self, text: &str) -> String {
        self.ctx.secrets.redactor().redact(text).into_owned()
    }

    /// Brings the implementation back as deployed, within the recovery timeout.
    async fn recover(&self) -> Result<()> {
        as_deployed(
            self.ctx,
            Instant::now() + self.ctx.profile.timeouts.recovery,
        )
        .await
    }
}

/// Runs the restores the case registered, newest first, each within the clean-up timeout and
/// isolated like a body; returns a line per restore that failed.
async fn run_cleanups(ctx: &Ctx) -> Vec<String> {
    let timeout = ctx.profile.timeouts.cleanup;
    let mut failures = Vec::new();
    for (what, restore) in ctx.take_cleanups() {
        let run = AssertUnwindSafe(restore(ctx)).catch_unwind();
        let failure = match tokio::time::timeout(timeout, run).await {
            Ok(Ok(Ok(()))) => continue,
            Ok(Ok(Err(error))) => format!("{error:#}"),
            Ok(Err(panic)) => format!("harness error: {}", panic_text(panic.as_ref())),
            Err(_) => format!("did not finish within {timeout:?}"),
        };
        failures.push(format!("clean-up failed, {what}: {failure}"));
    }
    failures
}

/// Restores what the manifests define and cases change (ConfigMap data, replica counts), then
/// waits until every Deployment is available, every service's pods answer SERVING and none of
/// them is terminating.
async fn as_deployed(ctx: &Ctx, deadline: Instant) -> Result<()> {
    let left = || deadline.saturating_duration_since(Instant::now());
    let client = ctx.client();
    let namespace = ctx.namespace();
    let manifests = manifests::load(&ctx.profile.manifests)?;
    let in_namespace = |kind: &str| {
        manifests
            .iter()
            .filter(move |m| {
                m.kind() == kind && m.object.metadata.namespace.as_deref() == Some(namespace)
            })
            .collect::<Vec<_>>()
    };
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let mut drifted = Vec::new();
    for manifest in in_namespace("ConfigMap") {
        let wanted = manifest.object.data.get("data").cloned();
        let live = configmaps
            .get_opt(manifest.name())
            .await?
            .map(|c| serde_json::to_value(c.data.unwrap_or_default()))
            .transpose()?;
        let wanted = wanted.unwrap_or_else(|| serde_json::json!({}));
        if live.as_ref() != Some(&wanted) {
            drifted.push(manifest.clone());
        }
    }
    if !drifted.is_empty() {
        let names: Vec<&str> = drifted.iter().map(|m| m.name()).collect();
        eprintln!("[recover] restoring ConfigMap(s) {}", names.join(", "));
        deploy::apply(&client, &drifted).await?;
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    for manifest in in_namespace("Deployment") {
        let wanted = manifest.object.data["spec"]["replicas"]
            .as_i64()
            .unwrap_or(1);
        let live = deployments
            .get(manifest.name())
            .await
            .with_context(|| format!("deployment {} is gone", manifest.name()))?;
        let replicas = live.spec.and_then(|s| s.replicas).unwrap_or(1);
        if i64::from(replicas) != wanted {
            eprintln!(
                "[recover] scaling {} back from {replicas} to {wanted}",
                manifest.name()
            );
            deployments
                .patch(
                    manifest.name(),
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({ "spec": { "replicas": wanted } })),
                )
                .await?;
        }
    }
    // Registration is not waited for: whether pods register is what the REG and RES cases
    // judge, so an implementation that never does still gets their verdicts.
    for (_, service) in ctx.profile.all_services() {
        deploy::wait_rolled_out(&client, namespace, &service.deployment, left()).await?;
        ctx.wait_serving(service, left()).await?;
        // A pod the last case deleted may still be terminating, and an implementation may still
        // route to it (Core discovery may list terminating pods; E2.1 is Extended): the next
        // case starts once it is gone, so its first call never meets a server shutting down.
        let what = format!("the terminating pods of {} to be gone", service.deployment);
        crate::wait::wait_until(left(), &what, || async {
            let pods = crate::pods::all_pods(&client, namespace, service).await?;
            let terminating = pods.iter().any(|p| p.metadata.deletion_timestamp.is_some());
            Ok((!terminating).then_some(()))
        })
        .await?;
    }
    Ok(())
}

/// The reason of a case stopped by [`until_crash`], after the crash's own description.
const STOPPED_AT_CRASH: &str = "the case was stopped when the crash was seen (its remaining steps could not change the verdict)";

/// Runs a case's `body` until it ends or until a container of the implementation exits or
/// restarts during the case without the case causing it: the case has failed then (CONTRACT.md
/// §7, "Any implementation"), and waiting out its timeouts would only delay the verdict.
/// Returns the body's output (`None` when stopped) and the unexpected terminations taken on the
/// way; one the crash watch places in another phase (reported late) does not stop the case.
async fn until_crash<F: Future>(
    ctx: &Ctx,
    case: &str,
    body: F,
) -> (Option<F::Output>, Vec<Termination>) {
    let mut taken = Vec::new();
    let Some(mut seen) = ctx.unexpected_seen() else {
        return (Some(body.await), taken);
    };
    seen.mark_unchanged();
    let mut body = std::pin::pin!(body);
    loop {
        tokio::select! {
            output = &mut body => return (Some(output), taken),
            changed = seen.changed() => {
                if changed.is_err() {
                    return (Some(body.await), taken);
                }
                let new = ctx.unexpected_terminations().await;
                let ours = new.iter().any(|t| t.during == case);
                taken.extend(new);
                if ours {
                    eprintln!("[case] {case} stopped: a container of the implementation exited during it");
                    return (None, taken);
                }
            }
        }
    }
}

/// Fails `result` for each unexpected container exit or restart that happened during its case
/// (CONTRACT.md §7, "Any implementation") and that its reason does not name yet; the case is
/// named as the trigger.
pub(crate) fn fail_for_crashes(result: &mut CaseResult, crashes: &[Termination]) {
    let named = |line: &str| result.reason.as_deref().is_some_and(|r| r.contains(line));
    let list: Vec<String> = crashes
        .iter()
        .filter(|c| c.during == result.id)
        .map(|c| c.describe())
        .filter(|line| !named(line))
        .collect();
    if list.is_empty() {
        return;
    }
    let mut reason = format!(
        "a container of the implementation exited or restarted during {}, which did not cause it on purpose (the case is its trigger): {}",
        result.id,
        list.join("; ")
    );
    if let Some(earlier) = &result.reason {
        reason.push_str(&format!("; besides: {earlier}"));
    }
    result.outcome = Outcome::Failed;
    result.reason = Some(reason);
    result.observations = serde_json::Value::Null;
}

/// Where the last panic happened, recorded by the hook [`install_panic_hook`] sets.
static LAST_PANIC_PLACE: Mutex<Option<String>> = Mutex::new(None);

/// Records each panic's place for [`panic_text`] and keeps the previous hook's output.
pub(crate) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(place) = info.location() {
                *LAST_PANIC_PLACE.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(format!("{}:{}", place.file(), place.line()));
            }
            previous(info);
        }));
    });
}

/// A panic's message and, when known, where it happened.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into());
    match LAST_PANIC_PLACE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        Some(place) => format!("{message} (at {place})"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_told_with_its_message_and_place() {
        install_panic_hook();
        let panic = std::panic::catch_unwind(|| {
            let index = std::hint::black_box(7);
            [1, 2, 3][index]
        })
        .unwrap_err();
        let text = panic_text(panic.as_ref());
        assert!(text.contains("index out of bounds"), "{text}");
        assert!(text.contains("verdict.rs:"), "{text}");
    }

    #[test]
    fn only_passed_and_failed_cases_ran() {
        let ran: Vec<Outcome> = [
            Outcome::Passed,
            Outcome::Failed,
            Outcome::Skipped,
            Outcome::NotApplicable,
            Outcome::NotRun,
            Outcome::NotSelected,
        ]
        .into_iter()
        .filter(|o| o.ran())
        .collect();
        assert_eq!(ran, [Outcome::Passed, Outcome::Failed]);
        assert_eq!(
            serde_json::to_value(Outcome::NotApplicable).unwrap(),
            "notApplicable"
        );
    }
}
