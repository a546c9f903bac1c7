//! Host sysctls the node changes: the kubelet's kernel defaults (`kernel.panic` 1→10,
//! `kernel.panic_on_oops` 0→1, `vm.overcommit_memory` 0→1 on this machine kind), the CNI
//! bridge plugin's `net.ipv4.ip_forward` and kube-proxy's `route_localnet`. Recorded before
//! the node starts (in a file, so the next start restores them after a killed run) and
//! written back after it stopped.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// The sysctls the node's components set.
pub const NODE_SYSCTLS: [&str; 5] = [
    "kernel.panic",
    "kernel.panic_on_oops",
    "vm.overcommit_memory",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
];

/// Recorded values of some sysctls below a `/proc/sys` root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedSysctls {
    root: PathBuf,
    values: Vec<(String, String)>,
}

impl RecordedSysctls {
    /// Reads `names` (dotted, e.g. `vm.overcommit_memory`) below `proc_sys` (`/proc/sys`).
    pub fn record(proc_sys: &Path, names: &[&str]) -> anyhow::Result<Self> {
        let values = names
            .iter()
            .map(|name| {
                let path = file_of(proc_sys, name);
                let value = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading sysctl {name} ({})", path.display()))?;
                Ok((name.to_string(), value.trim().to_owned()))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            root: proc_sys.to_path_buf(),
            values,
        })
    }

    /// Saves the record to `path` (JSON).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        crate::files::write_public(path, &serde_json::to_string_pretty(self)?)
    }

    /// Restores the record saved at `path`, if any, and removes the file; returns what it
    /// restored.
    pub fn restore_saved(path: &Path) -> anyhow::Result<Vec<String>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let recorded: Self = serde_json::from_str(&text)
            .with_context(|| format!("parsing the recorded sysctls {}", path.display()))?;
        let restored = recorded.restore()?;
        std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
        Ok(restored)
    }

    /// Writes back every recorded value that differs now; returns the names restored.
    pub fn restore(&self) -> anyhow::Result<Vec<String>> {
        let mut restored = Vec::new();
        for (name, value) in &self.values {
            let path = file_of(&self.root, name);
            let now = std::fs::read_to_string(&path).unwrap_or_default();
            if now.trim() != value {
                std::fs::write(&path, format!("{value}\n"))
                    .with_context(|| format!("restoring sysctl {name} to {value}"))?;
                restored.push(format!("sysctl {name}={value} (was {})", now.trim()));
            }
        }
        Ok(restored)
    }
}

fn file_of(proc_sys: &Path, name: &str) -> PathBuf {
    proc_sys.join(name.replace('.', "/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_values_are_written_back_and_only_those() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("kernel")).unwrap();
        std::fs::create_dir_all(root.path().join("vm")).unwrap();
        for (file, value) in [
            ("kernel/panic", "1\n"),
            ("kernel/panic_on_oops", "0\n"),
            ("vm/overcommit_memory", "0\n"),
        ] {
            std::fs::write(root.path().join(file), value).unwrap();
        }
        let names = [
            "kernel.panic",
            "kernel.panic_on_oops",
            "vm.overcommit_memory",
        ];
        let recorded = RecordedSysctls::record(root.path(), &names).unwrap();
        std::fs::write(root.path().join("kernel/panic"), "10\n").unwrap();
        std::fs::write(root.path().join("vm/overcommit_memory"), "1\n").unwrap();
        let restored = recorded.restore().unwrap();
        assert_eq!(
            restored,
            [
                "sysctl kernel.panic=1 (was 10)",
                "sysctl vm.overcommit_memory=0 (was 1)"
            ]
        );
        assert_eq!(
            std::fs::read_to_string(root.path().join("kernel/panic")).unwrap(),
            "1\n"
        );
        assert!(recorded.restore().unwrap().is_empty());
        let saved = root.path().join("saved.json");
        recorded.save(&saved).unwrap();
        std::fs::write(root.path().join("kernel/panic_on_oops"), "1\n").unwrap();
        assert_eq!(
            RecordedSysctls::restore_saved(&saved).unwrap(),
            ["sysctl kernel.panic_on_oops=0 (was 1)"]
        );
        assert!(!saved.exists());
        assert!(RecordedSysctls::restore_saved(&saved).unwrap().is_empty());
    }

    #[test]
    fn a_missing_sysctl_is_an_error_naming_it() {
        let root = tempfile::tempdir().unwrap();
        let error = RecordedSysctls::record(root.path(), &["kernel.panic"]).unwrap_err();
        assert!(format!("{error:#}").contains("kernel.panic"), "{error:#}");
    }
}
