//! Crash detection (CONTRACT.md §7, "Any implementation"): a watch on the implementation's
//! pods for the whole run that records every container exit, restart or OOM kill. One that no
//! case caused on purpose fails the case that was running and is named in every report.
//!
//! A termination is caused on purpose when its pod was being deleted (a case, a scale-down or
//! a rollout removed it) or when the running case marked restarts of that Deployment as
//! expected ([`StabilityWatch::expect_restarts`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams, LogParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde::Serialize;

use crate::profile::Profile;

/// How long the watch may take to list the pods that exist when it starts.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// Lines of the previous container's log kept with an unexpected termination.
const PREVIOUS_LOG_LINES: i64 = 20;

/// One container exit or restart seen during the run.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Termination {
    pub pod: String,
    pub container: String,
    /// The Deployment the pod belongs to.
    pub deployment: String,
    /// Absent when only a grown restart count was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// The runtime's reason (`Error`, `OOMKilled`, `Completed`, ...).
    pub reason: String,
    /// When the container finished (RFC 3339), as the node reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The container's restart count when this was seen.
    pub restart_count: i32,
    /// The case running when it was seen, or the phase of the run.
    pub during: String,
    /// Why it was caused on purpose; absent for an unexpected termination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// The last lines of the terminated container's log (`previous=true`), unexpected ones only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_log: Option<String>,
}

impl Termination {
    /// One line: pod, container, exit code, reason and time.
    pub fn describe(&self) -> String {
        let exit = match (self.exit_code, self.signal) {
            (Some(code), Some(signal)) => format!("exit code {code} (signal {signal})"),
            (Some(code), None) => format!("exit code {code}"),
            (None, _) => "exit code unknown".to_string(),
        };
        format!(
            "pod {} container {} {exit} ({}) at {}, restart count {}, during {}",
            self.pod,
            self.container,
            self.reason,
            self.finished_at.as_deref().unwrap_or("unknown time"),
            self.restart_count,
            self.during
        )
    }
}

impl Termination {
    /// A few words naming the crash: `pod <pod> exited (code 2) in <case>`.
    pub fn summary(&self) -> String {
        let code = self.exit_code.map_or_else(
            || "restarted".to_string(),
            |c| format!("exited with code {c}"),
        );
        format!("pod {} {code} in {}", self.pod, self.during)
    }
}

/// The run-level stability record written into every report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stability {
    /// What was watched (empty when nothing was).
    pub watched: String,
    /// Terminations no case caused on purpose.
    pub unexpected: Vec<Termination>,
    /// Terminations cases caused on purpose.
    pub expected: Vec<Termination>,
}

impl Stability {
    /// Whether the implementation's pods were watched at all.
    pub fn is_watched(&self) -> bool {
        !self.watched.is_empty()
    }

    /// The one-line summary every report carries.
    pub fn line(&self) -> String {
        if !self.is_watched() {
            return "implementation pods not watched".to_string();
        }
        let on_purpose = match self.expected.len() {
            0 => String::new(),
            n => format!("; {n} caused on purpose by cases"),
        };
        if self.unexpected.is_empty() {
            format!(
                "no unexpected container exit or restart seen ({}{on_purpose})",
                self.watched
            )
        } else {
            let list: Vec<String> = self.unexpected.iter().map(Termination::describe).collect();
            format!(
                "{} unexpected container exit(s) or restart(s): {}{on_purpose}",
                self.unexpected.len(),
                list.join("; ")
            )
        }
    }
}

/// What one container has shown so far.
#[derive(Debug, Default)]
struct ContainerSeen {
    restart_count: i32,
    terminations: BTreeSet<String>,
    /// Terminations seen whose restart the restart count does not show yet.
    unrestarted: i32,
}

/// A stretch of the run: a case (by ID) or a phase around them.
#[derive(Debug)]
struct Phase {
    name: String,
    is_case: bool,
    /// When it began, in Unix seconds.
    started: f64,
    /// Deployments whose restarts it causes on purpose.
    expected_restarts: BTreeSet<String>,
}

