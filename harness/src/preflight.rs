//! Checks of the harness's own input, done before any cluster work: a refused command starts
//! nothing, changes nothing and says what would be valid. A [`UsageError`] makes the CLI exit 2.

use std::collections::BTreeSet;
use std::path::Path;

use crate::cases;
use crate::cluster::{BackendKind, provider};
use crate::error::UsageError;
use crate::features::{self, Feature};
use crate::manifests;
use crate::profile::Profile;

fn usage<T>(message: String) -> Result<T, UsageError> {
    Err(UsageError(message))
}

/// Loads a profile and checks that its manifests directory holds Kubernetes objects.
pub(crate) fn load_profile(path: &Path) -> Result<Profile, UsageError> {
    let profile = Profile::load(path).map_err(|error| {
        UsageError(format!(
            "{error:#}\n  a profile is a YAML file like fixtures/profiles/reference.yaml (see the README, \"Testing your implementation\")"
        ))
    })?;
    manifests::load(&profile.manifests).map_err(|error| {
        UsageError(format!(
            "profile {}: {error:#}\n  `manifests` must name a directory of *.yaml/*.yml files holding at least one Kubernetes object (relative to the profile's directory)",
            path.display()
        ))
    })?;
    Ok(profile)
}

/// The case IDs a run executes, from `--case` and `--feature`, checked against the cases and
/// the profile. Empty when neither option is given (every case runs).
pub(crate) fn select_cases(
    profile: &Profile,
    case_ids: &[String],
    features: &[String],
) -> Result<Vec<String>, UsageError> {
    let all = cases::all();
    let unknown = not_matching(case_ids, |id| all.iter().any(|case| case.id == id));
    if !unknown.is_empty() {
        let valid: Vec<&str> = all.iter().map(|case| case.id).collect();
        return usage(format!(
            "unknown case {}; valid case IDs are {} (`harness cases` lists them with their features)",
            unknown.join(", "),
            valid.join(", ")
        ));
    }
    let mut wanted = BTreeSet::new();
    let mut unknown = Vec::new();
    for name in features {
        match Feature::parse(name) {
            Ok(feature) => {
                wanted.insert(feature);
            }
            Err(_) => unknown.push(name.as_str()),
        }
    }
    if !unknown.is_empty() {
        return usage(format!(
            "unknown feature {}; known features are {}",
            unknown.join(", "),
            features::names(Feature::all())
        ));
    }
    let declared = || features::names(profile.features.iter().copied());
    let undeclared: Vec<Feature> = wanted
        .iter()
        .copied()
        .filter(|f| !profile.declares(*f))
        .collect();
    if !undeclared.is_empty() {
        return usage(format!(
            "feature {} is not declared by profile {}; it declares {}",
            features::names(undeclared),
            profile.source.display(),
            declared()
        ));
    }
    let mut selected = Vec::new();
    for case in &all {
        let named = case_ids.iter().any(|id| id == case.id);
        if named && !wanted.is_empty() && !wanted.contains(&case.feature) {
            return usage(format!(
                "conflicting options: --case {} belongs to feature {}, which is not among --feature {}; give the case alone or add its feature",
                case.id,
                case.feature,
                features::names(wanted.iter().copied())
            ));
        }
        if named && !profile.declares(case.feature) {
            return usage(format!(
                "case {} needs feature {}, which profile {} does not declare; it declares {}",
                case.id,
                case.feature,
                profile.source.display(),
                declared()
            ));
        }
        let chosen = if case_ids.is_empty() {
            wanted.contains(&case.feature)
        } else {
            named
        };
        if chosen && !selected.iter().any(|id| id == case.id) {
            selected.push(case.id.to_string());
        }
    }
    Ok(selected)
}

/// The names for which `valid` is false.
fn not_matching(names: &[String], valid: impl Fn(&str) -> bool) -> Vec<&str> {
    names
        .iter()
        .map(String::as_str)
        .filter(|name| !valid(name))
        .collect()
}

/// Refuses option combinations of `harness run` that cannot both hold.
pub(crate) fn check_backend_options(
    backend: BackendKind,
    keep_cluster: bool,
) -> Result<(), UsageError> {
    match provider(backend).refuses_keep() {
        Some(why) if keep_cluster => usage(why.into()),
        _ => Ok(()),
    }
}

