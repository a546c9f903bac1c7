//! Makes the profile's images available: OCI archives ([`oci`]) the harness writes from
//! local directory trees (the reference services' release builds, a third party's
//! directory) or that a profile brings, imported into the node's containerd by the local
//! and k3s backends; Docker builds for k3s stay available (see [`crate::cluster::k3s`]).

pub mod oci;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::profile::{DockerBuild, LocalImageSource, Profile};

/// An image assembled from a directory tree on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalImage {
    /// Directory on the host holding the image's files.
    pub root: PathBuf,
    /// Where the tree appears in the image (e.g. `/app`).
    pub mount_path: PathBuf,
    /// Entrypoint and default arguments: the first element plays ENTRYPOINT, the rest CMD.
    pub entrypoint: Vec<String>,
    /// Working directory (`/` when absent); a relative entrypoint is found from here.
    pub working_dir: Option<PathBuf>,
    /// The image's environment (Dockerfile `ENV`).
    pub env: BTreeMap<String, String>,
    /// Host files and directories copied to the same paths (programs with their libraries).
    pub host_paths: Vec<PathBuf>,
}

/// Image name (as written in pod specs) → its tree.
pub type ImageMap = BTreeMap<String, LocalImage>;

/// Root of this cargo workspace.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The packages every local image build compiles together: the harness, the reference
/// services and the bench's baseline. Cargo resolves features per selection; with the harness
/// in it, this selection resolves exactly like `cargo run --release -p harness` (checked by
/// `ci/check-feature-unification.sh`), so the dependency tree compiled for the harness serves
/// the images too, and one build serves every profile. `ci/test.sh` and `ci/flake-rate.sh`
/// build the same set (a test checks it).
pub(crate) const REFERENCE_PACKAGES: [&str; 5] = [
    "admin-srv",
    "bench-baseline",
    "harness",
    "token-srv",
    "user-srv",
];

/// Builds (where needed) and assembles every local image of the profile.
///
/// Cargo packages are built once in release mode, then each image root gets the binary and
/// its `conf` directory under `target/local-images/<image>/`.
pub fn prepare_local(profile: &Profile) -> Result<ImageMap> {
    let mut packages: Vec<&str> = profile
        .images
        .values()
        .filter_map(|image| image.local.as_ref()?.cargo_package.as_deref())
        .collect();
    if !packages.is_empty() {
        // Always the whole set (as `ci/test.sh` builds it): building one service alone
        // resolves features differently and recompiles much of the dependency tree.
        packages.extend(REFERENCE_PACKAGES);
        packages.sort_unstable();
        packages.dedup();
        cargo_build_release(&packages)?;
    }
    let mut map = ImageMap::new();
    for (name, image) in &profile.images {
        let Some(local) = &image.local else { continue };
        let root = match &local.cargo_package {
            Some(package) => assemble_cargo_image(name, package, local)?,
            None => local.dir.clone().expect("validated: dir or cargoPackage"),
        };
        if !root.is_dir() {
            bail!(
                "local image {name}: directory {} does not exist",
                root.display()
            );
        }
        map.insert(
            name.clone(),
            LocalImage {
                root,
                mount_path: local.mount_path.clone(),
                entrypoint: local.entrypoint.clone(),
                working_dir: local.working_dir.clone(),
                env: local.env.clone(),
                host_paths: local.host_paths.clone(),
            },
        );
    }
    Ok(map)
}

/// Builds the profile's local images and writes them as OCI archives to
/// `target/oci-images/`, for the local node's containerd to import; returns their paths.
pub fn local_archives(profile: &Profile) -> Result<Vec<PathBuf>> {
    let images = prepare_local(profile)?;
    let started = std::time::Instant::now();
    let written = oci::write_archives(&images, &target_dir().join("oci-images"))?;
    let bytes: u64 = written.iter().map(|w| w.summary.archive_bytes).sum();
    eprintln!(
        "[images] {} OCI archives ({:.1} MiB) written in {:.1} s",
        written.len(),
        bytes as f64 / (1024.0 * 1024.0),
        started.elapsed().as_secs_f64()
    );
    let mut archives: Vec<PathBuf> = written.into_iter().map(|w| w.path).collect();
    for (name, image) in &profile.images {
        if let Some(archive) = &image.archive {
            if !archive.is_file() {
                bail!("image {name}: archive {} does not exist", archive.display());
            }
            archives.push(archive.clone());
        }
    }
    Ok(archives)
}

/// The Docker builds of the profile's images (the k3s backend skips builds of images the
/// engine already has when `HARNESS_SKIP_IMAGE_BUILD=1`, but still imports them).
pub fn docker_builds(profile: &Profile) -> BTreeMap<String, DockerBuild> {
    profile
        .images
        .iter()
        .filter_map(|(name, image)| Some((name.clone(), image.docker.clone()?)))
        .collect()
}

fn cargo_build_release(packages: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .current_dir(workspace_root())
        .args(["build", "--release", "--locked"]);
    for package in packages {
        command.args(["-p", package]);
    }
    eprintln!(
        "[images] cargo build --release -p {} (a cold build compiles the dependency tree: minutes; warm, a second)",
        packages.join(" -p ")
    );
    let started = std::time::Instant::now();
    let status = command
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!(
            "building the local images failed: cargo build --release -p {} ({status})",
            packages.join(" -p ")
        );
    }
    eprintln!("[images] built in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn assemble_cargo_image(name: &str, package: &str, local: &LocalImageSource) -> Result<PathBuf> {
    let root = target_dir().join("local-images").join(sanitize(name));
    if root.exists() {
        std::fs::remove_dir_all(&root)
            .with_context(|| format!("cannot clear {}", root.display()))?;
    }
    std::fs::create_dir_all(&root)?;
    let binary = target_dir().join("release").join(package);
    std::fs::copy(&binary, root.join(package))
        .with_context(|| format!("local image {name}: cannot copy {}", binary.display()))?;
    if let Some(conf) = &local.conf {
        copy_dir(conf, &root.join("conf"))
            .with_context(|| format!("local image {name}: cannot copy {}", conf.display()))?;
    }
    if let Some(overlay) = &local.overlay {
        copy_dir(overlay, &root)
            .with_context(|| format!("local image {name}: cannot copy {}", overlay.display()))?;
    }
    Ok(root)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// A directory name for an image reference (`a/b:c` → `a_b_c`).
fn sanitize(image: &str) -> String {
    image
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_become_flat_directory_names() {
        assert_eq!(
            sanitize("gomicro-conformance/token-srv:0.1.0"),
            "gomicro-conformance_token-srv_0.1.0"
        );
    }

    /// A selection that differs from the harness's would resolve features differently and
    /// rebuild much of the dependency tree.
    #[test]
    fn the_ci_scripts_build_exactly_the_reference_packages() {
        for script in ["ci/test.sh", "ci/flake-rate.sh"] {
            let text = std::fs::read_to_string(workspace_root().join(script)).unwrap();
            let line = text
                .lines()
                .find(|l| l.starts_with("cargo build") && l.contains("--release"))
                .unwrap_or_else(|| panic!("{script} has no release build"));
            let words: Vec<&str> = line.split_whitespace().collect();
            let mut packages: Vec<&str> = words
                .windows(2)
                .filter(|w| w[0] == "-p")
                .map(|w| w[1])
                .collect();
            packages.sort_unstable();
            assert_eq!(packages, REFERENCE_PACKAGES, "{script}: {line}");
        }
    }
}
