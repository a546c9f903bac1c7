//! Reading the server settings of the config tree (`server.grpc.addr`, `…timeout`).

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use gomicro_config::Config;

/// A listen address as written in Go-Micro configs: `:9090` means all interfaces.
pub fn listen_addr(configured: &str) -> String {
    if configured.starts_with(':') {
        format!("0.0.0.0{configured}")
    } else {
        configured.to_owned()
    }
}

/// A Go-style duration such as `1s`, `500ms`, `1m30s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|error| format!("invalid duration {text:?}: {error}"))
}

/// Typed reads of the live configuration with defaults.
pub trait ConfigExt {
    /// The string at `path`, or `default` when absent.
    fn string_or(&self, path: &str, default: &str) -> anyhow::Result<String>;
    /// The duration at `path` (a string like `1s`), or `default` when absent.
    fn duration_or(&self, path: &str, default: Duration) -> anyhow::Result<Duration>;
    /// The list of strings at `path`, empty when absent.
    fn strings(&self, path: &str) -> anyhow::Result<Vec<String>>;
}

impl ConfigExt for Config {
    fn string_or(&self, path: &str, default: &str) -> anyhow::Result<String> {
        Ok(self
            .get::<String>(path)
            .with_context(|| format!("config {path}"))?
            .unwrap_or_else(|| default.to_owned()))
    }

    fn duration_or(&self, path: &str, default: Duration) -> anyhow::Result<Duration> {
        match self
            .get::<String>(path)
            .with_context(|| format!("config {path}"))?
        {
            Some(text) => parse_duration(&text).map_err(|e| anyhow!("config {path}: {e}")),
            None => Ok(default),
        }
    }

    fn strings(&self, path: &str) -> anyhow::Result<Vec<String>> {
        Ok(self
            .get::<Vec<String>>(path)
            .with_context(|| format!("config {path}"))?
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(":9090", "0.0.0.0:9090")]
    #[case("0.0.0.0:8080", "0.0.0.0:8080")]
    #[case("[::]:9090", "[::]:9090")]
    fn listen_addresses(#[case] configured: &str, #[case] expected: &str) {
        assert_eq!(listen_addr(configured), expected);
    }

    #[rstest]
    #[case("1s", Duration::from_secs(1))]
    #[case("500ms", Duration::from_millis(500))]
    #[case("1m30s", Duration::from_secs(90))]
    fn durations(#[case] text: &str, #[case] expected: Duration) {
        assert_eq!(parse_duration(text).unwrap(), expected);
    }

    #[test]
    fn bad_duration_is_named() {
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .starts_with("invalid duration \"soon\"")
        );
    }
}
