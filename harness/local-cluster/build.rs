//! Writes `$OUT_DIR/script_files.rs`: every file of `ci/controlplane` and `ci/node` (the local
//! backend's Go build scripts, the version table and the Go modules of each supported version)
//! and `ci/lib.sh`, as `(repository path, include_str!(absolute path))`, so an installed binary
//! can build the local backend without a checkout (`crate::sources`). A new version's Go
//! module directory is embedded without naming it anywhere else.

use std::path::{Path, PathBuf};

/// Files under `dir`, recursively, as paths relative to `root`, sorted.
fn files_below(root: &Path, dir: &Path, into: &mut Vec<String>) {
    println!("cargo::rerun-if-changed={}", dir.display());
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files_below(root, &path, into);
        } else {
            let relative = path.strip_prefix(root).expect("below the root");
            into.push(relative.to_string_lossy().into_owned());
        }
    }
}

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest_dir.join("../..");
    let mut files = vec!["ci/lib.sh".to_string()];
    println!(
        "cargo::rerun-if-changed={}",
        root.join("ci/lib.sh").display()
    );
    for dir in ["ci/controlplane", "ci/node"] {
        files_below(&root, &root.join(dir), &mut files);
    }
    // The maintainers' tool that writes the Go modules needs the module proxy, not the harness.
    files.retain(|path| path != "ci/controlplane/gen-replaces.sh");
    files.sort();
    let mut code = String::from("&[\n");
    for path in &files {
        let absolute = root.join(path).canonicalize().expect("an existing file");
        code.push_str(&format!(
            "    ({path:?}, include_str!({:?})),\n",
            absolute.display().to_string()
        ));
    }
    code.push_str("]\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    std::fs::write(out.join("script_files.rs"), code).expect("writing script_files.rs");
}
