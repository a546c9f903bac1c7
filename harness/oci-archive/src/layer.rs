//! One image layer: a file tree assembled from host files, directories and bytes, written as
//! a deterministic tar (sorted, owner root, time zero, modes kept, parents created 0755).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::shared_libraries::shared_libraries;

/// The files of one layer, keyed by their path in the image.
#[derive(Debug, Default, Clone)]
pub struct Layer {
    entries: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone)]
enum Entry {
    Directory { mode: u32 },
    File { source: Source, mode: u32 },
    Symlink { target: PathBuf },
}

#[derive(Debug, Clone)]
enum Source {
    Host(PathBuf),
    Bytes(Vec<u8>),
}

impl Layer {
    /// An empty layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the host file `host` (symlinks followed) at `image_path`, with its mode.
    pub fn add_file(&mut self, host: &Path, image_path: &str) -> Result<&mut Self> {
        let metadata =
            std::fs::metadata(host).with_context(|| format!("image file {}", host.display()))?;
        if !metadata.is_file() {
            bail!("{} is not a regular file", host.display());
        }
        let mode = metadata.permissions().mode() & 0o7777;
        self.insert(
            image_path,
            Entry::File {
                source: Source::Host(host.to_path_buf()),
                mode,
            },
        )
    }

    /// Adds `bytes` as a file at `image_path` with `mode` (e.g. `0o644`).
    pub fn add_bytes(&mut self, image_path: &str, bytes: Vec<u8>, mode: u32) -> Result<&mut Self> {
        self.insert(
            image_path,
            Entry::File {
                source: Source::Bytes(bytes),
                mode: mode & 0o7777,
            },
        )
    }

    /// Adds the tree under the host directory `host` at `image_path`: directories, regular
    /// files and symlinks (kept as links) with their modes. Other file types are refused.
    pub fn add_dir(&mut self, host: &Path, image_path: &str) -> Result<&mut Self> {
        let metadata = std::fs::symlink_metadata(host)
            .with_context(|| format!("image directory {}", host.display()))?;
        if !metadata.is_dir() {
            bail!("{} is not a directory", host.display());
        }
        let base = image_key(image_path)?;
        self.insert(
            image_path,
            Entry::Directory {
                mode: metadata.permissions().mode() & 0o7777,
            },
        )?;
        let mut children: Vec<_> = std::fs::read_dir(host)
            .with_context(|| format!("reading {}", host.display()))?
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("reading {}", host.display()))?;
        children.sort_by_key(|entry| entry.file_name());
        for child in children {
            let name = child.file_name();
            let name = name.to_str().with_context(|| {
                format!("{} has a name that is not UTF-8", child.path().display())
            })?;
            let path = if base.is_empty() {
                name.to_owned()
            } else {
                format!("{base}/{name}")
            };
            let file_type = child.file_type()?;
            if file_type.is_dir() {
                self.add_dir(&child.path(), &path)?;
            } else if file_type.is_file() {
                self.add_file(&child.path(), &path)?;
            } else if file_type.is_symlink() {
                let target = std::fs::read_link(child.path())?;
                self.insert(&path, Entry::Symlink { target })?;
            } else {
                bail!(
                    "{} is neither a file, a directory nor a symlink",
                    child.path().display()
                );
            }
        }
        Ok(self)
    }

    /// Adds the program `host` at `image_path` and, for a dynamically linked one, every
    /// shared library and the loader `ldd` names, at the same paths as on the host (so a
    /// glibc build runs in an image without a distribution).
    pub fn add_program(&mut self, host: &Path, image_path: &str) -> Result<&mut Self> {
        self.add_file(host, image_path)?;
        self.add_shared_libraries_of(host)
    }

    /// Adds the shared libraries and the loader the host program `host` needs (nothing for
    /// a static one), at the paths `ldd` names; a library already in the layer is kept.
    pub fn add_shared_libraries_of(&mut self, host: &Path) -> Result<&mut Self> {
        for library in shared_libraries(host)? {
            let in_image = library.to_string_lossy().into_owned();
            let same = |entry: &Entry| matches!(entry, Entry::File { source: Source::Host(p), .. } if *p == library);
            if self.entries.get(&image_key(&in_image)?).is_some_and(same) {
                continue; // another program of the layer needs it too
            }
            self.add_file(&library, &in_image)?;
        }
        Ok(self)
    }

    fn insert(&mut self, image_path: &str, entry: Entry) -> Result<&mut Self> {
        let key = image_key(image_path)?;
        if key.is_empty() && !matches!(entry, Entry::Directory { .. }) {
            bail!("image path {image_path:?} names the root: only a directory can go there");
        }
        if let Some(previous) = self.entries.get(&key)
            && !matches!(
                (previous, &entry),
                (Entry::Directory { .. }, Entry::Directory { .. })
            )
        {
            bail!("image path /{key} is added twice");
        }
        self.entries.insert(key, entry);
        Ok(self)
    }

    /// The layer as an uncompressed tar.
    pub(crate) fn to_tar(&self) -> Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        builder.follow_symlinks(false);
        for (key, entry) in self.with_parents() {
            if key.is_empty() {
                continue;
            }
            let mut header = tar::Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            match entry {
                Entry::Directory { mode } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_size(0);
                    builder.append_data(&mut header, format!("{key}/"), std::io::empty())?;
                }
                Entry::File { source, mode } => {
                    let bytes = match source {
                        Source::Host(path) => std::fs::read(path)
                            .with_context(|| format!("reading {}", path.display()))?,
                        Source::Bytes(bytes) => bytes.clone(),
                    };
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(bytes.len() as u64);
                    builder.append_data(&mut header, key, bytes.as_slice())?;
                }
                Entry::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder.append_link(&mut header, key, target)?;
                }
            }
        }
        Ok(builder.into_inner()?)
    }

    /// The entries plus a 0755 directory for every parent nobody added, in path order.
    fn with_parents(&self) -> BTreeMap<&str, &Entry> {
        const PARENT: Entry = Entry::Directory { mode: 0o755 };
        let mut all: BTreeMap<&str, &Entry> = BTreeMap::new();
        for key in self.entries.keys() {
            let mut end = 0;
            while let Some(slash) = key[end..].find('/') {
                end += slash;
                all.entry(&key[..end]).or_insert(&PARENT);
                end += 1;
            }
        }
        all.extend(self.entries.iter().map(|(k, v)| (k.as_str(), v)));
        all
    }
}

