//! The ordered set of parsed sources and how it becomes one resolved tree.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::configmap::{self, ConfigMapData, ConfigMapId};
use crate::parse::{Content, ParsedEntry, parse_entry};
use crate::{ConfigError, Entry, merge, placeholder};

/// A check run on every candidate tree before it is applied.
pub type Validator = dyn Fn(&Value) -> Result<(), String> + Send + Sync;

/// Every source in merge order: local files first, then ConfigMaps by (namespace, name),
/// each ConfigMap's entries by data key.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub local: Vec<ParsedEntry>,
    pub configmaps: BTreeMap<ConfigMapId, Vec<ParsedEntry>>,
}

/// The outcome of merging and resolving [`Sources`].
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    /// The merged tree with placeholders resolved.
    pub tree: Value,
    /// Entries without extension, by key (not merged into the tree).
    pub raw: BTreeMap<String, String>,
}

impl Sources {
    /// All entries in merge order.
    pub fn entries(&self) -> impl Iterator<Item = &ParsedEntry> {
        self.local.iter().chain(self.configmaps.values().flatten())
    }

    /// Merges the trees in order, resolves placeholders, then runs `validator`.
    pub fn build(&self, validator: Option<&Validator>) -> Result<Built, ConfigError> {
        let mut merged = Map::new();
        let mut raw = BTreeMap::new();
        for parsed in self.entries() {
            match &parsed.content {
                Content::Tree(tree) => merge::merge_maps(&mut merged, tree.clone()),
                Content::Raw(text) => {
                    raw.insert(parsed.entry.key.clone(), text.clone());
                }
            }
        }
        let tree = placeholder::resolve(&Value::Object(merged))?;
        if let Some(validator) = validator {
            validator(&tree).map_err(|reason| ConfigError::Invalid { reason })?;
        }
        Ok(Built { tree, raw })
    }
}

/// Parses every entry, stopping at the first error.
pub fn parse_all(entries: Vec<Entry>) -> Result<Vec<ParsedEntry>, ConfigError> {
    entries.into_iter().map(parse_entry).collect()
}

/// The parsed entries of one ConfigMap.
pub fn parse_configmap(
    id: &ConfigMapId,
    data: &ConfigMapData,
) -> Result<Vec<ParsedEntry>, ConfigError> {
    parse_all(configmap::entries(id, data)?)
}

/// Keys whose entry was added, removed or changed between `old` and `new`, sorted.
pub fn changed_keys(old: &[ParsedEntry], new: &[ParsedEntry]) -> Vec<String> {
    let index = |entries: &[ParsedEntry]| -> BTreeMap<String, Entry> {
        entries
            .iter()
            .map(|p| (p.entry.key.clone(), p.entry.clone()))
            .collect()
    };
    let (old, new) = (index(old), index(new));
    let mut keys: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|key| old.get(*key) != new.get(*key))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parsed(key: &str, value: &str) -> ParsedEntry {
        parse_entry(Entry::new(key, value).unwrap()).unwrap()
    }

    fn id(namespace: &str, name: &str) -> ConfigMapId {
        ConfigMapId {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    #[test]
    fn local_files_then_configmaps_in_id_order() {
        let mut sources = Sources {
            local: vec![
                parsed("config.yaml", "a: local\nb: local\nc: local\nd: local\n"),
                parsed("remote.yaml", "b: remote\n"),
            ],
            ..Sources::default()
        };
        sources
            .configmaps
            .insert(id("ns", "b"), vec![parsed("ns/b/config.yaml", "d: ns-b\n")]);
        sources.configmaps.insert(
            id("ns", "a"),
            vec![
                parsed("ns/a/config.yaml", "c: a-config\nd: a-config\n"),
                parsed("ns/a/z.json", r#"{"c": "a-z"}"#),
            ],
        );
        let built = sources.build(None).unwrap();
        assert_eq!(
            built.tree,
            json!({"a": "local", "b": "remote", "c": "a-z", "d": "ns-b"})
        );
    }

    #[test]
    fn raw_entries_are_kept_aside() {
        let mut sources = Sources::default();
        sources.configmaps.insert(
            id("ns", "a"),
            vec![
                parsed("ns/a/api_key", "secret"),
                parsed("ns/a/c.yaml", "x: 1"),
            ],
        );
        let built = sources.build(None).unwrap();
        assert_eq!(built.tree, json!({"x": 1}));
        assert_eq!(
            built.raw.get("ns/a/api_key").map(String::as_str),
            Some("secret")
        );
    }

    #[test]
    fn placeholders_resolve_across_sources_and_validator_runs_last() {
        let sources = Sources {
            local: vec![
                parsed(
                    "config.yaml",
                    "auth:\n  api_key: ${secrets.key:some_api_key}\n",
                ),
                parsed("remote.yaml", "secrets:\n  key: from-remote\n"),
            ],
            ..Sources::default()
        };
        let built = sources.build(None).unwrap();
        assert_eq!(built.tree["auth"]["api_key"], json!("from-remote"));
        let refuse: &Validator = &|tree| match tree["auth"]["api_key"].as_str() {
            Some("from-remote") => Err("key not allowed".into()),
            _ => Ok(()),
        };
        let err = sources.build(Some(refuse)).unwrap_err();
        assert_eq!(err.to_string(), "rejected by validator: key not allowed");
    }

    #[test]
    fn changed_keys_cover_added_removed_and_modified() {
        let old = [
            parsed("n/c/a.yaml", "a: 1"),
            parsed("n/c/b.yaml", "b: 1"),
            parsed("n/c/k", "same"),
        ];
        let new = [
            parsed("n/c/b.yaml", "b: 2"),
            parsed("n/c/c.yaml", "c: 1"),
            parsed("n/c/k", "same"),
        ];
        assert_eq!(
            changed_keys(&old, &new),
            ["n/c/a.yaml", "n/c/b.yaml", "n/c/c.yaml"]
        );
    }
}
