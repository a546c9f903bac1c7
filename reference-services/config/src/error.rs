//! The one error type of the crate: every message names the key or file and the reason.

use std::path::PathBuf;

/// Why configuration could not be loaded, parsed, resolved, validated or watched.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A local file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A config key has an extension that is neither `.yaml`/`.yml`, `.json` nor absent.
    #[error("{key}: unknown format `.{extension}` (expected .yaml, .yml, .json or no extension)")]
    UnknownFormat { key: String, extension: String },
    /// A YAML or JSON entry does not parse (syntax, duplicate key, top level not a mapping).
    #[error("{key}: invalid {format}: {reason}")]
    Parse {
        key: String,
        format: crate::Format,
        reason: String,
    },
    /// A `${...}` placeholder is malformed or names a path that is absent and has no default.
    #[error("placeholder at `{at}`: {reason}")]
    Placeholder { at: String, reason: String },
    /// Placeholders refer to each other in a loop.
    #[error("placeholder cycle: {chain}")]
    PlaceholderCycle { chain: String },
    /// The validator set with `Config::set_validator` refused the candidate tree.
    #[error("rejected by validator: {reason}")]
    Invalid { reason: String },
    /// A value exists at `path` but does not deserialize into the requested type.
    #[error("config value at `{path}`: {source}")]
    Deserialize {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// The `config.*` remote settings are incomplete or of the wrong type.
    #[error("remote config settings: {reason}")]
    Settings { reason: String },
    /// A request to the Kubernetes API failed (e.g. 403 Forbidden).
    #[error("cannot {verb} configmaps in namespace {namespace}: {message}")]
    Kube {
        verb: &'static str,
        namespace: String,
        message: String,
    },
    /// No Kubernetes client could be built from the kubeconfig or the environment.
    #[error("kubernetes client: {reason}")]
    Client { reason: String },
}
