//! JSON Schemas of the profile and of the conformance report, generated from their Rust types
//! (`harness schema profile|report`; committed as `schemas/*.schema.json` for editors and for
//! third parties that read reports).

use schemars::generate::SchemaSettings;

use crate::profile::Profile;
use crate::report::ConformanceReport;

/// Which document's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Document {
    /// The profile YAML a run reads (`--profile`).
    Profile,
    /// The conformance report a run writes (`conformance-report.yaml`).
    Report,
}

impl Document {
    /// Where the schema is committed, relative to the repository root.
    #[cfg(test)]
    pub(crate) fn committed_path(self) -> &'static str {
        match self {
            Document::Profile => "schemas/profile.schema.json",
            Document::Report => "schemas/report.schema.json",
        }
    }
}

/// The schema as pretty-printed JSON with a final newline, as committed.
pub(crate) fn render(document: Document) -> String {
    let schema = match document {
        // What the harness accepts when it reads a profile.
        Document::Profile => SchemaSettings::draft2020_12()
            .for_deserialize()
            .into_generator()
            .into_root_schema_for::<Profile>(),
        // What the harness writes.
        Document::Report => SchemaSettings::draft2020_12()
            .for_serialize()
            .into_generator()
            .into_root_schema_for::<ConformanceReport>(),
    };
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn repository() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn schema(document: Document) -> serde_json::Value {
        serde_json::from_str(&render(document)).unwrap()
    }

    #[test]
    fn committed_schemas_are_the_generated_ones() {
        for document in [Document::Profile, Document::Report] {
            let path = document.committed_path();
            let committed = std::fs::read_to_string(repository().join(path)).unwrap_or_default();
            let name = format!("{document:?}").to_lowercase();
            assert!(
                committed == render(document),
                "{path} differs from the schema generated from the Rust types; regenerate it \
                 with `cargo run -p harness -- schema {name} > {path}`"
            );
        }
    }

    /// Every profile under fixtures/profiles, the deliberately broken ones too (they are broken
    /// in behaviour, not in form), is valid against the schema and loads.
    #[test]
    fn every_fixture_profile_validates() {
        let validator = jsonschema::validator_for(&schema(Document::Profile)).unwrap();
        let dir = repository().join("fixtures/profiles");
        let mut files: Vec<PathBuf> = ["", "broken"]
            .iter()
            .flat_map(|sub| std::fs::read_dir(dir.join(sub)).unwrap())
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        assert!(files.len() >= 12, "{files:?}");
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            let value: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{}: {errors:?}", file.display());
            Profile::load(file).unwrap_or_else(|e| panic!("{}: {e:#}", file.display()));
        }
    }

    /// The schema refuses what the harness refuses: an unknown field (named in the error), an
    /// unknown feature, a wrong apiVersion.
    #[test]
    fn the_schema_refuses_what_the_harness_refuses() {
        let validator = jsonschema::validator_for(&schema(Document::Profile)).unwrap();
        let reference = std::fs::read_to_string(crate::profile::reference_profile_path()).unwrap();
        for (from, to, named) in [
            (
                "keyPrefix: gomicro",
                "keyPrefix: gomicro\nkeyPrefx: typo",
                "keyPrefx",
            ),
            (
                "  - rbac\n",
                "  - rbac\n  - teleportation\n",
                "teleportation",
            ),
            (
                "apiVersion: conformance.gomicro.dev/v1",
                "apiVersion: conformance.gomicro.dev/v2",
                "conformance.gomicro.dev/v1",
            ),
            ("  contact: []", "  contact: []\n  homepage: x", "homepage"),
        ] {
            let text = reference.replace(from, to);
            let value: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.iter().any(|e| e.contains(named)),
                "{to:?}: {errors:?}"
            );
        }
    }

    /// A report as the harness writes it (a failed case, a skipped one, measurements, a
    /// crash) is valid against the report schema.
    #[test]
    fn a_written_report_validates() {
        use crate::features::{Feature, Level};
        use crate::stability::{Stability, Termination};
        use crate::verdict::{CaseResult, Outcome};
        let case = |id: &str, feature, outcome, reason: Option<&str>| CaseResult {
            id: id.into(),
            feature,
            summary: format!("summary of {id}"),
            outcome,
            reason: reason.map(String::from),
            duration: std::time::Duration::from_millis(1234),
            observations: serde_json::Value::Null,
            measurements: serde_json::json!({"convergenceSeconds": 1.5})
                .as_object()
                .unwrap()
                .clone(),
        };
        let profile = Profile::load(&crate::profile::reference_profile_path()).unwrap();
        let results = [
            case("REG-001", Feature::Registration, Outcome::Passed, None),
            case(
                "RES-001",
                Feature::Resolver,
                Outcome::Failed,
                Some("no update"),
            ),
            case(
                "FAULT-001",
                Feature::FaultTolerance,
                Outcome::NotApplicable,
                Some("k3s"),
            ),
        ];
        let stability = Stability {
            watched: "3 deployments".into(),
            unexpected: vec![Termination {
                pod: "user-srv-1".into(),
                container: "user-srv".into(),
                deployment: "user-srv".into(),
                exit_code: Some(1),
                signal: None,
                reason: "Error".into(),
                finished_at: Some("2026-12-07T00:00:00Z".into()),
                restart_count: 1,
                during: "deployment".into(),
                expected: None,
                previous_log: Some("panic".into()),
            }],
            expected: Vec::new(),
        };
        let report = crate::report::build(&profile, "local", "v1.35.4", &results, "now".into())
            .with_stability(stability)
            .with_required_level(Some(Level::Core));
        let validator = jsonschema::validator_for(&schema(Document::Report)).unwrap();
        let value = serde_json::to_value(&report).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn the_report_schema_names_what_a_published_report_carries() {
        let schema = schema(Document::Report);
        let required = schema["required"].as_array().unwrap();
        for field in [
            "contractVersion",
            "harnessVersion",
            "harnessCommit",
            "profile",
            "backend",
            "kubernetesVersion",
            "conformanceLevel",
        ] {
            assert!(required.iter().any(|r| r == field), "{field}: {required:?}");
        }
    }
}
