//! The background task behind a resolver channel: applies instance lists to a tonic
//! balancer and health-checks every address before and while it is balanced over.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::Notify;
use tokio::sync::mpsc::Sender;
use tokio::task::JoinHandle;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use super::{ResolverOptions, grpc_addresses, update_line, zero_endpoint_line};
use crate::ServiceInstance;

type Changes = Sender<Change<String, Endpoint>>;

/// Capacity of the queue of balancer changes.
const CHANGE_QUEUE: usize = 64;

/// Creates the balanced channel and spawns the task feeding it from `updates`.
pub(super) fn spawn(
    updates: impl Stream<Item = Vec<ServiceInstance>> + Send + 'static,
    options: ResolverOptions,
) -> Channel {
    let (channel, changes) = Channel::balance_channel::<String>(CHANGE_QUEUE);
    tokio::spawn(apply_updates(updates, changes, options));
    channel
}

/// Applies every list of `updates` until the stream ends or the channel is dropped.
async fn apply_updates(
    updates: impl Stream<Item = Vec<ServiceInstance>>,
    changes: Changes,
    options: ResolverOptions,
) {
    let mut updates = std::pin::pin!(updates);
    let mut probes: HashMap<String, Probe> = HashMap::new();
    loop {
        let instances = tokio::select! {
            next = updates.next() => match next { Some(instances) => instances, None => break },
            () = changes.closed() => break,
        };
        // Any change of the instances may mean a balanced address went away: re-check now.
        probes.values().for_each(|probe| probe.recheck.notify_one());
        let addresses = grpc_addresses(&instances);
        if addresses.is_empty() {
            tracing::warn!("{}", zero_endpoint_line(&instances));
            continue;
        }
        let stale: Vec<String> = probes
            .keys()
            .filter(|a| !addresses.contains(a))
            .cloned()
            .collect();
        for address in stale {
            if let Some(probe) = probes.remove(&address) {
                probe.task.abort();
                // Wait for the probe to stop so it cannot re-insert the address afterwards.
                let _ = probe.task.await;
            }
            if changes.send(Change::Remove(address)).await.is_err() {
                break;
            }
        }
        for address in addresses {
            probes
                .entry(address.clone())
                .or_insert_with(|| Probe::spawn(address, changes.clone(), options));
        }
        tracing::info!("{}", update_line(&instances));
    }
    probes.values().for_each(|probe| probe.task.abort());
}

/// The health-check task of one address.
struct Probe {
    task: JoinHandle<()>,
    /// Wakes the task for an immediate check.
    recheck: Arc<Notify>,
}

impl Probe {
    fn spawn(address: String, changes: Changes, options: ResolverOptions) -> Probe {
        let recheck = Arc::new(Notify::new());
        let task = tokio::spawn(probe(address, changes, options, recheck.clone()));
        Probe { task, recheck }
    }
}

/// Health state of one address as last seen by its probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Unprobed,
    Serving,
    Failing,
}

/// Checks `address` now, every `health_interval` and when `recheck` is notified, inserting it
/// into the balancer while it answers SERVING and removing it while it does not.
async fn probe(address: String, changes: Changes, options: ResolverOptions, recheck: Arc<Notify>) {
    let endpoint = match Endpoint::from_shared(format!("http://{address}")) {
        Ok(endpoint) => endpoint
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true),
        Err(error) => {
            tracing::warn!("[resolver] ignoring address {address}: {error}");
            return;
        }
    };
    let mut health = HealthClient::new(endpoint.connect_lazy());
    let mut state = Health::Unprobed;
    loop {
        let change = match (check(&mut health, options.probe_timeout).await, state) {
            (Ok(()), Health::Serving) => None,
            (Ok(()), _) => {
                tracing::info!("[resolver] {address} is SERVING, balancing over it");
                state = Health::Serving;
                Some(Change::Insert(address.clone(), endpoint.clone()))
            }
            (Err(reason), Health::Failing) => {
                tracing::debug!("[resolver] {address} still failing its health check: {reason}");
                None
            }
            (Err(reason), previous) => {
                tracing::warn!(
                    "[resolver] {address} failed its health check, not balancing over it: {reason}"
                );
                state = Health::Failing;
                (previous == Health::Serving).then(|| Change::Remove(address.clone()))
            }
        };
        if let Some(change) = change
            && changes.send(change).await.is_err()
        {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(options.health_interval) => {}
            () = recheck.notified() => {}
            () = changes.closed() => return,
        }
    }
}

/// One `grpc.health.v1.Health/Check` for service `""`.
async fn check(health: &mut HealthClient<Channel>, timeout: Duration) -> Result<(), String> {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request.set_timeout(timeout);
    match tokio::time::timeout(timeout, health.check(request)).await {
        Err(_) => Err(format!("no answer within {timeout:?}")),
        Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
        Ok(Ok(reply)) => match reply.get_ref().status() {
            ServingStatus::Serving => Ok(()),
            other => Err(format!("status {}", other.as_str_name())),
        },
    }
}
