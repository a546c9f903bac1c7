//! The local config directory source.
//!
//! Order: `config.yaml`, then `remote.yaml`, then every other `*.yaml`, `*.yml` and `*.json`
//! file sorted by name. Hidden names (starting with `.`, such as the `..data` links of a
//! mounted ConfigMap volume), directories and files with any other extension are ignored.
//! Symbolic links to files are followed.

use std::path::{Path, PathBuf};

use crate::{ConfigError, Entry, Format};

/// The files first in the merge order, before the rest sorted by name.
const FIRST_FILES: [&str; 2] = ["config.yaml", "remote.yaml"];

/// The config files of `dir` in merge order.
pub fn config_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let io_error = |source| ConfigError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for dir_entry in std::fs::read_dir(dir).map_err(io_error)? {
        let dir_entry = dir_entry.map_err(io_error)?;
        let Ok(name) = dir_entry.file_name().into_string() else {
            continue;
        };
        let is_config = !name.starts_with('.')
            && matches!(Format::from_key(&name), Ok(Format::Yaml | Format::Json));
        // `metadata` follows symlinks, unlike `DirEntry::file_type`.
        if is_config && std::fs::metadata(dir_entry.path()).is_ok_and(|m| m.is_file()) {
            names.push(name);
        }
    }
    names.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    Ok(names.into_iter().map(|name| dir.join(name)).collect())
}

/// Reads the config files of `dir` as entries keyed by their path, in merge order.
pub fn load_dir(dir: &Path) -> Result<Vec<Entry>, ConfigError> {
    config_files(dir)?
        .into_iter()
        .map(|path| {
            let value = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })?;
            Entry::new(path.display().to_string(), value)
        })
        .collect()
}

fn rank(name: &str) -> usize {
    FIRST_FILES
        .iter()
        .position(|first| *first == name)
        .unwrap_or(FIRST_FILES.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(files: &[PathBuf]) -> Vec<String> {
        files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn config_then_remote_then_the_rest_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "zeta.json",
            "remote.yaml",
            "alpha.yml",
            "config.yaml",
            "beta.yaml",
            "README.md",
            ".hidden.yaml",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), "{}").unwrap();
        }
        std::fs::create_dir(dir.path().join("nested.yaml")).unwrap();
        let files = config_files(dir.path()).unwrap();
        assert_eq!(
            names(&files),
            [
                "config.yaml",
                "remote.yaml",
                "alpha.yml",
                "beta.yaml",
                "zeta.json"
            ]
        );
    }

    #[test]
    fn entries_are_keyed_by_path_with_their_format() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.yaml"), "a: 1\n").unwrap();
        std::fs::write(dir.path().join("extra.json"), "{\"b\": 2}").unwrap();
        let entries = load_dir(dir.path()).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0].key,
            dir.path().join("config.yaml").display().to_string()
        );
        assert_eq!(entries[0].format, Format::Yaml);
        assert_eq!(entries[0].value, "a: 1\n");
        assert_eq!(entries[1].format, Format::Json);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("configs");
        let message = load_dir(&missing).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("cannot read {}", missing.display())),
            "{message}"
        );
    }
}
