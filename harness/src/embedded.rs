//! The reference profile and its `.k8s/` manifests, built into the binary (`build.rs`) so an
//! installed harness has its default profile without a checkout of the repository.

use std::path::{Path, PathBuf};

use anyhow::Result;

include!(concat!(env!("OUT_DIR"), "/reference_files.rs"));

/// The reference profile's path in the repository.
pub(crate) const REFERENCE_PROFILE: &str = "fixtures/profiles/reference.yaml";

/// Writes the embedded reference profile and manifests into the cache (once per content:
/// `<cache>/harness-reference/<version>-<hash>/`) and returns the profile's path there.
pub(crate) fn write_reference() -> Result<PathBuf> {
    let cache = local_cluster::sources::cache_root()
        .ok_or_else(|| anyhow::anyhow!("no cache directory: set GOMICRO_CACHE_DIR or HOME"))?;
    write_reference_into(&cache)
}

fn write_reference_into(cache: &Path) -> Result<PathBuf> {
    let root = cache.join("harness-reference").join(format!(
        "{}-{}",
        env!("CARGO_PKG_VERSION"),
        local_cluster::sources::content_hash(REFERENCE_FILES)
    ));
    local_cluster::sources::write_tree(&root, REFERENCE_FILES)?;
    Ok(root.join(REFERENCE_PROFILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded copy is the checkout's profile and every manifest of `.k8s/`, and it loads
    /// as a profile whose manifests are those files.
    #[test]
    fn the_embedded_reference_is_the_checkouts_and_loads() {
        let checkout = crate::images::workspace_root();
        let manifests = std::fs::read_dir(checkout.join(".k8s")).unwrap().count();
        assert_eq!(REFERENCE_FILES.len(), manifests + 1);
        for (path, text) in REFERENCE_FILES {
            assert_eq!(
                std::fs::read_to_string(checkout.join(path)).unwrap(),
                *text,
                "{path}"
            );
        }
        let cache = tempfile::tempdir().unwrap();
        let path = write_reference_into(cache.path()).unwrap();
        let profile = crate::profile::Profile::load(&path).unwrap();
        assert!(profile.manifests.join("00-namespace.yaml").is_file());
    }
}
