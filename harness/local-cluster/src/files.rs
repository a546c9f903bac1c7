//! Small file helpers: writing with modes, log tails, random tokens.

use std::fs::{self, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Context as _;

fn write_with_mode(path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes a file readable only by its owner (keys, tokens, kubeconfigs).
pub(crate) fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    write_with_mode(path, contents, 0o600)
}

/// Writes a world-readable file (certificates, public keys).
pub(crate) fn write_public(path: &Path, contents: &str) -> anyhow::Result<()> {
    write_with_mode(path, contents, 0o644)
}

/// Writes `contents` to a temporary sibling and renames it over `path`, so readers never see
/// a partial file.
pub(crate) fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    write_public(&tmp, contents)?;
    fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))
}

/// The last `lines` lines of a (log) file; a note instead when it cannot be read.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let Ok(text) = fs::read(path) else {
        return format!("(no log at {})", path.display());
    };
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

/// `bytes` random bytes from the kernel, hex-encoded.
pub(crate) fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_returns_the_last_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        fs::write(&log, "a\nb\nc\nd\n").unwrap();
        assert_eq!(tail(&log, 2), "c\nd");
        assert_eq!(tail(&log, 10), "a\nb\nc\nd");
        assert!(tail(&dir.path().join("missing"), 3).contains("no log"));
    }

    #[test]
    fn random_hex_has_the_requested_length_and_varies() {
        let a = random_hex(16).unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, random_hex(16).unwrap());
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("info.json");
        write_atomically(&path, "1").unwrap();
        write_atomically(&path, "2").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "2");
        assert!(!path.with_extension("tmp").exists());
    }
}
