//! Listing and watching the instances of a service (CONTRACT §2).

use std::collections::BTreeMap;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};

use crate::mapping::pod_key;
use crate::{RegistryError, ServiceInstance, instance_from_pod, is_discoverable, keys};

/// Finds service instances among pods, by the label `gomicro-service-app=<name>`, in all
/// namespaces or in a set of namespaces.
#[derive(Clone)]
pub struct Discovery {
    client: kube::Client,
    /// Where pods are looked for, in namespace order; `None` is every namespace.
    scopes: Vec<Option<String>>,
}

impl Discovery {
    /// Discovery across all namespaces (needs cluster-wide list/watch on pods, like Go-Micro).
    pub fn new(client: kube::Client) -> Self {
        Discovery {
            client,
            scopes: vec![None],
        }
    }

    /// Discovery restricted to one namespace.
    pub fn namespaced(client: kube::Client, namespace: impl Into<String>) -> Self {
        Discovery::in_namespaces(client, [namespace])
    }

    /// Discovery restricted to `namespaces` (needs list/watch on pods in each of them only);
    /// with none, nothing is discovered.
    pub fn in_namespaces<N: Into<String>>(
        client: kube::Client,
        namespaces: impl IntoIterator<Item = N>,
    ) -> Self {
        let mut namespaces: Vec<String> = namespaces.into_iter().map(Into::into).collect();
        namespaces.sort();
        namespaces.dedup();
        Discovery {
            client,
            scopes: namespaces.into_iter().map(Some).collect(),
        }
    }

    fn pods(&self, scope: &Option<String>) -> Api<Pod> {
        match scope {
            Some(namespace) => Api::namespaced(self.client.clone(), namespace),
            None => Api::all(self.client.clone()),
        }
    }

    /// The current instances of service `name` (one LIST with a label selector per namespace).
    pub async fn list(&self, name: &str) -> Result<Vec<ServiceInstance>, RegistryError> {
        let params = ListParams::default().labels(&keys::app_selector(name));
        let mut store = InstanceStore::new(name);
        for scope in &self.scopes {
            let pods = self
                .pods(scope)
                .list(&params)
                .await
                .map_err(|e| RegistryError::from_kube("list", "pods", scope_name(scope), e))?;
            pods.items.iter().for_each(|pod| store.upsert(pod));
        }
        Ok(store.instances())
    }

    /// The instances of service `name` as a stream of full lists: one once every namespace was
    /// listed, then one per change (never two identical lists in a row; empty when the last
    /// goes). Survives expired resource versions and dropped connections by re-listing with
    /// backoff.
    pub fn watch(&self, name: &str) -> impl Stream<Item = Vec<ServiceInstance>> + Send + 'static {
        let config = watch_config(name);
        let streams: Vec<_> = self
            .scopes
            .iter()
            .enumerate()
            .map(|(index, scope)| {
                let pods = self.pods(scope);
                let mut store = InstanceStore::new(name);
                let (service, scope) = (name.to_owned(), scope_name(scope).to_owned());
                watcher(pods, config.clone())
                    .default_backoff()
                    .filter_map(move |event| {
                        let update = match event {
                            Ok(event) => store.apply(event),
                            Err(error) => {
                                tracing::warn!("watching pods of service {service} in namespace {scope:?} failed, retrying: {error}");
                                None
                            }
                        };
                        futures::future::ready(update.map(|list| (index, list)))
                    })
                    .boxed()
            })
            .collect();
        let mut merged = MergedLists::new(streams.len());
        futures::stream::select_all(streams)
            .filter_map(move |(index, list)| futures::future::ready(merged.apply(index, list)))
    }
}

/// How a scope is named in messages: its namespace, or `*` for all.
fn scope_name(scope: &Option<String>) -> &str {
    scope.as_deref().unwrap_or("*")
}

/// The latest list of each namespace, joined in namespace order once every namespace has one.
struct MergedLists {
    latest: Vec<Option<Vec<ServiceInstance>>>,
    last_emitted: Option<Vec<ServiceInstance>>,
}

impl MergedLists {
    fn new(scopes: usize) -> Self {
        MergedLists {
            latest: vec![None; scopes],
            last_emitted: None,
        }
    }