impl Phase {
    /// Why a restart of `deployment`'s pods during this phase was caused on purpose, if it was.
    fn caused(&self, deployment: &str) -> Option<String> {
        self.expected_restarts
            .contains(deployment)
            .then(|| format!("{} restarts {deployment} on purpose", self.name))
    }

    fn new(name: &str, is_case: bool) -> Phase {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Phase {
            name: name.to_string(),
            is_case,
            started: now,
            expected_restarts: BTreeSet::new(),
        }
    }
}

/// The state the watch task and the case runner share.
#[derive(Debug, Default)]
struct Tracker {
    deployments: Vec<String>,
    containers: BTreeMap<(String, String), ContainerSeen>,
    /// Every phase so far, the current one last (never empty once started).
    phases: Vec<Phase>,
    seen: Vec<Termination>,
    /// How many of `seen` were already handed to a case or the run.
    taken: usize,
}

impl Tracker {
    fn new(deployments: Vec<String>, phase: &str) -> Tracker {
        Tracker {
            deployments,
            phases: vec![Phase::new(phase, false)],
            ..Default::default()
        }
    }

    /// The phase a termination of `deployment`'s pod belongs to: the one running when the
    /// container finished (it may be reported after that phase ended), else the current one.
    /// `finishedAt` has whole seconds; `last_output`, the time the runtime read the container's
    /// last log line, narrows that second down (it is read a little after it was written, so an
    /// exit right at a phase's end can land in the next one). Of the phases running then, one
    /// that restarts `deployment` on purpose wins (a case kills a pod right after the previous
    /// case ended), else the first case, else the first phase.
    fn phase_at(
        &self,
        deployment: &str,
        finished: Option<f64>,
        last_output: Option<f64>,
    ) -> Option<&Phase> {
        let Some(second) = finished.map(f64::floor) else {
            return self.phases.last();
        };
        let from = last_output
            .filter(|t| (second..second + 1.0).contains(t))
            .unwrap_or(second);
        let ends = self
            .phases
            .iter()
            .skip(1)
            .map(|p| p.started)
            .chain([f64::INFINITY]);
        let running: Vec<&Phase> = self
            .phases
            .iter()
            .zip(ends)
            .filter(|(p, end)| p.started < second + 1.0 && *end > from)
            .map(|(p, _)| p)
            .collect();
        running
            .iter()
            .find(|p| p.expected_restarts.contains(deployment))
            .or_else(|| running.iter().find(|p| p.is_case))
            .or(running.first())
            .copied()
            .or(self.phases.first())
    }

    /// The Deployment a pod belongs to (through its ReplicaSet's name), if one of the profile's.
    fn deployment_of(&self, pod: &Pod) -> Option<String> {
        let owner = pod
            .owner_references()
            .iter()
            .find(|o| o.kind == "ReplicaSet")?;
        self.deployments
            .iter()
            .find(|d| {
                owner
                    .name
                    .strip_prefix(d.as_str())
                    .and_then(|rest| rest.strip_prefix('-'))
                    // A ReplicaSet is named `<deployment>-<pod-template-hash>`.
                    .is_some_and(|hash| !hash.is_empty() && !hash.contains('-'))
            })
            .cloned()
    }

