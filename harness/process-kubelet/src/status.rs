//! Pure construction of a pod's status from what the kubelet knows about its containers.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

/// What a container is doing right now.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
        pid: u32,
    },
    Terminated(Termination),
}

/// How a container run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Termination {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub pid: u32,
}

impl Termination {
    /// `Completed` for exit 0, `Error` otherwise (as the kubelet reports).
    pub fn reason(&self) -> &'static str {
        if self.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
    }
}

/// One container as the status builder sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub state: RunState,
    pub last_termination: Option<Termination>,
    pub restart_count: i32,
    pub ready: bool,
}

/// Pod-level inputs of the status builder.
#[derive(Debug, Clone)]
pub struct PodView<'a> {
    pub containers: &'a [ContainerView],
    pub restart_policy: &'a str,
    pub pod_ip: Option<Ipv4Addr>,
    pub host_ip: Ipv4Addr,
    pub start_time: Timestamp,
    pub sandbox_ready: bool,
    /// The status currently stored in the API (transition times, foreign conditions).
    pub previous: Option<&'a PodStatus>,
    pub now: Timestamp,
}

/// The pod phase by the kubelet's rules (`getPhase`).
pub fn phase(containers: &[ContainerView], restart_policy: &str) -> &'static str {
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match &c.state {
            RunState::Running { .. } => running += 1,
            RunState::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            RunState::Waiting { .. } if c.last_termination.is_some() => stopped += 1,
            RunState::Waiting { .. } => waiting += 1,
        }
    }
    if containers.is_empty() || waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    match restart_policy {
        "Always" => "Running",
        "OnFailure" if stopped == succeeded => "Succeeded",
        "OnFailure" => "Running",
        _ if stopped == succeeded => "Succeeded",
        _ => "Failed",
    }
}

/// The full status to store for the pod.
pub fn build_status(view: &PodView<'_>) -> PodStatus {
    let phase = phase(view.containers, view.restart_policy);
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let unready: Vec<&str> = view
        .containers
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let all_ready = unready.is_empty() && !view.containers.is_empty();
    let not_ready_reason = if terminal {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let not_ready_message =
        (!terminal).then(|| format!("containers with unready status: [{}]", unready.join(" ")));
    let readiness = |kind: &str| {
        if all_ready && !terminal {
            condition(view, kind, true, None, None)
        } else {
            condition(
                view,
                kind,
                false,
                Some(not_ready_reason),
                not_ready_message.clone(),
            )
        }
    };
    let mut conditions = vec![
        condition(
            view,
            "PodReadyToStartContainers",
            view.sandbox_ready,
            None,
            None,
        ),
        condition(view, "Initialized", true, None, None),
        readiness("Ready"),
        readiness("ContainersReady"),
        condition(view, "PodScheduled", true, None, None),
    ];
    let ours: Vec<String> = conditions.iter().map(|c| c.type_.clone()).collect();
    if let Some(previous) = view.previous {
        for foreign in previous
            .conditions
            .iter()
            .flatten()
            .filter(|c| !ours.contains(&c.type_))
        {
            conditions.push(foreign.clone());
        }
    }
    let host_ip = view.host_ip.to_string();
    let pod_ip = view.pod_ip.map(|ip| ip.to_string());
    PodStatus {
        phase: Some(phase.to_owned()),
        conditions: Some(conditions),
        host_ip: Some(host_ip.clone()),
        host_ips: Some(vec![HostIP { ip: host_ip }]),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: Some(Time(view.start_time)),
        container_statuses: Some(view.containers.iter().map(container_status).collect()),
        ..Default::default()
    }
}

fn condition(
    view: &PodView<'_>,
    kind: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let previous = view
        .previous
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == kind));
    let since = match previous {
        Some(prev) if prev.status == status => prev.last_transition_time.clone(),
        _ => None,
    };
    PodCondition {
        type_: kind.to_owned(),
        status: status.to_owned(),
        last_transition_time: Some(since.unwrap_or(Time(view.now))),
        reason: reason.map(str::to_owned),
        message,
        ..Default::default()
    }
}