/// `image_path` without its leading `/`, refused when it leaves the root or is not plain.
fn image_key(image_path: &str) -> Result<String> {
    let mut parts = Vec::new();
    for component in Path::new(image_path).components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => parts.push(part.to_str().unwrap_or_default()),
            Component::ParentDir | Component::Prefix(_) => {
                bail!("image path {image_path:?} must not contain '..'")
            }
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    /// (path, type, mode, contents or link target) of every entry of a layer tar.
    fn listing(tar_bytes: &[u8]) -> Vec<(String, char, u32, String)> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let header = entry.header().clone();
                assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
                assert_eq!(header.mtime().unwrap(), 0);
                let path = entry.path().unwrap().to_string_lossy().into_owned();
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                let mut contents = String::from_utf8_lossy(&bytes).into_owned();
                let kind = match header.entry_type() {
                    tar::EntryType::Directory => 'd',
                    tar::EntryType::Symlink => {
                        contents = entry.link_name().unwrap().unwrap().to_string_lossy().into();
                        'l'
                    }
                    _ => 'f',
                };
                (path, kind, header.mode().unwrap(), contents)
            })
            .collect()
    }

    #[test]
    fn a_directory_tree_keeps_modes_and_links_and_gets_its_parents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf")).unwrap();
        std::fs::write(dir.path().join("conf/config.yaml"), "a: 1\n").unwrap();
        std::fs::write(dir.path().join("server"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            dir.path().join("server"),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        std::os::unix::fs::symlink("server", dir.path().join("run")).unwrap();
        let mut layer = Layer::new();
        layer.add_dir(dir.path(), "/opt/app").unwrap();
        layer
            .add_bytes("/etc/motd", b"hi\n".to_vec(), 0o100644)
            .unwrap();
        let mode_of = |p: &str| {
            std::fs::metadata(dir.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(
            listing(&layer.to_tar().unwrap()),
            [
                ("etc/".into(), 'd', 0o755, String::new()),
                ("etc/motd".into(), 'f', 0o644, "hi\n".into()),
                ("opt/".into(), 'd', 0o755, String::new()),
                ("opt/app/".into(), 'd', 0o711, String::new()),
                ("opt/app/conf/".into(), 'd', mode_of("conf"), String::new()),
                (
                    "opt/app/conf/config.yaml".into(),
                    'f',
                    mode_of("conf/config.yaml"),
                    "a: 1\n".into()
                ),
                ("opt/app/run".into(), 'l', 0o777, "server".into()),
                ("opt/app/server".into(), 'f', 0o750, "#!/bin/sh\n".into()),
            ]
        );
    }

    #[test]
    fn the_same_input_gives_the_same_tar() {
        let mut layer = Layer::new();
        layer.add_bytes("b", b"2".to_vec(), 0o644).unwrap();
        layer.add_bytes("a/x", b"1".to_vec(), 0o755).unwrap();
        assert_eq!(layer.to_tar().unwrap(), layer.clone().to_tar().unwrap());
    }

    #[test]
    fn bad_paths_and_duplicates_are_refused() {
        let mut layer = Layer::new();
        let escape = layer.add_bytes("../etc/passwd", vec![], 0o644).unwrap_err();
        assert!(escape.to_string().contains(".."), "{escape}");
        let root = layer.add_bytes("/", vec![], 0o644).unwrap_err();
        assert!(root.to_string().contains("root"), "{root}");
        layer.add_bytes("/app/x", vec![], 0o644).unwrap();
        let twice = layer.add_bytes("app/x", vec![], 0o644).unwrap_err();
        assert!(
            twice.to_string().contains("/app/x is added twice"),
            "{twice}"
        );
        let missing = layer
            .add_file(Path::new("/nonexistent/file"), "f")
            .unwrap_err();
        assert!(
            format!("{missing:#}").contains("/nonexistent/file"),
            "{missing:#}"
        );
    }

    #[test]
    fn a_program_brings_its_shared_libraries() {
        let mut layer = Layer::new();
        layer.add_program(Path::new("/bin/ls"), "/bin/ls").unwrap();
        layer
            .add_program(Path::new("/bin/cat"), "/bin/cat")
            .unwrap();
        let paths: Vec<String> = listing(&layer.to_tar().unwrap())
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert!(paths.contains(&"bin/ls".to_string()), "{paths:?}");
        assert!(paths.contains(&"bin/cat".to_string()), "{paths:?}");
        assert!(paths.iter().any(|p| p.contains("libc.so")), "{paths:?}");
        assert!(paths.iter().any(|p| p.contains("ld-linux")), "{paths:?}");
    }
}