    /// Records what a pod's container statuses show that was not seen before. With
    /// `baseline`, what the pod shows is remembered but not reported (it predates the watch).
    /// Returns how many of the new terminations no phase caused on purpose.
    fn observe(&mut self, pod: &Pod, baseline: bool) -> usize {
        let Some(deployment) = self.deployment_of(pod) else {
            return 0;
        };
        let mut unexpected = 0;
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default();
        for status in statuses {
            let key = (pod.uid().unwrap_or_default(), status.name.clone());
            let seen = self.containers.entry(key).or_default();
            let mut found = Vec::new();
            for terminated in terminations_of(&status) {
                if seen.terminations.insert(termination_id(terminated)) {
                    found.push(terminated.clone());
                }
            }
            // A termination first shows as the current state, then (restarted) as the last
            // state with a grown restart count: a growth it explains is not another restart.
            seen.unrestarted += i32::try_from(found.len()).unwrap_or(i32::MAX);
            let grown = (status.restart_count - seen.restart_count).max(0);
            seen.restart_count = seen.restart_count.max(status.restart_count);
            let explained = grown.min(seen.unrestarted);
            seen.unrestarted -= explained;
            let unexplained = grown > explained;
            if baseline {
                continue;
            }
            let records: Vec<Option<&ContainerStateTerminated>> = found
                .iter()
                .map(Some)
                .chain(unexplained.then_some(None))
                .collect();
            for terminated in records {
                let finished = terminated.and_then(|t| t.finished_at.as_ref());
                let phase =
                    self.phase_at(&deployment, finished.map(|t| t.0.as_second() as f64), None);
                let during = phase.map(|p| p.name.clone()).unwrap_or_default();
                let expected = if deleting {
                    Some("its pod was being deleted".to_string())
                } else {
                    phase.and_then(|p| p.caused(&deployment))
                };
                unexpected += usize::from(expected.is_none());
                self.seen.push(Termination {
                    pod: pod.name_any(),
                    container: status.name.clone(),
                    deployment: deployment.clone(),
                    exit_code: terminated.map(|t| t.exit_code),
                    signal: terminated.and_then(|t| t.signal),
                    reason: terminated
                        .and_then(|t| t.reason.clone())
                        .unwrap_or_else(|| "Restarted".to_string()),
                    finished_at: finished.map(|t| t.0.to_string()),
                    restart_count: status.restart_count,
                    during,
                    expected,
                    previous_log: None,
                });
            }
        }
        unexpected
    }

    /// Terminations seen since the last call.
    fn take_new(&mut self) -> Vec<Termination> {
        let new = self.seen[self.taken..].to_vec();
        self.taken = self.seen.len();
        new
    }
}

/// Unix seconds of an RFC 3339 time.
fn unix_seconds(time: &str) -> Option<f64> {
    let time = humantime::parse_rfc3339(time).ok()?;
    Some(
        time.duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs_f64(),
    )
}

/// The time of the last line of a log read with `timestamps=true`.
fn last_line_time(log: &str) -> Option<f64> {
    let line = log.lines().rev().find(|l| !l.trim().is_empty())?;
    unix_seconds(line.split_whitespace().next()?)
}

/// The current and the last termination of a container.
fn terminations_of(status: &ContainerStatus) -> impl Iterator<Item = &ContainerStateTerminated> {
    let current = status.state.as_ref().and_then(|s| s.terminated.as_ref());
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref());
    last.into_iter().chain(current)
}

/// Identifies one termination across status updates (it moves from `state` to `lastState`).
fn termination_id(t: &ContainerStateTerminated) -> String {
    format!(
        "{:?}|{:?}|{:?}|{}",
        t.container_id,
        t.started_at.as_ref().map(|s| s.0.to_string()),
        t.finished_at.as_ref().map(|s| s.0.to_string()),
        t.exit_code
    )
}

