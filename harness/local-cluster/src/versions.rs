//! The supported Kubernetes minors (`ci/controlplane/versions.tsv`, embedded): for each, the
//! Kubernetes and etcd versions the local backend builds and the k3s backend's image tag.

use std::sync::LazyLock;

use anyhow::bail;

/// The table's text, as the build scripts read it.
const TABLE: &str = include_str!("../../../ci/controlplane/versions.tsv");

/// One supported Kubernetes minor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The minor, e.g. `1.34`.
    pub minor: String,
    /// The Kubernetes version built for it, e.g. `v1.34.4`.
    pub kubernetes: String,
    /// The etcd version built with it.
    pub etcd: String,
    /// The `rancher/k3s` image tag of the k3s backend.
    pub k3s_tag: String,
    /// Whether it is the default minor.
    pub default: bool,
}

static RELEASES: LazyLock<Vec<Release>> =
    LazyLock::new(|| parse(TABLE).expect("ci/controlplane/versions.tsv is well-formed"));

fn parse(text: &str) -> anyhow::Result<Vec<Release>> {
    let mut releases = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
        let [minor, kubernetes, etcd, k3s_tag, default] = fields[..] else {
            bail!("versions.tsv: not 5 tab-separated fields: {line:?}");
        };
        if kubernetes.strip_prefix(&format!("v{minor}.")).is_none() {
            bail!("versions.tsv: {kubernetes} is not a patch of {minor}");
        }
        releases.push(Release {
            minor: minor.into(),
            kubernetes: kubernetes.into(),
            etcd: etcd.into(),
            k3s_tag: k3s_tag.into(),
            default: default == "default",
        });
    }
    if releases.iter().filter(|r| r.default).count() != 1 {
        bail!("versions.tsv: exactly one row must be the default");
    }
    Ok(releases)
}

/// Every supported minor, oldest first.
pub fn supported() -> &'static [Release] {
    &RELEASES
}

/// The default minor (the newest whose conformance run is green).
pub fn default_release() -> &'static Release {
    RELEASES
        .iter()
        .find(|r| r.default)
        .expect("parse checks there is one")
}

/// The supported minor `wanted` names: `1.34`, `v1.34`, or its exact patch (`v1.34.4`); an
/// unsupported one is refused with the supported minors listed.
pub fn release(wanted: &str) -> anyhow::Result<&'static Release> {
    find(&RELEASES, wanted)
}

fn find<'a>(releases: &'a [Release], wanted: &str) -> anyhow::Result<&'a Release> {
    let trimmed = wanted.trim();
    let bare = trimmed.strip_prefix('v').unwrap_or(trimmed);
    let found = releases
        .iter()
        .find(|r| bare == r.minor || bare == &r.kubernetes[1..]);
    if let Some(release) = found {
        return Ok(release);
    }
    let minors: Vec<&str> = releases.iter().map(|r| r.minor.as_str()).collect();
    let patch_of = releases
        .iter()
        .find(|r| bare.starts_with(&format!("{}.", r.minor)));
    match patch_of {
        Some(release) => bail!(
            "Kubernetes {trimmed} is not the patch built for {}: use {} or {}",
            release.minor,
            release.minor,
            release.kubernetes
        ),
        None => bail!(
            "Kubernetes {trimmed} is not supported; supported minors: {}",
            minors.join(", ")
        ),
    }
}

/// The minor (`1.34`) of a server version such as `v1.34.4` or `v1.34.4+k3s1`.
pub fn minor_of(version: &str) -> Option<String> {
    let bare = version.trim().strip_prefix('v').unwrap_or(version.trim());
    let mut parts = bare.split('.');
    let (major, minor) = (parts.next()?, parts.next()?);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(major) && digits(minor)).then(|| format!("{major}.{minor}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_four_minors_and_one_default() {
        let minors: Vec<&str> = supported().iter().map(|r| r.minor.as_str()).collect();
        assert_eq!(minors, ["1.34", "1.35", "1.36", "1.37"]);
        assert!(supported().contains(default_release()));
        for release in supported() {
            assert!(
                release
                    .kubernetes
                    .starts_with(&format!("v{}.", release.minor))
            );
            assert!(release.k3s_tag.starts_with(&format!("v{}.", release.minor)));
            assert!(release.etcd.starts_with("v3."));
        }
    }

    #[test]
    fn a_minor_is_found_by_minor_or_exact_patch() {
        let table = "1.34\tv1.34.4\tv3.6.16\tv1.34.4-k3s1\t-\n1.35\tv1.35.4\tv3.6.16\tv1.35.6-k3s1\tdefault\n";
        let releases = parse(table).unwrap();
        for wanted in ["1.34", "v1.34", "1.34.4", "v1.34.4", " 1.34 "] {
            assert_eq!(find(&releases, wanted).unwrap().minor, "1.34", "{wanted}");
        }
        let other_patch = find(&releases, "1.34.2").unwrap_err().to_string();
        assert!(other_patch.contains("use 1.34 or v1.34.4"), "{other_patch}");
        let unsupported = find(&releases, "1.29").unwrap_err().to_string();
        assert!(
            unsupported.contains("supported minors: 1.34, 1.35"),
            "{unsupported}"
        );
    }

    #[test]
    fn a_malformed_table_is_refused() {
        assert!(parse("1.34\tv1.34.4\tv3.6.16\n").is_err());
        assert!(parse("1.34\tv1.35.4\tv3.6.16\tt\tdefault\n").is_err());
        assert!(parse("1.34\tv1.34.4\tv3.6.16\tt\t-\n").is_err());
    }

    #[test]
    fn minor_of_server_versions() {
        assert_eq!(minor_of("v1.34.4").as_deref(), Some("1.34"));
        assert_eq!(minor_of("v1.35.6+k3s1").as_deref(), Some("1.35"));
        assert_eq!(minor_of("garbage"), None);
    }
}