    /// Takes namespace `index`'s new list; returns the joined list when every namespace has
    /// one and it differs from the last returned.
    fn apply(&mut self, index: usize, list: Vec<ServiceInstance>) -> Option<Vec<ServiceInstance>> {
        self.latest[index] = Some(list);
        let joined: Vec<ServiceInstance> = self
            .latest
            .iter()
            .map(Option::as_ref)
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if self.last_emitted.as_ref() == Some(&joined) {
            return None;
        }
        self.last_emitted = Some(joined.clone());
        Some(joined)
    }
}

/// The watch of service `name`'s pods: server-side label selection (C2.7), and a LIST, then a
/// watch from its resourceVersion, never a streaming list (`sendInitialEvents`), which the API
/// server's `WatchList` gate keeps off by default on every supported Kubernetes minor (1.34 to
/// 1.37; docs/contract.md, the note after V8.13).
fn watch_config(name: &str) -> watcher::Config {
    watcher::Config {
        initial_list_strategy: watcher::InitialListStrategy::ListWatch,
        ..watcher::Config::default()
    }
    .labels(&keys::app_selector(name))
}

/// The discoverable instances of one service, keyed by pod, fed by watcher events.
#[derive(Debug, Default)]
pub struct InstanceStore {
    service: String,
    by_pod: BTreeMap<String, ServiceInstance>,
    relisting: Option<BTreeMap<String, ServiceInstance>>,
    last_emitted: Option<Vec<ServiceInstance>>,
}

impl InstanceStore {
    /// An empty store for service `service` (used in log messages).
    pub fn new(service: &str) -> Self {
        InstanceStore {
            service: service.to_owned(),
            ..Default::default()
        }
    }

    /// Applies one watcher event; returns the full list when it differs from the last one
    /// returned (the first complete list is always returned, even when empty).
    pub fn apply(&mut self, event: watcher::Event<Pod>) -> Option<Vec<ServiceInstance>> {
        match event {
            watcher::Event::Init => {
                self.relisting = Some(BTreeMap::new());
                return None;
            }
            watcher::Event::InitApply(pod) => {
                let mut relisting = self.relisting.take().unwrap_or_default();
                self.upsert_into(&mut relisting, &pod);
                self.relisting = Some(relisting);
                return None;
            }
            watcher::Event::InitDone => self.by_pod = self.relisting.take().unwrap_or_default(),
            watcher::Event::Apply(pod) => self.upsert(&pod),
            watcher::Event::Delete(pod) => {
                self.by_pod.remove(&pod_key(&pod));
            }
        }
        let instances = self.instances();
        if self.last_emitted.as_ref() == Some(&instances) {
            return None;
        }
        self.last_emitted = Some(instances.clone());
        Some(instances)
    }

    /// The current instances, ordered by pod namespace and name.
    pub fn instances(&self) -> Vec<ServiceInstance> {
        self.by_pod.values().cloned().collect()
    }

    fn upsert(&mut self, pod: &Pod) {
        let mut by_pod = std::mem::take(&mut self.by_pod);
        self.upsert_into(&mut by_pod, pod);
        self.by_pod = by_pod;
    }

