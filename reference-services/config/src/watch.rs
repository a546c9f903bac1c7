//! Live reload: kube's watcher on the selected ConfigMaps, debounced into batches.
//!
//! [`Reloader`] is the event-to-snapshot state machine, driven directly in tests:
//! - `Apply` / `InitApply` record the ConfigMap's latest data (a later event for the same
//!   ConfigMap replaces an earlier one in the batch);
//! - `Delete` logs ERROR `config map <ns>/<name> deleted; keeping its last values` and keeps
//!   them; after a re-list (`Init` … `InitDone`, e.g. after a 410 or a dropped connection) a
//!   known ConfigMap that is no longer listed is reported the same way, once;
//! - [`Reloader::flush`] hands the batch to [`Config::apply_configmaps`].
//!
//! [`run`] feeds a stream of events into a reloader and flushes once `debounce` passes without
//! a new event, or at the latest `10 × debounce` after the first event of the batch.
//! [`Config::attach_configmaps`] starts it for a [`Config`]; the configuration itself knows
//! nothing of watches.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::ApplyOutcome;
use crate::configmap::{self, ConfigMapData, ConfigMapId, data_of};
use crate::{Config, ConfigError, RemoteSettings};

/// The longest a burst can delay its flush, in multiples of the debounce period.
const MAX_DELAY_FACTOR: u32 = 10;

/// Collects watch events into batches applied to a [`Config`].
pub struct Reloader {
    config: Config,
    default_namespace: String,
    pending: BTreeMap<ConfigMapId, ConfigMapData>,
    /// ConfigMaps seen since the last `Init`, while a re-list is in progress.
    relisted: Option<BTreeSet<ConfigMapId>>,
    /// ConfigMaps reported deleted and not seen since (reported once).
    deleted: BTreeSet<ConfigMapId>,
}

impl Reloader {
    /// A reloader for `config`; objects without namespace get `default_namespace`.
    pub fn new(config: Config, default_namespace: impl Into<String>) -> Reloader {
        Reloader {
            config,
            default_namespace: default_namespace.into(),
            pending: BTreeMap::new(),
            relisted: None,
            deleted: BTreeSet::new(),
        }
    }

    /// Records one watch event.
    pub fn handle(&mut self, event: watcher::Event<ConfigMap>) {
        match event {
            watcher::Event::Apply(cm) | watcher::Event::InitApply(cm) => {
                let id = ConfigMapId::of(&cm, &self.default_namespace);
                if let Some(relisted) = &mut self.relisted {
                    relisted.insert(id.clone());
                }
                self.deleted.remove(&id);
                self.pending.insert(id, data_of(&cm));
            }
            watcher::Event::Delete(cm) => {
                self.report_deleted(ConfigMapId::of(&cm, &self.default_namespace));
            }
            watcher::Event::Init => self.relisted = Some(BTreeSet::new()),
            watcher::Event::InitDone => {
                let Some(relisted) = self.relisted.take() else {
                    return;
                };
                let known: BTreeSet<_> = self
                    .config
                    .configmap_ids()
                    .into_iter()
                    .chain(self.pending.keys().cloned())
                    .collect();
                for id in known.difference(&relisted) {
                    self.report_deleted(id.clone());
                }
            }
        }
    }

    /// Whether events are waiting for [`Reloader::flush`].
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Applies the collected batch, if any.
    pub fn flush(&mut self) -> Option<ApplyOutcome> {
        if self.pending.is_empty() {
            return None;
        }
        Some(
            self.config
                .apply_configmaps(std::mem::take(&mut self.pending)),
        )
    }

    fn report_deleted(&mut self, id: ConfigMapId) {
        if self.deleted.insert(id.clone()) {
            tracing::error!("config map {id} deleted; keeping its last values");
        }
    }
}

/// Feeds `events` into `reloader`, flushing debounced batches, until the stream ends.
pub async fn run<S>(events: S, mut reloader: Reloader, debounce: Duration)
where
    S: Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>>,
{
    let mut events = pin!(events);
    let handle = |reloader: &mut Reloader, item| match item {
        Ok(event) => reloader.handle(event),
        Err(err) => tracing::warn!("config map watch error (retrying): {err}"),
    };
    while let Some(first) = events.next().await {
        handle(&mut reloader, first);
        let latest_flush = Instant::now() + debounce * MAX_DELAY_FACTOR;
        let mut ended = false;
        loop {
            let quiet_until = (Instant::now() + debounce).min(latest_flush);
            match tokio::time::timeout_at(quiet_until, events.next()).await {
                Ok(Some(item)) => handle(&mut reloader, item),
                Ok(None) => {
                    ended = true;
                    break;
                }
                Err(_quiet) => break,
            }
        }
        reloader.flush();
        if ended {
            break;
        }
    }
    tracing::warn!("config map watch ended");
}

impl Config {
    /// Lists the selected ConfigMaps once and merges them over the local tree (every entry must
    /// parse and the result must pass the validator, else nothing changes and the error is
    /// returned), then watches the same selectors in a background task that applies later
    /// changes after `debounce` of quiet. Call it once per `Config`.
    pub async fn attach_configmaps(
        &self,
        client: kube::Client,
        settings: &RemoteSettings,
        debounce: Duration,
    ) -> Result<WatchHandle, ConfigError> {
        let api: Api<ConfigMap> = Api::namespaced(client, &settings.namespace);
        let listed = configmap::list(&api, settings).await?;
        self.replace_configmaps(&listed)?;
        let reloader = Reloader::new(self.clone(), settings.namespace.clone());
        Ok(WatchHandle::spawn(
            api,
            configmap::watcher_config(settings),
            reloader,
            debounce,
        ))
    }
}

/// The background watch task; dropping or [`stopping`](WatchHandle::stop) it ends the watch.
#[derive(Debug)]
pub struct WatchHandle {
    task: Option<JoinHandle<()>>,
}

impl WatchHandle {
    /// Spawns [`run`] over kube's watcher (which re-lists after 410 and reconnects, with the
    /// default backoff) for `api` and `config`.
    pub(crate) fn spawn(
        api: Api<ConfigMap>,
        config: watcher::Config,
        reloader: Reloader,
        debounce: Duration,
    ) -> WatchHandle {
        let events = watcher(api, config).default_backoff();
        WatchHandle {
            task: Some(tokio::spawn(run(events, reloader, debounce))),
        }
    }

    /// Stops the watch and waits until the task has ended.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // A cancelled task reports `JoinError::Cancelled`: the expected end.
            let _ = task.await;
        }
    }

    /// Whether the watch task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests;