/// A running watch on the implementation's pods; stops when dropped.
pub(crate) struct StabilityWatch {
    api: Api<Pod>,
    tracker: Arc<Mutex<Tracker>>,
    watched: String,
    /// Counts the terminations the watch saw that no phase caused on purpose.
    unexpected_seen: tokio::sync::watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StabilityWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StabilityWatch {
    /// Starts watching the pods of the profile's Deployments, labelling what it sees with
    /// `phase` until the first case begins. What the pods already show is the baseline.
    pub(crate) async fn start(
        client: &kube::Client,
        profile: &Profile,
        phase: &str,
    ) -> Result<StabilityWatch> {
        let api: Api<Pod> = Api::namespaced(client.clone(), &profile.namespace);
        let deployments: Vec<String> = profile
            .all_services()
            .iter()
            .map(|(_, s)| s.deployment.clone())
            .collect();
        let watched = format!(
            "pods of Deployments {} in namespace {}",
            deployments.join(", "),
            profile.namespace
        );
        let tracker = Arc::new(Mutex::new(Tracker::new(deployments, phase)));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (seen_tx, unexpected_seen) = tokio::sync::watch::channel(0);
        let task = tokio::spawn(watch(api.clone(), tracker.clone(), ready_tx, seen_tx));
        tokio::time::timeout(START_DEADLINE, ready_rx)
            .await
            .with_context(|| {
                format!("the watch on {watched} did not list them within {START_DEADLINE:?}")
            })?
            .context("the pod watch ended before it listed the pods")?;
        eprintln!("[stability] watching {watched}");
        Ok(StabilityWatch {
            api,
            tracker,
            watched,
            unexpected_seen,
            task,
        })
    }

    /// Changes each time the watch sees a termination that no phase caused on purpose (a
    /// first guess, before [`StabilityWatch::take_unexpected`] places it with its log).
    pub(crate) fn unexpected_seen(&self) -> tokio::sync::watch::Receiver<u64> {
        self.unexpected_seen.clone()
    }

    fn tracker(&self) -> std::sync::MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Begins a new phase, a case (by ID) or a phase of the run: containers that finish from
    /// now on belong to it, whenever their termination is reported.
    pub(crate) fn set_phase(&self, phase: &str, is_case: bool) {
        self.tracker().phases.push(Phase::new(phase, is_case));
    }

    /// Marks restarts of `deployment`'s pods during the current phase as caused on purpose.
    pub(crate) fn expect_restarts(&self, deployment: &str) {
        if let Some(phase) = self.tracker().phases.last_mut() {
            phase.expected_restarts.insert(deployment.to_string());
        }
    }

    /// Brings the record up to date with a fresh list (the watch may lag behind), then
    /// returns the unexpected terminations seen since the last call, each with the tail of
    /// its previous container's log.
    pub(crate) async fn take_unexpected(&self) -> Vec<Termination> {
        match self.api.list(&ListParams::default()).await {
            Ok(list) => {
                let mut tracker = self.tracker();
                for pod in &list.items {
                    tracker.observe(pod, false);
                }
            }
            Err(error) => eprintln!("[stability] cannot list the pods: {error}"),
        }
        let first = self.tracker().taken;
        let new = self.tracker().take_new();
        let mut unexpected = Vec::new();
        for (index, mut termination) in (first..).zip(new) {
            if termination.expected.is_none() {
                let log = self.terminated_log(&termination).await;
                let mut tracker = self.tracker();
                // The last line before the exit places it within `finishedAt`'s second.
                let finished = termination.finished_at.as_deref().and_then(unix_seconds);
                if let Some(phase) =
                    tracker.phase_at(&termination.deployment, finished, last_line_time(&log))
                {
                    termination.during = phase.name.clone();
                    termination.expected = phase.caused(&termination.deployment);
                }
                termination.previous_log = Some(log);
                // The run-level record keeps the log too.
                if let Some(seen) = tracker.seen.get_mut(index) {
                    *seen = termination.clone();
                }
            }
            match &termination.expected {
                Some(why) => eprintln!("[stability] expected: {} ({why})", termination.describe()),
                None => {
                    eprintln!("[stability] UNEXPECTED: {}", termination.describe());
                    unexpected.push(termination);
                }
            }
        }
        unexpected
    }

    /// The tail of the terminated container's log: the previous container's once the kubelet
    /// has restarted it, else (not restarted yet, so there is no previous one) the current.
    async fn terminated_log(&self, termination: &Termination) -> String {
        let params = |previous| LogParams {
            container: Some(termination.container.clone()),
            previous,
            tail_lines: Some(PREVIOUS_LOG_LINES),
            timestamps: true,
            ..Default::default()
        };
        match self.api.logs(&termination.pod, &params(true)).await {
            Ok(log) => log,
            Err(previous) => self
                .api
                .logs(&termination.pod, &params(false))
                .await
                .unwrap_or_else(|e| format!("<log unavailable: {previous}; {e}>")),
        }
    }

    /// Everything seen so far, for the reports.
    pub(crate) fn stability(&self) -> Stability {
        let tracker = self.tracker();
        let (expected, unexpected) = tracker
            .seen
            .iter()
            .cloned()
            .partition(|t| t.expected.is_some());
        Stability {
            watched: self.watched.clone(),
            unexpected,
            expected,
        }
    }
}

/// The watch task: the first listing is the baseline; re-lists after errors are not. Each
/// unexpected termination it sees is counted in `unexpected_seen`.
async fn watch(
    api: Api<Pod>,
    tracker: Arc<Mutex<Tracker>>,
    ready: tokio::sync::oneshot::Sender<()>,
    unexpected_seen: tokio::sync::watch::Sender<u64>,
) {
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut ready = Some(ready);
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                eprintln!("[stability] pod watch error (retrying): {error}");
                continue;
            }
        };
        let baseline = ready.is_some();
        let mut tracker = tracker.lock().unwrap_or_else(|p| p.into_inner());
        let unexpected = match event {
            watcher::Event::Apply(pod) => tracker.observe(&pod, false),
            watcher::Event::InitApply(pod) => tracker.observe(&pod, baseline),
            watcher::Event::InitDone => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
                0
            }
            watcher::Event::Init | watcher::Event::Delete(_) => 0,
        };
        if unexpected > 0 {
            unexpected_seen.send_modify(|count| *count += unexpected as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn pod(deleting: bool, restarts: i32, last: Option<(i32, &str)>, running: bool) -> Pod {
        let last_state = last.map(|(code, finished)| {
            json!({ "terminated": {
                "exitCode": code, "reason": if code == 137 { "OOMKilled" } else { "Error" },
                "startedAt": "2026-12-01T00:00:00Z", "finishedAt": finished,
                "containerID": "local://1"
            }})
        });
        let mut value = json!({
            "metadata": {
                "name": "user-srv-5fc4d67dd5-sm9g4", "namespace": "go-micro", "uid": "u1",
                "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "user-srv-5fc4d67dd5", "uid": "rs1" }]
            },
            "status": { "containerStatuses": [{
                "name": "user-srv", "image": "i", "imageID": "", "ready": running,
                "restartCount": restarts,
                "state": if running { json!({ "running": {} }) } else { json!({ "waiting": { "reason": "CrashLoopBackOff" } }) },
                "lastState": last_state.unwrap_or(json!({}))
            }]}
        });
        if deleting {
            value["metadata"]["deletionTimestamp"] = json!("2026-12-01T00:01:00Z");
        }
        serde_json::from_value(value).unwrap()
    }

    fn phase(name: &str, started: &str) -> Phase {
        let started = serde_json::from_value::<Time>(json!(started)).unwrap().0;
        Phase {
            name: name.into(),
            is_case: !name.contains(' '),
            started: started.as_millisecond() as f64 / 1000.0,
            expected_restarts: BTreeSet::new(),
        }
    }

    fn tracker() -> Tracker {
        Tracker {
            deployments: vec!["admin-srv".into(), "user-srv".into()],
            phases: vec![phase("LOGIN-001", "2026-12-01T00:00:00Z")],
            ..Default::default()
        }
    }

    #[test]
    fn a_termination_then_its_restart_is_one_record() {
        let mut t = tracker();
        t.observe(&pod(false, 0, None, true), false);
        let mut exited: serde_json::Value =
            serde_json::to_value(pod(false, 0, None, false)).unwrap();
        exited["status"]["containerStatuses"][0]["state"] = json!({ "terminated": {
            "exitCode": 1, "reason": "Error", "startedAt": "2026-12-01T00:00:00Z",
            "finishedAt": "2026-12-01T00:00:05Z", "containerID": "local://1"
        }});
        let unexpected = t.observe(&serde_json::from_value(exited).unwrap(), false);
        assert_eq!(unexpected, 1, "the exit is counted when first seen");
        let unexpected = t.observe(
            &pod(false, 1, Some((1, "2026-12-01T00:00:05Z")), true),
            false,
        );
        assert_eq!(unexpected, 0, "its restart is the same termination");
        let new = t.take_new();
        assert_eq!(new.len(), 1, "{new:?}");
        assert_eq!(new[0].exit_code, Some(1));
    }

    #[test]
    fn in_a_second_shared_by_two_cases_the_first_gets_the_termination() {
        let mut t = tracker();
        t.phases
            .push(phase("between cases", "2026-12-01T00:00:05.100Z"));
        t.phases
            .push(phase("LOGIN-002", "2026-12-01T00:00:05.200Z"));
        t.observe(&pod(false, 0, None, true), false);
        t.observe(
            &pod(false, 1, Some((1, "2026-12-01T00:00:05Z")), true),
            false,
        );
        t.observe(
            &pod(false, 2, Some((1, "2026-12-01T00:00:07Z")), true),
            false,
        );
        let during: Vec<String> = t.take_new().into_iter().map(|t| t.during).collect();
        assert_eq!(during, ["LOGIN-001", "LOGIN-002"]);
    }

    #[test]
    fn a_restart_caused_on_purpose_in_a_shared_second_is_expected() {
        let mut t = tracker();
        let mut kill = phase("FAULT-003", "2026-12-01T00:00:05.400Z");
        kill.expected_restarts.insert("user-srv".into());
        t.phases.push(kill);
        t.observe(&pod(false, 0, None, true), false);
        let unexpected = t.observe(
            &pod(false, 1, Some((137, "2026-12-01T00:00:05Z")), true),
            false,
        );
        assert_eq!(unexpected, 0, "caused on purpose");
        let new = t.take_new();
        assert_eq!(new[0].during, "FAULT-003");
        assert!(new[0].expected.is_some(), "{new:?}");
    }

    #[test]
    fn the_last_log_line_narrows_the_second_down() {
        let mut t = tracker();
        t.phases
            .push(phase("LOGIN-002", "2026-12-01T00:00:05.100Z"));
        t.phases
            .push(phase("between cases", "2026-12-01T00:00:05.200Z"));
        t.phases
            .push(phase("LOGIN-003", "2026-12-01T00:00:05.300Z"));
        let finished = unix_seconds("2026-12-01T00:00:05Z");
        let log = "2026-12-01T00:00:04.9Z starting\n2026-12-01T00:00:05.350Z exiting\n";
        let during = |last| {
            t.phase_at("user-srv", finished, last)
                .map(|p| p.name.as_str())
        };
        assert_eq!(during(last_line_time(log)), Some("LOGIN-003"));
        assert_eq!(
            during(unix_seconds("2026-12-01T00:00:05.150Z")),
            Some("LOGIN-002")
        );
        assert_eq!(during(None), Some("LOGIN-001"));
        assert_eq!(
            during(unix_seconds("2026-12-01T00:00:04.9Z")),
            Some("LOGIN-001")
        );
    }

    #[test]
    fn a_termination_reported_late_belongs_to_the_phase_it_finished_in() {
        let mut t = tracker();
        t.phases[0].expected_restarts.insert("user-srv".into());
        t.phases.push(phase("LOGIN-002", "2026-12-01T00:00:10Z"));
        t.observe(&pod(false, 0, None, true), false);
        t.observe(
            &pod(false, 1, Some((137, "2026-12-01T00:00:05Z")), true),
            false,
        );
        t.observe(
            &pod(false, 2, Some((1, "2026-12-01T00:00:11Z")), true),
            false,
        );
        let new = t.take_new();
        let seen: Vec<(&str, bool)> = new
            .iter()
            .map(|t| (t.during.as_str(), t.expected.is_some()))
            .collect();
        assert_eq!(seen, [("LOGIN-001", true), ("LOGIN-002", false)]);
    }

    #[test]
    fn a_restart_is_recorded_once_with_its_termination() {
        let mut t = tracker();
        t.observe(&pod(false, 0, None, true), false);
        assert!(t.take_new().is_empty());
        let crashed = pod(false, 1, Some((1, "2026-12-01T00:00:05Z")), false);
        t.observe(&crashed, false);
        t.observe(&crashed, false);
        t.observe(
            &pod(false, 1, Some((1, "2026-12-01T00:00:05Z")), true),
            false,
        );
        let new = t.take_new();
        assert_eq!(new.len(), 1, "{new:?}");
        let crash = &new[0];
        assert_eq!(
            (
                crash.exit_code,
                crash.reason.as_str(),
                crash.deployment.as_str()
            ),
            (Some(1), "Error", "user-srv")
        );
        assert_eq!(crash.expected, None);
        assert_eq!(
            crash.describe(),
            "pod user-srv-5fc4d67dd5-sm9g4 container user-srv exit code 1 (Error) at \
             2026-12-01T00:00:05Z, restart count 1, during LOGIN-001"
        );
        // A second crash is a new termination.
        t.observe(
            &pod(false, 2, Some((137, "2026-12-01T00:00:09Z")), true),
            false,
        );
        let new = t.take_new();
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].reason, "OOMKilled");
    }

    #[test]
    fn the_baseline_is_not_reported() {
        let mut t = tracker();
        t.observe(
            &pod(false, 3, Some((1, "2026-12-01T00:00:05Z")), true),
            true,
        );
        t.observe(
            &pod(false, 3, Some((1, "2026-12-01T00:00:05Z")), true),
            false,
        );
        assert!(t.take_new().is_empty());
    }

    #[test]
    fn deleted_pods_and_marked_restarts_are_expected() {
        let mut t = tracker();
        t.observe(
            &pod(true, 0, Some((0, "2026-12-01T00:00:05Z")), false),
            false,
        );
        t.phases[0].expected_restarts.insert("user-srv".into());
        t.observe(
            &pod(false, 1, Some((137, "2026-12-01T00:00:06Z")), true),
            false,
        );
        let new = t.take_new();
        assert_eq!(new.len(), 2, "{new:?}");
        assert_eq!(
            new[0].expected.as_deref(),
            Some("its pod was being deleted")
        );
        assert_eq!(
            new[1].expected.as_deref(),
            Some("LOGIN-001 restarts user-srv on purpose")
        );
    }

    #[test]
    fn a_grown_restart_count_without_details_still_counts() {
        let mut t = tracker();
        t.observe(&pod(false, 0, None, true), false);
        t.observe(&pod(false, 1, None, true), false);
        let new = t.take_new();
        assert_eq!(new.len(), 1);
        assert_eq!(
            (new[0].exit_code, new[0].reason.as_str()),
            (None, "Restarted")
        );
    }

    #[test]
    fn pods_of_other_owners_are_ignored() {
        let mut t = tracker();
        t.deployments = vec!["token-srv".into(), "user".into()];
        t.observe(
            &pod(false, 1, Some((1, "2026-12-01T00:00:05Z")), true),
            false,
        );
        assert!(t.take_new().is_empty());
    }

    #[test]
    fn the_line_names_every_unexpected_termination() {
        let mut t = tracker();
        t.observe(
            &pod(false, 1, Some((1, "2026-12-01T00:00:05Z")), true),
            false,
        );
        let stability = Stability {
            watched: "pods of Deployments user-srv in namespace go-micro".into(),
            unexpected: t.take_new(),
            expected: vec![],
        };
        assert!(
            stability
                .line()
                .starts_with("1 unexpected container exit(s) or restart(s): pod user-srv-"),
            "{}",
            stability.line()
        );
        assert_eq!(
            Stability::default().line(),
            "implementation pods not watched"
        );
    }
}
