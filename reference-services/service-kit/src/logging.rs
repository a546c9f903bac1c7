//! Plain-text logging to stdout (the pod log), level from `RUST_LOG`.
//!
//! The default shows INFO and the config crate's DEBUG line `config loaded: <key> format: <format>`
//! (CONTRACT.md §4), which is how an operator sees which ConfigMap entries a service uses.

use tracing_subscriber::EnvFilter;

/// Log filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info,gomicro_config=debug";

/// Installs the global subscriber; later calls are no-ops.
pub fn init_tracing() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .try_init();
}
