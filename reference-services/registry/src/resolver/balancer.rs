//! The background task behind a resolver channel: applies instance lists to a tonic
//! balancer and health-checks every address (grpc.health.v1 `Watch`) before and while it is
//! balanced over.

use std::collections::HashMap;
use std::sync::Arc;

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
        // Addresses waiting to retry their health watch retry now.
        probes
            .values()
            .for_each(|probe| probe.retry_now.notify_one());
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

/// The health-watching task of one address.
struct Probe {
    task: JoinHandle<()>,
    /// Cuts short the pause before the next watch attempt.
    retry_now: Arc<Notify>,
}

impl Probe {
    fn spawn(address: String, changes: Changes, options: ResolverOptions) -> Probe {
        let retry_now = Arc::new(Notify::new());
        let task = tokio::spawn(probe(address, changes, options, retry_now.clone()));
        Probe { task, retry_now }
    }
}

/// The balancer membership of one address, driven by its health reports.
struct Membership {
    address: String,
    endpoint: Endpoint,
    changes: Changes,
    balanced: bool,
    /// Whether the current failure streak was already logged.
    failure_logged: bool,
}

impl Membership {
    /// Inserts the address (once). `Err` when the channel is gone.
    async fn serving(&mut self) -> Result<(), ()> {
        self.failure_logged = false;
        if self.balanced {
            return Ok(());
        }
        tracing::info!("[resolver] {} is SERVING, balancing over it", self.address);
        self.balanced = true;
        let insert = Change::Insert(self.address.clone(), self.endpoint.clone());
        self.changes.send(insert).await.map_err(drop)
    }

    /// Removes the address (if balanced) and logs the first failure of a streak.
    async fn failing(&mut self, reason: &str) -> Result<(), ()> {
        if !self.failure_logged {
            tracing::warn!(
                "[resolver] {} is not healthy, not balancing over it: {reason}",
                self.address
            );
            self.failure_logged = true;
        }
        if !self.balanced {
            return Ok(());
        }
        self.balanced = false;
        self.changes
            .send(Change::Remove(self.address.clone()))
            .await
            .map_err(drop)
    }
}

/// Watches the health of `address` (grpc.health.v1 `Watch`, service `""`): the address is
/// balanced over while the latest report is SERVING. When the watch cannot be opened, fails
/// or ends (server stopping), the address is removed and the watch is re-opened after
/// `retry_interval` or at the next instance update.
async fn probe(
    address: String,
    changes: Changes,
    options: ResolverOptions,
    retry_now: Arc<Notify>,
) {
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
    let receiver_gone = changes.clone();
    let mut membership = Membership {
        address,
        endpoint,
        changes,
        balanced: false,
        failure_logged: false,
    };
    loop {
        let ended = tokio::select! {
            ended = watch(&mut health, &mut membership, options) => ended,
            () = receiver_gone.closed() => return,
        };
        let Ok(reason) = ended else { return };
        if membership.failing(&reason).await.is_err() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(options.retry_interval) => {}
            () = retry_now.notified() => {}
            () = receiver_gone.closed() => return,
        }
    }
}

/// Follows one health watch; `Ok(reason)` when it could not be opened or ended, `Err` when
/// the channel is gone.
async fn watch(
    health: &mut HealthClient<Channel>,
    membership: &mut Membership,
    options: ResolverOptions,
) -> Result<String, ()> {
    let request = HealthCheckRequest {
        service: String::new(),
    };
    let mut stream = match tokio::time::timeout(options.probe_timeout, health.watch(request)).await
    {
        Err(_) => return Ok(format!("no answer within {:?}", options.probe_timeout)),
        Ok(Err(status)) => return Ok(format!("{:?}: {}", status.code(), status.message())),
        Ok(Ok(response)) => response.into_inner(),
    };
    loop {
        match stream.message().await {
            Ok(Some(report)) if report.status() == ServingStatus::Serving => {
                membership.serving().await?
            }
            Ok(Some(report)) => {
                membership
                    .failing(&format!("status {}", report.status().as_str_name()))
                    .await?
            }
            Ok(None) => return Ok("the health watch ended".into()),
            Err(status) => return Ok(format!("{:?}: {}", status.code(), status.message())),
        }
    }
}
