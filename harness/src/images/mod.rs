//! Makes the profile's images available: OCI archives ([`oci`]) the harness writes from
//! local directory trees (the reference services' cargo builds, a third party's
//! directory) or that a profile brings, imported into the node's containerd by the local
//! and k3s backends; Docker builds for k3s stay available (see [`crate::cluster::k3s`]).

pub(crate) mod oci;
pub(crate) mod push;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::profile::{DockerBuild, LocalImageSource, Profile};

/// An image assembled from a directory tree on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LocalImage {
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
pub(crate) type ImageMap = BTreeMap<String, LocalImage>;

/// Root of this cargo workspace as compiled (tests and fixtures; at run time the harness asks
/// [`checkout`], as the directory may be gone).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The checkout of this workspace the harness uses at run time (see
/// [`local_cluster::sources::checkout`]); `None` for an installed binary away from its sources.
pub fn checkout() -> Option<PathBuf> {
    local_cluster::sources::checkout()
}

/// The cargo alias (`.cargo/config.toml`) that builds every local image's package together
/// with the harness: the one list of those packages. With the harness in it, the selection
/// resolves exactly like `cargo run -p harness` and the test build (checked by
/// `ci/check-feature-unification.sh`), so the dependency tree compiled for the harness serves
/// the images and the tests too, and one build serves every profile.
const BUILD_IMAGES_ALIAS: &str = "build-images";