/// The supported Kubernetes minor `version` names (`--kubernetes-version`,
/// `HARNESS_KUBERNETES_VERSION`), or a usage error listing the supported ones.
pub(crate) fn kubernetes_release(
    version: &str,
) -> Result<&'static local_cluster::versions::Release, UsageError> {
    local_cluster::versions::release(version)
        .map_err(|error| UsageError(format!("--kubernetes-version: {error:#}")))
}

/// Creates `dir` if needed and proves it writable with a probe file that is removed again.
pub(crate) fn check_writable_dir(dir: &Path, option: &str) -> Result<(), UsageError> {
    let refuse = |what: String| {
        UsageError(format!(
            "{option} {} is not writable: {what}; give a directory this user can create and write",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(|e| refuse(format!("cannot create it ({e})")))?;
    let probe = dir.join(format!(".harness-write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| refuse(format!("cannot write a file in it ({e})")))?;
    std::fs::remove_file(&probe).map_err(|e| refuse(format!("cannot remove a file in it ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::reference_profile_path;

    fn reference() -> Profile {
        load_profile(&reference_profile_path()).unwrap()
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_selection_runs_everything() {
        assert!(select_cases(&reference(), &[], &[]).unwrap().is_empty());
    }

    #[test]
    fn unknown_case_lists_the_valid_ids() {
        let error = select_cases(&reference(), &ids(&["NOPE-001"]), &[]).unwrap_err();
        assert!(error.0.contains("unknown case NOPE-001"), "{error}");
        assert!(error.0.contains("REG-001, REG-002"), "{error}");
    }

    #[test]
    fn unknown_and_undeclared_features_are_refused() {
        let error = select_cases(&reference(), &[], &ids(&["teleport"])).unwrap_err();
        assert!(error.0.contains("unknown feature teleport"), "{error}");
        assert!(error.0.contains("registration, deregistration"), "{error}");
        let mut profile = reference();
        profile.features.remove(&Feature::Cors);
        let error = select_cases(&profile, &[], &ids(&["cors"])).unwrap_err();
        assert!(error.0.contains("feature cors is not declared"), "{error}");
        let error = select_cases(&profile, &ids(&["LOGIN-005"]), &[]).unwrap_err();
        assert!(error.0.contains("LOGIN-005 needs feature cors"), "{error}");
    }

    #[test]
    fn a_feature_selects_its_cases_and_a_case_outside_it_conflicts() {
        let selected = select_cases(&reference(), &[], &ids(&["health"])).unwrap();
        assert_eq!(selected, ids(&["HEALTH-001"]));
        let both = select_cases(&reference(), &ids(&["HEALTH-001"]), &ids(&["health"])).unwrap();
        assert_eq!(both, ids(&["HEALTH-001"]));
        let error = select_cases(&reference(), &ids(&["CFG-001"]), &ids(&["health"])).unwrap_err();
        assert!(error.0.starts_with("conflicting options"), "{error}");
    }

    #[test]
    fn keep_cluster_conflicts_with_an_external_cluster() {
        assert!(check_backend_options(BackendKind::Kubeconfig, true).is_err());
        assert!(check_backend_options(BackendKind::Local, true).is_ok());
    }

    #[test]
    fn report_dir_under_a_file_is_refused_and_a_good_one_stays_empty() {
        let temp = tempfile::tempdir().unwrap();
        let file = temp.path().join("file");
        std::fs::write(&file, "keep me").unwrap();
        let error = check_writable_dir(&file.join("reports"), "--report-dir").unwrap_err();
        assert!(error.0.contains("is not writable"), "{error}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
        let good = temp.path().join("reports");
        check_writable_dir(&good, "--report-dir").unwrap();
        assert_eq!(std::fs::read_dir(&good).unwrap().count(), 0);
    }

    #[test]
    fn a_profile_without_manifest_objects_is_refused() {
        let temp = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(reference_profile_path()).unwrap();
        let profile = temp.path().join("profile.yaml");
        std::fs::write(&profile, text.replace("../../.k8s", "manifests")).unwrap();
        let error = load_profile(&profile).unwrap_err();
        assert!(error.0.contains("does not exist"), "{error}");
        std::fs::create_dir(temp.path().join("manifests")).unwrap();
        std::fs::write(temp.path().join("manifests/empty.yaml"), "# nothing\n").unwrap();
        let error = load_profile(&profile).unwrap_err();
        assert!(error.0.contains("holds no YAML objects"), "{error}");
        assert!(
            error.0.contains("at least one Kubernetes object"),
            "{error}"
        );
    }
}
