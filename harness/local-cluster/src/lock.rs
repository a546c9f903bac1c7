//! The machine-wide cluster lock (the bridge, node IP and ports are global resources).

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// An exclusive `flock` on the lock file, held while a cluster runs; released on drop.
pub(crate) struct ClusterLock {
    _lock: Flock<File>,
    path: PathBuf,
}

/// Outcome of trying the lock.
pub(crate) enum TryLock {
    /// We hold it now.
    Acquired(ClusterLock),
    /// Another live process holds it; its recorded description.
    Held(String),
}

impl ClusterLock {
    /// Takes the lock at `lock_file` for a cluster in `state_dir`, or reports the holder.
    pub(crate) fn try_acquire(lock_file: &Path, state_dir: &Path) -> anyhow::Result<TryLock> {
        if let Some(parent) = lock_file.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_file)
            .with_context(|| format!("opening lock file {}", lock_file.display()))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                lock.set_len(0)?;
                lock.rewind()?;
                write!(
                    lock,
                    "pid {} state dir {}",
                    std::process::id(),
                    state_dir.display()
                )?;
                Ok(TryLock::Acquired(Self {
                    _lock: lock,
                    path: lock_file.to_path_buf(),
                }))
            }
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                Ok(TryLock::Held(holder))
            }
            Err((_, errno)) => {
                Err(errno).with_context(|| format!("locking {}", lock_file.display()))
            }
        }
    }

    /// Takes the lock or fails with a clear error naming the holder.
    pub(crate) fn acquire(lock_file: &Path, state_dir: &Path) -> anyhow::Result<Self> {
        match Self::try_acquire(lock_file, state_dir)? {
            TryLock::Acquired(lock) => Ok(lock),
            TryLock::Held(holder) => bail!(
                "another local cluster is running on this machine ({holder}; lock {}): stop it \
                 first (`harness down`, or end the process holding it)",
                lock_file.display()
            ),
        }
    }
}

impl ClusterLock {
    /// Removes the lock file, then releases the lock (`harness down` leaves no file behind).
    /// Safe because taking the lock never blocks: a process that opened the old file while we
    /// hold it sees it held, one that comes later creates a new file.
    pub(crate) fn release_and_remove(self) -> anyhow::Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error).with_context(|| format!("removing {}", self.path.display())),
        }
    }
}

/// The lock file path used by clusters (overridable for tests).
pub(crate) fn lock_file() -> PathBuf {
    std::env::var_os("GOMICRO_LOCAL_LOCK_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(crate::layout::LOCK_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_fails_naming_the_holder_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.lock");
        let first = ClusterLock::acquire(&file, Path::new("/state/a")).unwrap();
        let err = ClusterLock::acquire(&file, Path::new("/state/b"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("another local cluster"), "{err}");
        assert!(err.contains("/state/a"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        ClusterLock::acquire(&file, Path::new("/state/b")).unwrap();
    }
}