/// The cargo profile the images are built in: the one this harness was built in. A dev build
/// (`cargo run -p harness`, the tests) deploys dev builds, which share their dependency tree
/// with the test build; a release build (`cargo run --release`, `harness bench`) deploys release
/// builds, so measured speed is the optimised code's.
fn image_build_profile() -> (&'static str, &'static [&'static str]) {
    if cfg!(debug_assertions) {
        ("debug", &[])
    } else {
        ("release", &["--release"])
    }
}

/// Builds (where needed) and assembles every local image of the profile.
///
/// Cargo packages are built once, in the harness's own profile ([`image_build_profile`]), then
/// each image root gets the binary and its `conf` directory under `target/local-images/<image>/`.
pub(crate) fn prepare_local(profile: &Profile) -> Result<ImageMap> {
    let needs_cargo = profile.images.values().any(|image| {
        image
            .local
            .as_ref()
            .is_some_and(|l| l.cargo_package.is_some())
    });
    if needs_cargo {
        // Always the whole set (as `ci/test.sh` builds it): building one service alone
        // resolves features differently and recompiles much of the dependency tree.
        let Some(root) = checkout() else {
            bail!(
                "profile {}: its images are built from cargo packages of the harness's repository \
                 (`local.cargoPackage`), and this harness runs without a checkout of it (an \
                 installed binary). Run it from a checkout (`cargo run -p harness -- run` in a \
                 clone of the repository), point {} at one, or test your own \
                 implementation with `--profile` and images of your own (`local.dir` or \
                 `archive`)",
                profile.source.display(),
                local_cluster::sources::CHECKOUT_ENV
            );
        };
        cargo_build_images(&root)?;
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

/// The harness's own pod image (see the `harness-pod` program), supplied on every backend like
/// the implementation's images: the cases' foreign and never-Ready pods run it.
pub(crate) const HARNESS_POD_IMAGE: &str = concat!(
    "gomicro-conformance/harness-pod:",
    env!("CARGO_PKG_VERSION")
);

/// The harness pod image's tree: the `harness-pod` program found beside `harness_exe`.
fn harness_pod(harness_exe: &Path) -> Result<LocalImage> {
    let program = harness_exe.with_file_name("harness-pod");
    if !program.is_file() {
        bail!(
            "{} is missing: the harness supplies its pod image from it (it is built and installed with the harness: `cargo build -p harness`, `cargo install`)",
            program.display()
        );
    }
    let root = target_dir().join("local-images/harness-pod");
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    std::fs::copy(&program, root.join("harness-pod"))
        .with_context(|| format!("cannot copy {}", program.display()))?;
    Ok(LocalImage {
        root,
        mount_path: "/harness".into(),
        entrypoint: vec!["/harness/harness-pod".into(), "idle".into()],
        working_dir: None,
        env: BTreeMap::new(),
        host_paths: Vec::new(),
    })
}

/// Builds the profile's local images, adds the harness pod image (from beside `harness_exe`)
/// and writes them as OCI archives to `target/oci-images/`, for a node's containerd to import;
/// returns their paths.
pub(crate) fn local_archives(profile: &Profile, harness_exe: &Path) -> Result<Vec<PathBuf>> {
    let mut images = prepare_local(profile)?;
    images.insert(HARNESS_POD_IMAGE.to_string(), harness_pod(harness_exe)?);
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
pub(crate) fn docker_builds(profile: &Profile) -> BTreeMap<String, DockerBuild> {
    profile
        .images
        .iter()
        .filter_map(|(name, image)| Some((name.clone(), image.docker.clone()?)))
        .collect()
}

fn cargo_build_images(workspace: &Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let command = [&[BUILD_IMAGES_ALIAS], image_build_profile().1].concat();
    let shown = command.join(" ");
    eprintln!(
        "[images] cargo {shown} (a cold build compiles the dependency tree: minutes; warm, a second)"
    );
    let started = std::time::Instant::now();
    let status = Command::new(&cargo)
        .current_dir(workspace)
        .args(&command)
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!("building the local images failed: cargo {shown} ({status})");
    }
    eprintln!("[images] built in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Where image trees and archives are written: cargo's target dir in a checkout, else the
/// project's cache (`<cache>/harness-images`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| Some(checkout()?.join("target")))
        .or_else(|| Some(local_cluster::sources::cache_root()?.join("harness-images")))
        .unwrap_or_else(|| std::env::temp_dir().join("gomicro-conformance-images"))
}

fn assemble_cargo_image(name: &str, package: &str, local: &LocalImageSource) -> Result<PathBuf> {
    let root = target_dir().join("local-images").join(sanitize(name));
    if root.exists() {
        std::fs::remove_dir_all(&root)
            .with_context(|| format!("cannot clear {}", root.display()))?;
    }
    std::fs::create_dir_all(&root)?;
    let binary = target_dir().join(image_build_profile().0).join(package);
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

/// One path component for an image reference or a test name (`a/b:c` → `a_b_c`).
pub(crate) fn sanitize(image: &str) -> String {
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

    /// Every workspace package a reference profile names as a cargo package is in the alias,
    /// and the scripts build through the alias, not a list of their own.
    #[test]
    fn the_alias_builds_every_cargo_package_and_the_scripts_use_it() {
        let root = workspace_root();
        let config = std::fs::read_to_string(root.join(".cargo/config.toml")).unwrap();
        let alias = config
            .lines()
            .find(|l| l.starts_with(&format!("{BUILD_IMAGES_ALIAS} = ")))
            .expect("the build-images alias");
        for profile in ["reference.yaml", "core-only.yaml"] {
            let path = root.join("fixtures/profiles").join(profile);
            let profile = Profile::load(&path).unwrap();
            for image in profile.images.values() {
                if let Some(package) = image
                    .local
                    .as_ref()
                    .and_then(|l| l.cargo_package.as_deref())
                {
                    assert!(
                        alias.contains(&format!("-p {package} "))
                            || alias.contains(&format!("-p {package}\"")),
                        "{package}: {alias}"
                    );
                }
            }
        }
        for script in ["ci/test.sh", "ci/run.sh", "ci/flake-rate.sh"] {
            let text = std::fs::read_to_string(root.join(script)).unwrap();
            assert!(text.contains("cargo build-images"), "{script}");
            assert!(
                !text.contains("-p token-srv"),
                "{script} lists packages itself"
            );
        }
    }
}