fn container_status(c: &ContainerView) -> ContainerStatus {
    let (container_id, started) = match &c.state {
        RunState::Running { pid, .. } => (Some(container_id(*pid)), true),
        RunState::Terminated(t) => (Some(container_id(t.pid)), false),
        RunState::Waiting { .. } => (None, false),
    };
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: c.image_id.clone(),
        container_id,
        ready: c.ready,
        started: Some(started),
        restart_count: c.restart_count,
        state: Some(container_state(&c.state)),
        last_state: Some(
            c.last_termination
                .as_ref()
                .map(terminated_state)
                .unwrap_or_default(),
        ),
        ..Default::default()
    }
}

/// `process://<pid>`: the containerID of a run.
pub fn container_id(pid: u32) -> String {
    format!("process://{pid}")
}

fn container_state(state: &RunState) -> ContainerState {
    match state {
        RunState::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        RunState::Running { started_at, .. } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..Default::default()
        },
        RunState::Terminated(t) => terminated_state(t),
    }
}

fn terminated_state(t: &Termination) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: t.exit_code,
            signal: t.signal,
            reason: Some(t.reason().to_owned()),
            started_at: Some(Time(t.started_at)),
            finished_at: Some(Time(t.finished_at)),
            container_id: Some(container_id(t.pid)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A JSON merge patch body `{"status": …}` that replaces the stored status. Container states
/// name every variant (absent ones as `null`) so a merge never keeps a stale variant.
pub fn merge_patch(status: &PodStatus) -> Value {
    let mut json = serde_json::to_value(status).expect("PodStatus serializes");
    if let Some(statuses) = json
        .get_mut("containerStatuses")
        .and_then(Value::as_array_mut)
    {
        for cs in statuses {
            for key in ["state", "lastState"] {
                let state = cs
                    .as_object_mut()
                    .expect("container status is an object")
                    .entry(key);
                let state = state.or_insert_with(|| Value::Object(Default::default()));
                if let Some(map) = state.as_object_mut() {
                    for variant in ["waiting", "running", "terminated"] {
                        map.entry(variant).or_insert(Value::Null);
                    }
                }
            }
        }
    }
    serde_json::json!({ "status": json })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn running(name: &str, ready: bool) -> ContainerView {
        ContainerView {
            name: name.into(),
            image: format!("img/{name}"),
            image_id: format!("local://img/{name}"),
            state: RunState::Running {
                started_at: ts(100),
                pid: 42,
            },
            last_termination: None,
            restart_count: 0,
            ready,
        }
    }

    fn exited(name: &str, code: i32) -> ContainerView {
        ContainerView {
            state: RunState::Terminated(Termination {
                exit_code: code,
                signal: None,
                started_at: ts(100),
                finished_at: ts(110),
                pid: 42,
            }),
            ready: false,
            ..running(name, false)
        }
    }

    fn waiting(name: &str, reason: &str, crashed_before: bool) -> ContainerView {
        ContainerView {
            state: RunState::Waiting {
                reason: reason.into(),
                message: None,
            },
            last_termination: crashed_before.then(|| Termination {
                exit_code: 1,
                signal: None,
                started_at: ts(100),
                finished_at: ts(110),
                pid: 41,
            }),
            restart_count: i32::from(crashed_before),
            ready: false,
            ..running(name, false)
        }
    }

    fn view<'a>(containers: &'a [ContainerView], previous: Option<&'a PodStatus>) -> PodView<'a> {
        PodView {
            containers,
            restart_policy: "Always",
            pod_ip: Some(Ipv4Addr::new(10, 244, 0, 2)),
            host_ip: Ipv4Addr::new(10, 244, 0, 1),
            start_time: ts(90),
            sandbox_ready: true,
            previous,
            now: ts(200),
        }
    }

    fn cond<'a>(status: &'a PodStatus, kind: &str) -> &'a PodCondition {
        status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == kind)
            .unwrap()
    }

    #[test]
    fn phase_rules() {
        assert_eq!(phase(&[running("a", true)], "Always"), "Running");
        assert_eq!(
            phase(
                &[running("a", true), waiting("b", "ErrImagePull", false)],
                "Always"
            ),
            "Pending"
        );
        assert_eq!(
            phase(
                &[running("a", true), waiting("b", "CrashLoopBackOff", true)],
                "Always"
            ),
            "Running"
        );
        assert_eq!(phase(&[exited("a", 0)], "Never"), "Succeeded");
        assert_eq!(phase(&[exited("a", 0), exited("b", 2)], "Never"), "Failed");
        assert_eq!(phase(&[exited("a", 2)], "OnFailure"), "Running");
        assert_eq!(phase(&[exited("a", 0)], "OnFailure"), "Succeeded");
        assert_eq!(phase(&[exited("a", 0)], "Always"), "Running");
        assert_eq!(phase(&[], "Always"), "Pending");
    }

    #[test]
    fn ready_pod_status() {
        let containers = [running("a", true)];
        let status = build_status(&view(&containers, None));
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("10.244.0.2"));
        assert_eq!(status.pod_ips.as_ref().unwrap()[0].ip, "10.244.0.2");
        assert_eq!(status.host_ips.as_ref().unwrap()[0].ip, "10.244.0.1");
        for kind in [
            "PodScheduled",
            "PodReadyToStartContainers",
            "Initialized",
            "ContainersReady",
            "Ready",
        ] {
            assert_eq!(cond(&status, kind).status, "True", "{kind}");
        }
        let cs = &status.container_statuses.as_ref().unwrap()[0];
        assert_eq!(cs.container_id.as_deref(), Some("process://42"));
        assert_eq!(cs.started, Some(true));
        assert!(cs.state.as_ref().unwrap().running.is_some());
    }

    #[test]
    fn unready_container_is_named_and_transition_time_is_kept() {
        let containers = [running("a", true), running("b", false)];
        let first = build_status(&view(&containers, None));
        let ready = cond(&first, "Ready");
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            ready.message.as_deref(),
            Some("containers with unready status: [b]")
        );

        let mut later = view(&containers, Some(&first));
        later.now = ts(300);
        let second = build_status(&later);
        assert_eq!(
            cond(&second, "Ready").last_transition_time,
            Some(Time(ts(200)))
        );

        let all_ready = [running("a", true), running("b", true)];
        let mut flipped = view(&all_ready, Some(&second));
        flipped.now = ts(400);
        let third = build_status(&flipped);
        assert_eq!(cond(&third, "Ready").status, "True");
        assert_eq!(
            cond(&third, "Ready").last_transition_time,
            Some(Time(ts(400)))
        );
        assert_eq!(
            cond(&third, "PodScheduled").last_transition_time,
            Some(Time(ts(200)))
        );
    }

    #[test]
    fn foreign_conditions_survive() {
        let previous = PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let containers = [running("a", true)];
        let status = build_status(&view(&containers, Some(&previous)));
        assert_eq!(cond(&status, "DisruptionTarget").status, "True");
    }

    #[test]
    fn completed_pod_reports_pod_completed() {
        let containers = [exited("a", 0)];
        let mut v = view(&containers, None);
        v.restart_policy = "Never";
        let status = build_status(&v);
        assert_eq!(status.phase.as_deref(), Some("Succeeded"));
        assert_eq!(
            cond(&status, "Ready").reason.as_deref(),
            Some("PodCompleted")
        );
        let term = status.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!(
            (term.exit_code, term.reason.as_deref()),
            (0, Some("Completed"))
        );
    }

    #[test]
    fn merge_patch_nulls_absent_state_variants() {
        let containers = [waiting("a", "CrashLoopBackOff", true)];
        let patch = merge_patch(&build_status(&view(&containers, None)));
        let cs = &patch["status"]["containerStatuses"][0];
        assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert!(cs["state"]["running"].is_null() && cs["state"].get("running").is_some());
        assert!(cs["state"]["terminated"].is_null());
        assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(cs["restartCount"], 1);
        assert!(cs.get("containerID").is_none());
    }
}
