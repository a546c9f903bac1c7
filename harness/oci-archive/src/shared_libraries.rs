//! The shared libraries a dynamically linked program loads, as `ldd` names them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

/// The shared libraries (and the dynamic loader) `binary` needs at run time, by the paths
/// the loader looks them up at, from `ldd`. Empty for a statically linked program; an error
/// naming the library when one is not found.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .with_context(|| format!("running ldd {} (glibc's ldd is needed)", binary.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if is_static(&stdout) || is_static(&stderr) {
        return Ok(Vec::new());
    }
    if !output.status.success() {
        bail!(
            "ldd {} failed ({}): {}",
            binary.display(),
            output.status,
            stderr.trim()
        );
    }
    parse_ldd(&stdout).with_context(|| format!("libraries of {}", binary.display()))
}

fn is_static(ldd_output: &str) -> bool {
    ldd_output.contains("not a dynamic executable") || ldd_output.contains("statically linked")
}

/// Paths from `ldd` lines `libc.so.6 => /lib/.../libc.so.6 (0x...)` and
/// `/lib64/ld-linux-x86-64.so.2 (0x...)`; the kernel's vDSO has no file and is skipped.
fn parse_ldd(output: &str) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let path = match line.split_once("=>") {
            Some((name, target)) => {
                let target = target.trim();
                if target.starts_with("not found") {
                    bail!("shared library {} not found", name.trim());
                }
                target.split_whitespace().next().unwrap_or_default()
            }
            None => line.split_whitespace().next().unwrap_or_default(),
        };
        if path.starts_with('/') {
            paths.push(PathBuf::from(path));
        }
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libraries_and_the_loader_and_skips_the_vdso() {
        let output = "\tlinux-vdso.so.1 (0x00007ffc5a9f1000)\n\
            \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f0e1c000000)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0e1be00000)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f0e1c3a0000)\n";
        assert_eq!(
            parse_ldd(output).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn a_missing_library_is_an_error_naming_it() {
        let output = "\tlibfoo.so.1 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n";
        let error = parse_ldd(output).unwrap_err().to_string();
        assert!(error.contains("libfoo.so.1"), "{error}");
    }

    #[test]
    fn a_dynamic_program_lists_its_c_library_and_a_static_one_nothing() {
        let ls = shared_libraries(Path::new("/bin/ls")).unwrap();
        assert!(
            ls.iter().any(|p| p.to_string_lossy().contains("libc.so")),
            "{ls:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("script.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert!(shared_libraries(&script).unwrap().is_empty());
    }
}
