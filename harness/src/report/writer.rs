//! The one way report files are written: every text passes the run's [`Redactor`] first, so no
//! report, summary, JUnit file or diagnostics log or object carries a known secret or a JWT.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::secrets::{Redactor, SecretKind};

/// Writes redacted files under a report directory.
#[derive(Debug, Clone)]
pub struct ReportWriter {
    dir: PathBuf,
    redactor: Redactor,
}

impl ReportWriter {
    /// A writer into `dir` that redacts with `redactor`.
    pub fn new(dir: &Path, redactor: Redactor) -> ReportWriter {
        ReportWriter {
            dir: dir.to_path_buf(),
            redactor,
        }
    }

    /// The report directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// This writer, redacting more secrets as well (e.g. Secret data found while collecting).
    pub(crate) fn with_secrets(
        &self,
        more: impl IntoIterator<Item = (String, SecretKind)>,
    ) -> ReportWriter {
        ReportWriter {
            dir: self.dir.clone(),
            redactor: self.redactor.clone().with(more),
        }
    }

    /// Writes `text`, redacted, to `relative` under the report directory (parents created).
    pub(crate) fn write(&self, relative: impl AsRef<Path>, text: &str) -> Result<()> {
        let path = self.dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, self.redactor.redact(text).as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Writes `value` as YAML, redacted.
    pub(crate) fn write_yaml<T: Serialize>(
        &self,
        relative: impl AsRef<Path>,
        value: &T,
    ) -> Result<()> {
        let text = serde_saphyr::to_string(value).map_err(|e| anyhow::anyhow!("{e}"))?;
        self.write(relative, &text)
    }

    /// Appends `text`, redacted, to a file outside the report directory (e.g. $GITHUB_STEP_SUMMARY).
    pub(crate) fn append_to(&self, path: &Path, text: &str) -> Result<()> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        writeln!(file, "{}", self.redactor.redact(text))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{Profile, reference_profile_path};
    use crate::secrets::{KnownSecrets, MARKER};

    #[test]
    fn a_log_with_every_kind_of_secret_is_written_without_them() {
        let profile = Profile::load(&reference_profile_path()).unwrap();
        let known = KnownSecrets::for_profile(&profile);
        known.remember(SecretKind::WrongPassword, "conformance-wrong-1f2e3d");
        known.remember(SecretKind::ApiKey, "conformance-hygiene-0a0b0c0d");
        let seen = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ0aGFuZ24iLCJ1aWQiOiIxIn0.SIGNEDwithTheKey_-0";
        known.remember(SecretKind::Token, seen);
        let unseen = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzb21lb25lIn0.other-signature";
        let dir = tempfile::tempdir().unwrap();
        let writer = ReportWriter::new(dir.path(), known.redactor())
            .with_secrets([("s3cr3t-from-a-Secret".to_string(), SecretKind::SecretData)]);
        let log = [
            r#"INFO msg=request args=userName:"thangn" password:"123456""#,
            "INFO wrong login password=conformance-wrong-1f2e3d",
            "DEBUG auth.api_key=some_api_key then conformance-hygiene-0a0b0c0d",
            &format!("INFO token issued {seen}"),
            &format!("INFO other token {unseen}"),
            "WARN env DB_PASSWORD=s3cr3t-from-a-Secret",
            "INFO user thangn logged in at 2026-12-01T23:00:00Z",
        ]
        .join("\n");
        writer.write("diagnostics/logs/admin.log", &log).unwrap();
        let written =
            std::fs::read_to_string(writer.dir().join("diagnostics/logs/admin.log")).unwrap();
        for secret in [
            "123456",
            "conformance-wrong-1f2e3d",
            "some_api_key",
            "conformance-hygiene-0a0b0c0d",
            seen,
            unseen,
            "s3cr3t-from-a-Secret",
        ] {
            assert!(!written.contains(secret), "{secret} left in:\n{written}");
        }
        assert_eq!(written.matches(MARKER).count(), 7, "{written}");
        assert!(
            written.ends_with("INFO user thangn logged in at 2026-12-01T23:00:00Z"),
            "{written}"
        );
        assert!(written.contains(r#"password:"[redacted]""#), "{written}");
    }
}
