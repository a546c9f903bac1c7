//! Go-Micro's configuration pattern (CONTRACT.md §4): a local config directory merged with the
//! `data` entries of selected ConfigMaps, `${path}` placeholders, and live reload.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gomicro_config::ConfigError> {
//! use std::time::Duration;
//! let config = gomicro_config::Config::from_dir("configs".as_ref())?;
//! config.set_validator(|tree| match tree.pointer("/auth/api_key") {
//!     Some(key) if !key.is_string() => Err("auth.api_key must be a string".into()),
//!     _ => Ok(()),
//! });
//! let _watch = match config.remote_settings()? {
//!     Some(settings) => {
//!         let client = settings.client().await?;
//!         Some(config.attach_configmaps(client, &settings, Duration::from_millis(200)).await?)
//!     }
//!     None => None,
//! };
//! let api_key: Option<String> = config.get("auth.api_key")?;
//! # let _ = api_key; Ok(()) }
//! ```
//!
//! Merge order: local files (see [`local`]), then ConfigMaps sorted by (namespace, name), each
//! ConfigMap's entries by data key; later wins leaf by leaf and lists are replaced
//! ([`merge`]). YAML/JSON entries are merged; raw (extension-less) entries are not merged into
//! the tree but kept by key ([`Config::raw`]). Placeholders: [`placeholder`]. YAML semantics:
//! [`parse`]. Reload: [`watch`].

mod config;
pub mod configmap;
mod entry;
mod error;
pub mod local;
pub mod merge;
pub mod parse;
pub mod path;
pub mod placeholder;
mod settings;
pub mod sources;
pub mod watch;

pub use config::{ApplyOutcome, Config};
pub use entry::{Entry, Format, configmap_key};
pub use error::ConfigError;
pub use settings::RemoteSettings;
pub use watch::WatchHandle;
