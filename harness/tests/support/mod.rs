//! Helpers of the e2e test targets (each includes this module).

// Each target uses only some of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use harness::cluster::BackendKind;
use harness::testing::test_backend;

/// Fails unless the tests run on the local backend, the only one with fixture `what`.
pub fn require_local_backend(what: &str) {
    assert_eq!(
        test_backend(),
        BackendKind::Local,
        "{what}: only the local backend has it"
    );
}

/// The summary's table row of case `id`.
pub fn summary_row(summary: &str, id: &str) -> String {
    summary
        .lines()
        .find(|l| l.contains(&format!("| {id} |")))
        .unwrap_or_else(|| panic!("{id} is not in the summary:\n{summary}"))
        .to_string()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}
