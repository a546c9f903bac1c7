//! The shared, live configuration handle.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::watch;

use crate::configmap::{self, ConfigMapData, ConfigMapId};
use crate::sources::{Built, Sources, Validator, changed_keys, parse_all, parse_configmap};
use crate::{ConfigError, Entry, RemoteSettings, local, path};

/// The merged configuration: local files, then ConfigMaps, kept up to date by a watch.
///
/// Cloning is cheap and every clone sees the same state.
#[derive(Clone)]
pub struct Config {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    snapshot: watch::Sender<Arc<Value>>,
}

struct State {
    sources: Sources,
    raw: BTreeMap<String, String>,
    validator: Option<Arc<Validator>>,
    last_error: Option<String>,
}

/// What one batch of ConfigMap updates did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Keys of the accepted entries that changed (added, modified or removed).
    pub changed_keys: Vec<String>,
    /// Messages of the rejected updates (`<key>: <reason>`).
    pub rejected: Vec<String>,
    /// Whether a new snapshot was published (false when the tree did not change).
    pub published: bool,
}

impl Config {
    /// Loads the local directory source: `config.yaml`, then `remote.yaml`, then the other
    /// `*.yaml`/`*.yml`/`*.json` files sorted by name (see [`crate::local`]).
    pub fn from_dir(dir: &Path) -> Result<Config, ConfigError> {
        Config::from_entries(local::load_dir(dir)?)
    }

