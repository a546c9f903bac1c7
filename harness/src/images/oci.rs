//! The profile's local images as OCI image archives (no Docker): each image root at its
//! mount path, plus the shared libraries its entrypoint program needs (found with ldd, so
//! the glibc cargo builds run without a distribution in the image), plus the host paths
//! it names (e.g. `/bin/sh` for a script image).

use std::path::Path;
use std::time::{Duration, Instant};

use super::{ImageMap, LocalImage, sanitize};
use anyhow::{Context as _, Result};
use oci_archive::{ArchiveSummary, ImageConfig, Layer, write_archive};

/// One written archive and how long writing it took.
#[derive(Debug, Clone)]
pub(crate) struct WrittenArchive {
    /// The archive file.
    pub path: std::path::PathBuf,
    /// Reference, digest and size.
    pub summary: ArchiveSummary,
    /// Time spent assembling and writing it.
    pub elapsed: Duration,
}

/// Writes `<out_dir>/<image>.tar` for every image of `images`.
pub(crate) fn write_archives(images: &ImageMap, out_dir: &Path) -> Result<Vec<WrittenArchive>> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    images
        .iter()
        .map(|(name, image)| {
            let started = Instant::now();
            let path = out_dir.join(format!("{}.tar", sanitize(name)));
            let summary = write_image(name, image, &path)
                .with_context(|| format!("image {name}: writing {}", path.display()))?;
            Ok(WrittenArchive {
                path,
                summary,
                elapsed: started.elapsed(),
            })
        })
        .collect()
}

fn write_image(name: &str, image: &LocalImage, path: &Path) -> Result<ArchiveSummary> {
    let mount_path = image
        .mount_path
        .to_str()
        .context("mount path is not UTF-8")?;
    let mut layer = Layer::new();
    layer.add_dir(&image.root, mount_path)?;
    // The entrypoint's libraries, and those of every program at the top of the root (e.g. a
    // service binary a wrapper script starts).
    for program in entrypoint_on_host(image)
        .into_iter()
        .chain(top_level_programs(&image.root)?)
    {
        layer.add_shared_libraries_of(&program)?;
    }
    for host in &image.host_paths {
        let in_image = host.to_str().context("host path is not UTF-8")?;
        if host.is_dir() {
            layer.add_dir(host, in_image)?;
        } else {
            layer.add_program(host, in_image)?;
        }
    }
    // The first element plays ENTRYPOINT, the rest CMD (so a container's `args` replace only
    // the default arguments).
    let (entrypoint, cmd) = image.entrypoint.split_at(image.entrypoint.len().min(1));
    let config = ImageConfig {
        entrypoint: entrypoint.to_vec(),
        cmd: cmd.to_vec(),
        working_dir: image
            .working_dir
            .as_ref()
            .map(|dir| dir.display().to_string()),
        env: image.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
    };
    write_archive(path, name, &[layer], &config)
}

/// Executable regular files directly in `root`.
fn top_level_programs(root: &Path) -> Result<Vec<std::path::PathBuf>> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut programs = Vec::new();
    for entry in std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
            programs.push(entry.path());
        }
    }
    programs.sort();
    Ok(programs)
}

/// The host file of the entrypoint's program when it lies inside the image root (a relative
/// entrypoint is found from the working directory).
fn entrypoint_on_host(image: &LocalImage) -> Option<std::path::PathBuf> {
    let program = Path::new(image.entrypoint.first()?);
    let program = match &image.working_dir {
        Some(dir) if program.is_relative() => dir.join(program),
        _ => program.to_path_buf(),
    };
    let inside = program.strip_prefix(&image.mount_path).ok()?;
    let host = image.root.join(inside);
    host.is_file().then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entrypoint_is_found_inside_the_image_root_only() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("server"), "x").unwrap();
        let image = |entrypoint: &str| LocalImage {
            root: root.path().to_path_buf(),
            mount_path: "/app".into(),
            entrypoint: vec![entrypoint.into(), "-conf".into()],
            working_dir: Some("/app".into()),
            env: Default::default(),
            host_paths: Vec::new(),
        };
        assert_eq!(
            entrypoint_on_host(&image("/app/server")),
            Some(root.path().join("server"))
        );
        assert_eq!(
            entrypoint_on_host(&image("./server")),
            Some(root.path().join("server"))
        );
        assert_eq!(entrypoint_on_host(&image("/bin/sh")), None);
        assert_eq!(entrypoint_on_host(&image("/app/missing")), None);
    }

    #[test]
    fn every_image_gets_an_archive_with_its_libraries() {
        let root = tempfile::tempdir().unwrap();
        std::fs::copy("/bin/ls", root.path().join("ls")).unwrap();
        let mut images = ImageMap::new();
        images.insert(
            "team/lister:1".into(),
            LocalImage {
                root: root.path().to_path_buf(),
                mount_path: "/app".into(),
                entrypoint: vec!["/app/ls".into(), "-l".into()],
                working_dir: Some("/app".into()),
                env: [("MODE".to_string(), "test".to_string())].into(),
                host_paths: vec!["/bin/cat".into()],
            },
        );
        let out = tempfile::tempdir().unwrap();
        let written = write_archives(&images, out.path()).unwrap();
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].path, out.path().join("team_lister_1.tar"));
        assert_eq!(written[0].summary.reference, "docker.io/team/lister:1");
        let ls_size = std::fs::metadata("/bin/ls").unwrap().len();
        let libc_size = oci_archive::shared_libraries(Path::new("/bin/ls"))
            .unwrap()
            .iter()
            .map(|lib| std::fs::metadata(lib).unwrap().len())
            .sum::<u64>();
        assert!(
            written[0].summary.archive_bytes > ls_size + libc_size,
            "the archive holds the program and its libraries"
        );
        // The config blob is stored uncompressed in the archive.
        let archive =
            String::from_utf8_lossy(&std::fs::read(&written[0].path).unwrap()).into_owned();
        for entry in [
            r#""Entrypoint":["/app/ls"]"#,
            r#""Cmd":["-l"]"#,
            r#""WorkingDir":"/app""#,
            r#""Env":["MODE=test"]"#,
        ] {
            assert!(
                archive.contains(entry),
                "no {entry} in the archive's config"
            );
        }
    }
}
