//! The diagnostics bundle a failed e2e test leaves, one per test and try, in nextest's store
//! directory: `target/nextest/<profile>/diagnostics/<test>/try-<attempt>/` (CI uploads it).

use std::path::{Path, PathBuf};

use crate::report::{ReportWriter, diagnostics};
use crate::secrets::Redactor;
use anyhow::{Context, Result};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The current test's directory of bundles, one per try.
fn test_dir() -> PathBuf {
    let workspace = var("NEXTEST_WORKSPACE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    // Outside nextest (`cargo test`) the test's thread carries its name.
    let test = var("NEXTEST_TEST_NAME")
        .or_else(|| std::thread::current().name().map(str::to_owned))
        .unwrap_or_else(|| "unnamed".into());
    workspace
        .join("target/nextest")
        .join(var("NEXTEST_PROFILE").unwrap_or_else(|| "cargo-test".into()))
        .join("diagnostics")
        .join(file_name(&test))
}

fn attempt() -> String {
    var("NEXTEST_ATTEMPT").unwrap_or_else(|| "1".into())
}

/// Where the current try's bundle goes.
pub(crate) fn dir() -> PathBuf {
    test_dir().join(format!("try-{}", attempt()))
}

/// On a test's first try, removes the bundles earlier runs of it left, so that only this
/// run's failures have one.
pub(crate) fn forget_earlier_runs() {
    if attempt() == "1" {
        let _ = std::fs::remove_dir_all(test_dir());
    }
}

/// Writes the bundle into `dir`, redacted by `redactor`: `failure.txt` (the message),
/// `diagnostics/` (pods with their status, current and previous logs, events and objects of
/// `namespace`, when a client is given) and `cluster-logs/` (the ends of the daemon and
/// component logs a local cluster keeps in `local_state_dir`, if given). Parts that cannot be
/// collected are named in `failure.txt`.
pub(crate) async fn write(
    dir: &Path,
    failure: &str,
    cluster: Option<(&kube::Client, &str)>,
    local_state_dir: Option<&Path>,
    redactor: Redactor,
) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    let writer = ReportWriter::new(dir, redactor);
    let mut text = format!("{failure}\n");
    match cluster {
        Some((client, namespace)) => {
            if let Err(error) = diagnostics::collect(client, namespace, &writer).await {
                text.push_str(&format!("\nno namespace diagnostics: {error:#}\n"));
            }
        }
        None => text.push_str("\nno cluster client: the cluster did not come up\n"),
    }
    if let Some(state_dir) = local_state_dir {
        match crate::cluster::local::log_tails(state_dir) {
            Ok(logs) => {
                for (name, log) in logs {
                    writer.write(Path::new("cluster-logs").join(name), &log)?;
                }
            }
            Err(error) => text.push_str(&format!("\nno cluster logs: {error:#}\n")),
        }
    }
    writer.write("failure.txt", &text)
}

/// A test name as one path component (`conformance::case_01_reg_001` →
/// `conformance.case_01_reg_001`).
fn file_name(test: &str) -> String {
    crate::images::sanitize(&test.replace("::", "."))
}

#[cfg(test)]
mod tests {
    #[test]
    fn test_names_become_one_path_component() {
        assert_eq!(
            super::file_name("conformance::REG_001"),
            "conformance.REG_001"
        );
        assert_eq!(super::file_name("a/b c"), "a_b_c");
    }
}
