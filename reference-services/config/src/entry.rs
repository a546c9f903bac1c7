//! Config entries: keying (`<namespace>/<configmap>/<data key>`) and format detection.

use std::fmt;

use crate::ConfigError;

/// How an entry's value is encoded, taken from the key's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `.yaml` or `.yml`.
    Yaml,
    /// `.json`.
    Json,
    /// No extension: the value is kept as text and not merged into the tree.
    Raw,
}

impl Format {
    /// The format named by the extension of the last segment of `key` (the text after its last
    /// `.`, as Go's `filepath.Ext`; compared case-insensitively). `a/b/config.yaml` → Yaml,
    /// `a/b/api_key` → Raw, `a/b/nginx.conf` → [`ConfigError::UnknownFormat`].
    pub fn from_key(key: &str) -> Result<Format, ConfigError> {
        let file_name = key.rsplit('/').next().unwrap_or(key);
        let Some((_, extension)) = file_name.rsplit_once('.') else {
            return Ok(Format::Raw);
        };
        match extension.to_ascii_lowercase().as_str() {
            "yaml" | "yml" => Ok(Format::Yaml),
            "json" => Ok(Format::Json),
            "" => Ok(Format::Raw),
            _ => Err(ConfigError::UnknownFormat {
                key: key.to_owned(),
                extension: extension.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Format {
    /// The words of the contract's log line: `yaml`, `json`, `raw`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
            Format::Raw => "raw",
        })
    }
}

/// One source of configuration: a local file or one `data` entry of a ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file path, or `<namespace>/<configmap>/<data key>` for ConfigMaps.
    pub key: String,
    /// The format from the key's extension.
    pub format: Format,
    /// The text as stored.
    pub value: String,
}

impl Entry {
    /// An entry whose format is detected from `key`.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Result<Entry, ConfigError> {
        let key = key.into();
        let format = Format::from_key(&key)?;
        Ok(Entry {
            key,
            format,
            value: value.into(),
        })
    }
}

/// The key of a ConfigMap data entry: `<namespace>/<configmap>/<data key>`.
pub fn configmap_key(namespace: &str, name: &str, data_key: &str) -> String {
    format!("{namespace}/{name}/{data_key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configmap_keys_join_namespace_name_and_data_key() {
        assert_eq!(
            configmap_key("go-micro", "token-srv", "config.yaml"),
            "go-micro/token-srv/config.yaml"
        );
    }

    #[test]
    fn format_comes_from_the_extension() {
        let cases = [
            ("go-micro/token-srv/config.yaml", Format::Yaml),
            ("go-micro/token-srv/config.yml", Format::Yaml),
            ("go-micro/token-srv/CONFIG.YAML", Format::Yaml),
            ("go-micro/token-srv/extra.json", Format::Json),
            ("go-micro/token-srv/api_key", Format::Raw),
            ("go-micro/token-srv/trailing.", Format::Raw),
            ("/etc/app.d/plain", Format::Raw),
            ("config.yaml", Format::Yaml),
        ];
        for (key, expected) in cases {
            assert_eq!(Format::from_key(key).unwrap(), expected, "{key}");
        }
    }

    #[test]
    fn other_extensions_are_rejected_naming_key_and_extension() {
        let err = Format::from_key("go-micro/web/nginx.conf").unwrap_err();
        assert!(matches!(err, ConfigError::UnknownFormat { .. }));
        let message = err.to_string();
        assert!(message.contains("go-micro/web/nginx.conf"), "{message}");
        assert!(message.contains("`.conf`"), "{message}");
    }

    #[test]
    fn format_words_match_the_contract() {
        assert_eq!(Format::Yaml.to_string(), "yaml");
        assert_eq!(Format::Json.to_string(), "json");
        assert_eq!(Format::Raw.to_string(), "raw");
    }
}
