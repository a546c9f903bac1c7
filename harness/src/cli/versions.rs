//! `harness versions`.

use std::process::ExitCode;

use anyhow::Result;
use local_cluster::versions::{Release, supported};

/// Prints the supported Kubernetes minors, what each backend runs for them, the default, and
/// which ones the local backend has built in its cache.
pub(super) fn execute() -> Result<ExitCode> {
    print!("{}", list(supported(), local_cluster::is_built));
    println!(
        "\nChoose with `harness run --kubernetes-version MINOR[,MINOR...]`, \
         HARNESS_KUBERNETES_VERSION or a profile's `kubernetesVersion`; the local backend \
         builds a minor on first use (about 11 min on 2 cores, then cached)."
    );
    Ok(ExitCode::SUCCESS)
}

/// One row per minor: minor, Kubernetes, etcd, k3s image, default, local build.
fn list(releases: &[Release], built: impl Fn(&Release) -> bool) -> String {
    let header = [
        "minor",
        "kubernetes (local)",
        "etcd (local)",
        "k3s image",
        "default",
        "local build",
    ]
    .map(String::from);
    let rows = releases.iter().map(|release| {
        [
            release.minor.clone(),
            release.kubernetes.clone(),
            release.etcd.clone(),
            format!("rancher/k3s:{}", release.k3s_tag),
            if release.default { "yes" } else { "" }.to_string(),
            if built(release) {
                "cached"
            } else {
                "not built"
            }
            .to_string(),
        ]
    });
    let rows: Vec<[String; 6]> = std::iter::once(header).chain(rows).collect();
    crate::table::render(&rows, |_| false, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_minor_with_its_cache_state() {
        let text = list(supported(), |release| release.minor == "1.34");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + supported().len(), "{text}");
        assert!(lines[0].starts_with("minor"), "{text}");
        let row_134 = lines.iter().find(|l| l.starts_with("1.34")).unwrap();
        assert!(
            row_134.contains("v1.34.4") && row_134.ends_with("cached"),
            "{text}"
        );
        let defaults = lines.iter().filter(|l| l.contains(" yes ")).count();
        assert_eq!(defaults, 1, "{text}");
        assert!(
            lines
                .iter()
                .skip(1)
                .filter(|l| l.ends_with("not built"))
                .count()
                == 3
        );
    }
}
