//! Where the repository's files come from at run time: the checkout the binary was built in
//! while it is still there, else copies embedded in the binary. An installed harness (`cargo
//! install`, a release binary) runs from any directory: the Go build scripts of the local
//! backend are written from the embedded copies into the version-keyed cache before they run.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Env var overriding which checkout is used: a directory, or `none` for the embedded files
/// only (how the tests run an installed binary on a machine that has the checkout).
pub const CHECKOUT_ENV: &str = "HARNESS_CHECKOUT";

/// The checkout this crate was compiled in (`harness/local-cluster/../..`).
fn build_checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The checkout of this repository the binary uses, if any: `$HARNESS_CHECKOUT` (`none`: no
/// checkout), else the one it was built in while it still holds the local backend's scripts.
pub fn checkout() -> Option<PathBuf> {
    let root = match std::env::var_os(CHECKOUT_ENV) {
        Some(value) if value == "none" => return None,
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => build_checkout(),
    };
    let holds_files = root.join(CONTROLPLANE_BUILD).is_file() && root.join(NODE_BUILD).is_file();
    holds_files.then(|| std::fs::canonicalize(&root).unwrap_or(root))
}

/// The project's cache: `$GOMICRO_CACHE_DIR`, else `$XDG_CACHE_HOME/gomicro-conformance`, else
/// `~/.cache/gomicro-conformance` (as the scripts compute it).
pub fn cache_root() -> Option<PathBuf> {
    let env = |key: &str| {
        std::env::var_os(key)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("GOMICRO_CACHE_DIR").or_else(|| {
        let base = env("XDG_CACHE_HOME").or_else(|| Some(env("HOME")?.join(".cache")))?;
        Some(base.join("gomicro-conformance"))
    })
}

/// The control plane's build script, relative to the repository root.
pub(crate) const CONTROLPLANE_BUILD: &str = "ci/controlplane/build.sh";
/// The node runtime's build script, relative to the repository root.
pub(crate) const NODE_BUILD: &str = "ci/node/build.sh";

/// Every file the build scripts read (`ci/lib.sh`, `ci/controlplane`, `ci/node`: scripts,
/// version tables, the Go modules of each supported version), embedded with its path in the
/// repository by `build.rs`.
const SCRIPT_FILES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/script_files.rs"));

/// Where the scripts are run from: the checkout, else the directory the embedded copies are
/// (or will be) written to (`<cache>/harness-scripts/<version>-<hash>`).
pub(crate) fn scripts_root_path() -> PathBuf {
    checkout().unwrap_or_else(embedded_root)
}

fn embedded_root() -> PathBuf {
    let cache = cache_root().unwrap_or_else(|| std::env::temp_dir().join("gomicro-conformance"));
    cache.join("harness-scripts").join(format!(
        "{}-{}",
        env!("CARGO_PKG_VERSION"),
        content_hash(SCRIPT_FILES)
    ))
}

/// The root to run the scripts from, with the embedded copies written first when there is no
/// checkout (once per content: the directory is keyed by their hash).
pub(crate) fn scripts_root() -> anyhow::Result<PathBuf> {
    if let Some(root) = checkout() {
        return Ok(root);
    }
    let root = embedded_root();
    write_tree(&root, SCRIPT_FILES)?;
    Ok(root)
}

/// The first 16 hex digits of the SHA-256 of paths and contents: a stable key for the cache
/// directory.
pub fn content_hash<'a>(files: impl IntoIterator<Item = &'a (&'a str, &'a str)>) -> String {
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    for (path, text) in files {
        for part in [path.as_bytes(), &[0], text.as_bytes(), &[0]] {
            hasher.update(part);
        }
    }
    hasher.finalize()[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Writes `files` (repository-relative paths) under `root` unless a complete copy is there
/// already; `*.sh` files are executable. Written to a sibling directory and renamed, so a
/// concurrent or interrupted write never leaves a partial tree at `root`.
pub fn write_tree<'a>(
    root: &Path,
    files: impl IntoIterator<Item = &'a (&'a str, &'a str)>,
) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if root.join(".complete").is_file() {
        return Ok(());
    }
    let tmp = root.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    for (path, text) in files {
        let target = tmp.join(path);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&target, text)
            .with_context(|| format!("cannot write {}", target.display()))?;
        if path.ends_with(".sh") {
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    std::fs::write(tmp.join(".complete"), "")?;
    if let Err(error) = std::fs::rename(&tmp, root) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another process finished the same copy first.
        if !root.join(".complete").is_file() {
            return Err(error).with_context(|| format!("cannot create {}", root.display()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of `ci/controlplane` and `ci/node` is embedded except the maintainers' tool
    /// that regenerates the replace directives.
    #[test]
    fn the_embedded_files_are_the_scripts_directories() {
        let root = build_checkout();
        let mut on_disk = Vec::new();
        let mut stack = vec![root.join("ci/controlplane"), root.join("ci/node")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let relative = path.strip_prefix(&root).unwrap().display().to_string();
                    on_disk.push(relative);
                }
            }
        }
        on_disk.retain(|p| p != "ci/controlplane/gen-replaces.sh");
        on_disk.push("ci/lib.sh".into());
        on_disk.sort();
        let mut embedded: Vec<String> = SCRIPT_FILES.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
    }

    #[test]
    fn a_written_tree_is_complete_and_its_scripts_executable() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("scripts");
        write_tree(&root, SCRIPT_FILES).unwrap();
        for (path, text) in SCRIPT_FILES {
            assert_eq!(std::fs::read_to_string(root.join(path)).unwrap(), *text);
        }
        let mode = std::fs::metadata(root.join(NODE_BUILD))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
        // A second write keeps the complete copy.
        write_tree(&root, SCRIPT_FILES).unwrap();
        assert!(root.join(".complete").is_file());
    }
}