    /// A configuration from entries given in merge order (useful in tests and tools).
    pub fn from_entries(entries: Vec<Entry>) -> Result<Config, ConfigError> {
        let sources = Sources {
            local: parse_all(entries)?,
            ..Sources::default()
        };
        let Built { tree, raw } = sources.build(None)?;
        let (snapshot, _) = watch::channel(Arc::new(tree));
        Ok(Config {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    sources,
                    raw,
                    validator: None,
                    last_error: None,
                }),
                snapshot,
            }),
        })
    }

    /// The `config.type` / `config.k8s.*` settings of the current tree; `None` when
    /// `config.type` is absent or not `k8s`.
    pub fn remote_settings(&self) -> Result<Option<RemoteSettings>, ConfigError> {
        RemoteSettings::from_tree(&self.snapshot())
    }

    /// The merged tree with placeholders resolved.
    pub fn snapshot(&self) -> Arc<Value> {
        self.inner.snapshot.borrow().clone()
    }

    /// Deserializes the value at a dotted path (`"auth.api_key"`, `"server.http"`; `""` is the
    /// whole tree); `Ok(None)` when absent.
    pub fn get<T: DeserializeOwned>(&self, at: &str) -> Result<Option<T>, ConfigError> {
        let snapshot = self.snapshot();
        path::lookup(&snapshot, at)
            .map(|value| {
                T::deserialize(value).map_err(|source| ConfigError::Deserialize {
                    path: at.to_owned(),
                    source,
                })
            })
            .transpose()
    }

    /// A receiver of every applied snapshot (starts with the current one marked as seen).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Value>> {
        self.inner.snapshot.subscribe()
    }

    /// Sets the check run on every later candidate tree (after merge and placeholder
    /// resolution); an `Err` rejects that update. It does not re-check the current tree.
    pub fn set_validator(
        &self,
        validator: impl Fn(&Value) -> Result<(), String> + Send + Sync + 'static,
    ) {
        self.lock().validator = Some(Arc::new(validator));
    }

    /// The message of the last rejected update, cleared by the next accepted one.
    pub fn last_error(&self) -> Option<String> {
        self.lock().last_error.clone()
    }

    /// The text of a raw (extension-less) entry, e.g. `go-micro/token-srv/api_key`.
    pub fn raw(&self, key: &str) -> Option<String> {
        self.lock().raw.get(key).cloned()
    }

    /// All raw entries by key.
    pub fn raw_entries(&self) -> BTreeMap<String, String> {
        self.lock().raw.clone()
    }

    /// The ConfigMaps currently merged.
    pub fn configmap_ids(&self) -> Vec<ConfigMapId> {
        self.lock().sources.configmaps.keys().cloned().collect()
    }

    /// Replaces all ConfigMap sources at once; any error leaves the state unchanged.
    pub(crate) fn replace_configmaps(
        &self,
        listed: &BTreeMap<ConfigMapId, ConfigMapData>,
    ) -> Result<bool, ConfigError> {
        let mut state = self.lock();
        let mut candidate = state.sources.clone();
        candidate.configmaps = listed
            .iter()
            .map(|(id, data)| Ok((id.clone(), parse_configmap(id, data)?)))
            .collect::<Result<_, ConfigError>>()?;
        let built = candidate.build(state.validator.as_deref())?;
        state.sources = candidate;
        state.last_error = None;
        Ok(self.publish(&mut state, built))
    }

    /// Applies the latest data of some ConfigMaps. Unchanged ConfigMaps are skipped; one that
    /// does not parse is rejected alone (its last good entries stay); if the merged result
    /// fails placeholder resolution or the validator, the whole batch is rejected.
    pub fn apply_configmaps(&self, updates: BTreeMap<ConfigMapId, ConfigMapData>) -> ApplyOutcome {
        let mut state = self.lock();
        let mut outcome = ApplyOutcome::default();
        let mut candidate = state.sources.clone();
        for (id, data) in updates {
            let old = state
                .sources
                .configmaps
                .get(&id)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let unchanged = configmap::entries(&id, &data)
                .is_ok_and(|entries| entries.iter().eq(old.iter().map(|p| &p.entry)));
            if unchanged {
                continue;
            }
            match parse_configmap(&id, &data) {
                Ok(parsed) => {
                    outcome.changed_keys.extend(changed_keys(old, &parsed));
                    candidate.configmaps.insert(id, parsed);
                }
                Err(err) => reject(&mut outcome, err.to_string()),
            }
        }
        if outcome.changed_keys.is_empty() {
            if let Some(message) = outcome.rejected.last() {
                state.last_error = Some(message.clone());
            }
            return outcome;
        }
        match candidate.build(state.validator.as_deref()) {
            Ok(built) => {
                tracing::info!("config reloaded: {}", outcome.changed_keys.join(", "));
                state.sources = candidate;
                state.last_error = outcome.rejected.last().cloned();
                outcome.published = self.publish(&mut state, built);
            }
            Err(err) => {
                let message = format!("{}: {err}", outcome.changed_keys.join(", "));
                reject(&mut outcome, message);
                outcome.changed_keys.clear();
                state.last_error = outcome.rejected.last().cloned();
            }
        }
        outcome
    }

    /// Stores `built` and publishes its tree if it differs from the current one.
    fn publish(&self, state: &mut State, built: Built) -> bool {
        state.raw = built.raw;
        self.inner.snapshot.send_if_modified(|current| {
            let modified = **current != built.tree;
            if modified {
                *current = Arc::new(built.tree);
            }
            modified
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is replaced whole under the lock, so a poisoned lock still holds a
        // consistent value.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn reject(outcome: &mut ApplyOutcome, message: String) {
    tracing::error!("config update rejected: {message}");
    outcome.rejected.push(message);
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("configmaps", &self.configmap_ids())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    fn config(files: &[(&str, &str)]) -> Config {
        let entries = files
            .iter()
            .map(|(key, value)| Entry::new(*key, *value).unwrap())
            .collect();
        Config::from_entries(entries).unwrap()
    }

    #[test]
    fn from_dir_merges_config_then_remote_then_others() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "config.yaml",
            "server:\n  grpc:\n    addr: 0.0.0.0:9090\n    timeout: 1s\n",
        );
        write(
            "remote.yaml",
            "server:\n  grpc:\n    timeout: 2s\nconfig:\n  type: k8s\n  k8s:\n    namespace: go-micro\n    label_selector: app=token-srv\n",
        );
        write("a-extra.json", r#"{"server": {"grpc": {"timeout": "3s"}}}"#);
        let config = Config::from_dir(dir.path()).unwrap();
        assert_eq!(
            config
                .get::<String>("server.grpc.timeout")
                .unwrap()
                .as_deref(),
            Some("3s")
        );
        assert_eq!(
            config.get::<String>("server.grpc.addr").unwrap().as_deref(),
            Some("0.0.0.0:9090")
        );
        let settings = config.remote_settings().unwrap().unwrap();
        assert_eq!(settings.namespace, "go-micro");
        assert_eq!(settings.label_selector.as_deref(), Some("app=token-srv"));
    }

    #[test]
    fn from_dir_reports_the_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.yaml"), "a: 1\na: 2\n").unwrap();
        let message = Config::from_dir(dir.path()).unwrap_err().to_string();
        let file = dir.path().join("config.yaml").display().to_string();
        assert!(
            message.starts_with(&format!("{file}: invalid yaml:")),
            "{message}"
        );
    }

    #[test]
    fn get_deserializes_typed_values() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct Http {
            addr: String,
            origins: Vec<String>,
        }
        let config = config(&[(
            "config.yaml",
            "server:\n  http:\n    addr: ':8080'\n    origins: ['*']\n",
        )]);
        assert_eq!(
            config.get::<Http>("server.http").unwrap(),
            Some(Http {
                addr: ":8080".into(),
                origins: vec!["*".into()]
            })
        );
        assert_eq!(config.get::<String>("auth.api_key").unwrap(), None);
        let message = config
            .get::<u16>("server.http.addr")
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("config value at `server.http.addr`:"),
            "{message}"
        );
    }

    #[test]
    fn clones_share_state_and_raw_entries_are_available() {
        let config = config(&[("config.yaml", "a: 1"), ("api_key", "secret")]);
        let clone = config.clone();
        assert_eq!(clone.raw("api_key").as_deref(), Some("secret"));
        assert_eq!(*config.snapshot(), json!({"a": 1}));
        clone.set_validator(|_| Err("no".into()));
        let id = ConfigMapId {
            namespace: "n".into(),
            name: "c".into(),
        };
        let outcome = config.apply_configmaps(BTreeMap::from([(
            id,
            BTreeMap::from([("x.yaml".into(), "b: 2".into())]),
        )]));
        assert_eq!(outcome.rejected, ["n/c/x.yaml: rejected by validator: no"]);
        assert_eq!(config.last_error(), clone.last_error());
    }
}