    fn upsert_into(&self, by_pod: &mut BTreeMap<String, ServiceInstance>, pod: &Pod) {
        let key = pod_key(pod);
        if !is_discoverable(pod) {
            by_pod.remove(&key);
            return;
        }
        match instance_from_pod(pod) {
            Ok(instance) => {
                by_pod.insert(key, instance);
            }
            Err(error) => {
                tracing::warn!("skipping a pod of service {}: {error}", self.service);
                by_pod.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::tests::pod;
    use serde_json::json;
    use watcher::Event;

    #[test]
    fn the_watch_selects_by_label_and_lists_before_watching() {
        let config = watch_config("go.micro.srv.user");
        assert_eq!(
            config.initial_list_strategy,
            watcher::InitialListStrategy::ListWatch
        );
        assert_eq!(
            config.label_selector.as_deref(),
            Some(keys::app_selector("go.micro.srv.user").as_str())
        );
    }

    fn grpc_pod(name: &str, ip: &str) -> Pod {
        pod(
            name,
            ip,
            json!([{ "name": "grpc-port", "containerPort": 9090 }]),
            json!({}),
        )
    }

    fn ids(update: Option<Vec<ServiceInstance>>) -> Option<Vec<String>> {
        update.map(|list| list.into_iter().map(|i| i.id).collect())
    }

    #[test]
    fn namespaces_are_joined_in_order_once_each_was_listed() {
        let list = |names: &[&str]| {
            let mut store = InstanceStore::new("go-micro.user-srv");
            store.apply(Event::Init);
            for (n, name) in names.iter().enumerate() {
                store.apply(Event::InitApply(grpc_pod(
                    name,
                    &format!("10.244.0.{}", n + 2),
                )));
            }
            store.apply(Event::InitDone).unwrap()
        };
        let mut merged = MergedLists::new(2);
        assert_eq!(
            merged.apply(1, list(&["b"])),
            None,
            "namespace 0 not listed yet"
        );
        assert_eq!(
            ids(merged.apply(0, list(&["a"]))),
            Some(vec![
                "a.go-micro.user-srv".into(),
                "b.go-micro.user-srv".into()
            ])
        );
        assert_eq!(merged.apply(0, list(&["a"])), None, "no repeat");
        assert_eq!(
            ids(merged.apply(1, list(&[]))),
            Some(vec!["a.go-micro.user-srv".into()])
        );
    }

    #[test]
    fn initial_list_is_emitted_once_complete_even_when_empty() {
        let mut store = InstanceStore::new("go-micro.user-srv");
        assert_eq!(store.apply(Event::Init), None);
        assert_eq!(ids(store.apply(Event::InitDone)), Some(vec![]));
    }

    #[test]
    fn every_change_yields_the_full_list() {
        let mut store = InstanceStore::new("go-micro.user-srv");
        store.apply(Event::Init);
        assert_eq!(
            store.apply(Event::InitApply(grpc_pod("a", "10.244.0.2"))),
            None
        );
        assert_eq!(
            ids(store.apply(Event::InitDone)),
            Some(vec!["a.go-micro.user-srv".into()])
        );
        assert_eq!(
            ids(store.apply(Event::Apply(grpc_pod("b", "10.244.0.3")))),
            Some(vec![
                "a.go-micro.user-srv".into(),
                "b.go-micro.user-srv".into()
            ])
        );
        assert_eq!(
            ids(store.apply(Event::Delete(grpc_pod("a", "10.244.0.2")))),
            Some(vec!["b.go-micro.user-srv".into()])
        );
        assert_eq!(
            ids(store.apply(Event::Delete(grpc_pod("b", "10.244.0.3")))),
            Some(vec![])
        );
    }

    #[test]
    fn identical_consecutive_lists_are_not_repeated() {
        let mut store = InstanceStore::new("go-micro.user-srv");
        store.apply(Event::Init);
        store.apply(Event::InitApply(grpc_pod("a", "10.244.0.2")));
        store.apply(Event::InitDone);
        assert_eq!(store.apply(Event::Apply(grpc_pod("a", "10.244.0.2"))), None);
        // A re-list after a dropped watch that finds the same pods changes nothing either.
        store.apply(Event::Init);
        store.apply(Event::InitApply(grpc_pod("a", "10.244.0.2")));
        assert_eq!(store.apply(Event::InitDone), None);
    }

    #[test]
    fn relist_replaces_the_whole_store() {
        let mut store = InstanceStore::new("go-micro.user-srv");
        store.apply(Event::Init);
        store.apply(Event::InitApply(grpc_pod("a", "10.244.0.2")));
        store.apply(Event::InitDone);
        store.apply(Event::Init);
        store.apply(Event::InitApply(grpc_pod("c", "10.244.0.4")));
        assert_eq!(
            ids(store.apply(Event::InitDone)),
            Some(vec!["c.go-micro.user-srv".into()])
        );
    }

    #[test]
    fn pods_leaving_readiness_or_with_bad_annotations_drop_out() {
        let mut store = InstanceStore::new("go-micro.user-srv");
        store.apply(Event::Init);
        store.apply(Event::InitApply(grpc_pod("a", "10.244.0.2")));
        store.apply(Event::InitApply(grpc_pod("b", "10.244.0.3")));
        store.apply(Event::InitDone);
        let mut unready = grpc_pod("a", "10.244.0.2");
        unready
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()[0]
            .status = "False".into();
        assert_eq!(
            ids(store.apply(Event::Apply(unready))),
            Some(vec!["b.go-micro.user-srv".into()])
        );
        let broken = pod(
            "b",
            "10.244.0.3",
            json!([]),
            json!({ "gomicro-service-metadata": "{" }),
        );
        assert_eq!(ids(store.apply(Event::Apply(broken))), Some(vec![]));
    }
}
