//! Manifests as a third party writes them: every `*.yaml`/`*.yml` file of a directory, each
//! possibly with several documents, put into apply order by object kind (as kubectl and Helm
//! do, whatever the file names), with image references the harness provides rewritten.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kube::api::DynamicObject;
use serde_json::Value;

use crate::profile::Profile;

/// One object read from a manifest file.
#[derive(Debug, Clone)]
pub(crate) struct Manifest {
    /// The file it came from.
    pub file: PathBuf,
    /// Its 1-based position among the file's documents.
    pub document: usize,
    /// The object.
    pub object: DynamicObject,
}

impl Manifest {
    /// The object's kind (validated when parsed).
    pub(crate) fn kind(&self) -> &str {
        self.object
            .types
            .as_ref()
            .map(|t| t.kind.as_str())
            .unwrap_or("?")
    }

    /// The object's name (validated when parsed).
    pub(crate) fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or("?")
    }

    /// `Kind/namespace/name` for messages.
    pub(crate) fn describe(&self) -> String {
        let name = self.name();
        match &self.object.metadata.namespace {
            Some(ns) => format!("{}/{ns}/{name}", self.kind()),
            None => format!("{}/{name}", self.kind()),
        }
    }
}

/// Kinds in apply order; a kind not listed goes last. Objects a later kind needs come first:
/// the namespace, the account pods run as, its rights, the configuration pods read at startup,
/// the Services, then the workloads.
const APPLY_ORDER: &[&[&str]] = &[
    &["Namespace"],
    &["CustomResourceDefinition"],
    &["ServiceAccount"],
    &["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"],
    &["ConfigMap", "Secret"],
    &["Service"],
    &[
        "Pod",
        "ReplicaSet",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
    ],
];

/// Position of a kind in [`APPLY_ORDER`] (RBAC kinds keep their listed order inside the group).
fn apply_rank(kind: &str) -> (usize, usize) {
    APPLY_ORDER
        .iter()
        .enumerate()
        .find_map(|(group, kinds)| {
            let within = kinds.iter().position(|k| *k == kind)?;
            // Only RBAC is ordered inside its group; the other groups keep file order.
            Some((group, if group == 3 { within } else { 0 }))
        })
        .unwrap_or((APPLY_ORDER.len(), 0))
}

/// Sorts manifests into apply order by kind; objects of one rank keep their read order.
pub(crate) fn sort_for_apply(manifests: &mut [Manifest]) {
    manifests.sort_by_key(|m| apply_rank(m.kind()));
}

/// Reads every `*.yaml`/`*.yml` file of `dir` (in file-name order, for stable messages) and
/// returns the objects in apply order.
pub(crate) fn load(dir: &Path) -> Result<Vec<Manifest>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read manifest directory {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            )
        })
        .collect();
    files.sort();
    let mut manifests = Vec::new();
    for file in files {
        manifests.extend(parse_file(&file)?);
    }
    if manifests.is_empty() {
        bail!("manifest directory {} holds no YAML objects", dir.display());
    }
    sort_for_apply(&mut manifests);
    Ok(manifests)
}

/// Parses one manifest file into objects, naming the file and document in errors.
pub(crate) fn parse_file(file: &Path) -> Result<Vec<Manifest>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
        .map_err(|e| anyhow::anyhow!("{}: not valid YAML: {e}", file.display()))?;
    let mut manifests = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        if document.is_null() {
            continue;
        }
        let object: DynamicObject = serde_json::from_value(document).map_err(|e| {
            anyhow::anyhow!(
                "{} document {}: not a Kubernetes object: {e}",
                file.display(),
                index + 1
            )
        })?;
        if object.types.is_none() || object.metadata.name.is_none() {
            bail!(
                "{} document {}: apiVersion, kind and metadata.name are required",
                file.display(),
                index + 1
            );
        }
        manifests.push(Manifest {
            file: file.to_path_buf(),
            document: index + 1,
            object,
        });
    }
    Ok(manifests)
}

/// Rewrites the containers of every workload for the images the profile provides: a reference
/// the profile lists under an image's `replaces` becomes that image, and a provided image gets
/// `imagePullPolicy: IfNotPresent` (it is imported, never pulled: `Always`, or no policy with
/// a `:latest` or untagged reference, would make the node try a registry).
/// Returns one line per change, for the deploy log.
pub(crate) fn use_provided_images(manifests: &mut [Manifest], profile: &Profile) -> Vec<String> {
    let mut changes = Vec::new();
    for manifest in manifests {
        let what = manifest.describe();
        for container in containers_mut(&mut manifest.object.data) {
            let Some(image) = container.get("image").and_then(Value::as_str) else {
                continue;
            };
            let image = image.to_string();
            let provided = profile.provided_image(&image);
            let Some(provided) = provided else { continue };
            if provided != image {
                changes.push(format!("{what}: image {image} → {provided}"));
                container["image"] = Value::from(provided.clone());
            }
            let policy = container.get("imagePullPolicy").and_then(Value::as_str);
            if policy != Some("IfNotPresent") && policy != Some("Never") {
                changes.push(format!(
                    "{what}: imagePullPolicy {} → IfNotPresent for provided image {provided}",
                    policy.unwrap_or("(default)")
                ));
                container["imagePullPolicy"] = Value::from("IfNotPresent");
            }
        }
    }
    changes
}

/// The containers and init containers of a Pod, a workload template or a CronJob's job template.
fn containers_mut(data: &mut Value) -> Vec<&mut Value> {
    let spec = data.get_mut("spec");
    let pod_spec = match spec {
        Some(spec) if spec.get("containers").is_some() => Some(spec),
        Some(spec) if spec.get("jobTemplate").is_some() => spec
            .pointer_mut("/jobTemplate/spec/template/spec")
            .filter(|s| s.is_object()),
        Some(spec) => spec.pointer_mut("/template/spec").filter(|s| s.is_object()),
        None => None,
    };
    let Some(Value::Object(pod_spec)) = pod_spec else {
        return Vec::new();
    };
    pod_spec
        .iter_mut()
        .filter(|(key, _)| matches!(key.as_str(), "containers" | "initContainers"))
        .filter_map(|(_, list)| list.as_array_mut())
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::workspace_root;

    fn kinds(manifests: &[Manifest]) -> Vec<String> {
        manifests.iter().map(Manifest::describe).collect()
    }

    fn position(kinds: &[String], needle: &str) -> usize {
        kinds
            .iter()
            .position(|k| k == needle)
            .unwrap_or_else(|| panic!("{needle} not in {kinds:?}"))
    }

    #[test]
    fn repository_manifests_load_in_kind_order() {
        let kinds = kinds(&load(&workspace_root().join(".k8s")).unwrap());
        assert_eq!(kinds.len(), 15);
        let order = [
            "Namespace/go-micro",
            "ServiceAccount/go-micro/go-micro-services",
            "Role/go-micro/go-micro-config",
            "Role/go-micro/go-micro-registry",
            "RoleBinding/go-micro/go-micro-config",
            "RoleBinding/go-micro/go-micro-registry",
            "ConfigMap/go-micro/token-srv",
            "Service/go-micro/admin-srv",
            "Deployment/go-micro/token-srv",
        ];
        for pair in order.windows(2) {
            assert!(
                position(&kinds, pair[0]) < position(&kinds, pair[1]),
                "{} must come before {}: {kinds:?}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn unsorted_fixture_set_loads_in_kind_order_whatever_the_file_names() {
        let dir = workspace_root().join("fixtures/manifests/unsorted");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // The file names sort in the wrong order on purpose.
        assert!(
            names.iter().position(|n| n == "admin-srv-configmap.yaml")
                < names.iter().position(|n| n == "namespace.yaml"),
            "{names:?}"
        );
        let manifests = load(&dir).unwrap();
        let kinds = kinds(&manifests);
        let first_of = |kind: &str| {
            manifests
                .iter()
                .position(|m| m.kind() == kind)
                .unwrap_or_else(|| panic!("no {kind} in {kinds:?}"))
        };
        let last_of = |kind: &str| manifests.iter().rposition(|m| m.kind() == kind).unwrap();
        assert_eq!(first_of("Namespace"), 0, "{kinds:?}");
        assert!(
            last_of("ServiceAccount") < first_of("ClusterRole"),
            "{kinds:?}"
        );
        assert!(last_of("RoleBinding") < first_of("ConfigMap"), "{kinds:?}");
        assert!(last_of("ConfigMap") < first_of("Service"), "{kinds:?}");
        assert!(last_of("Service") < first_of("Deployment"), "{kinds:?}");
        // Several files hold more than one document.
        let multi = manifests.iter().filter(|m| m.document > 1).count();
        assert!(multi >= 2, "{kinds:?}");
    }

    #[test]
    fn unknown_kinds_go_last_and_ties_keep_read_order() {
        let doc = |kind: &str, name: &str| Manifest {
            file: "x.yaml".into(),
            document: 1,
            object: serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": kind, "metadata": { "name": name }
            }))
            .unwrap(),
        };
        let mut manifests = vec![
            doc("Ingress", "i"),
            doc("Deployment", "d1"),
            doc("Secret", "s"),
            doc("ConfigMap", "c"),
            doc("RoleBinding", "rb"),
            doc("Deployment", "d0"),
            doc("ClusterRole", "cr"),
            doc("Namespace", "n"),
        ];
        sort_for_apply(&mut manifests);
        assert_eq!(
            kinds(&manifests),
            [
                "Namespace/n",
                "ClusterRole/cr",
                "RoleBinding/rb",
                "Secret/s",
                "ConfigMap/c",
                "Deployment/d1",
                "Deployment/d0",
                "Ingress/i"
            ]
        );
    }

    #[test]
    fn malformed_manifest_names_file_and_document() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.yaml");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n---\nkind: [unclosed\n",
        )
        .unwrap();
        let err = format!("{:#}", parse_file(&file).unwrap_err());
        assert!(err.contains("bad.yaml"), "{err}");
        std::fs::write(
            &file,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n---\n- a list\n",
        )
        .unwrap();
        let err = format!("{:#}", parse_file(&file).unwrap_err());
        assert!(
            err.contains("bad.yaml document 2: not a Kubernetes object"),
            "{err}"
        );
    }

    #[test]
    fn object_without_name_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("noname.yaml");
        std::fs::write(&file, "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n").unwrap();
        let err = format!("{:#}", parse_file(&file).unwrap_err());
        assert!(
            err.contains("document 1") && err.contains("metadata.name"),
            "{err}"
        );
    }

    #[test]
    fn provided_images_are_replaced_and_never_pulled() {
        let profile =
            Profile::load(&workspace_root().join("fixtures/profiles/unsorted-manifests.yaml"))
                .unwrap();
        let mut manifests = load(&profile.manifests).unwrap();
        let changes = use_provided_images(&mut manifests, &profile);
        assert!(!changes.is_empty());
        let mut seen = 0;
        for manifest in &mut manifests {
            for container in containers_mut(&mut manifest.object.data) {
                let image = container["image"].as_str().unwrap();
                assert!(profile.images.contains_key(image), "{image} not provided");
                assert_eq!(container["imagePullPolicy"], "IfNotPresent", "{image}");
                seen += 1;
            }
        }
        assert_eq!(seen, 3, "{changes:?}");
    }

    #[test]
    fn images_the_profile_does_not_provide_are_left_alone() {
        let profile = Profile::load(&crate::profile::reference_profile_path()).unwrap();
        let mut manifests = vec![Manifest {
            file: "x.yaml".into(),
            document: 1,
            object: serde_json::from_value(serde_json::json!({
                "apiVersion": "batch/v1", "kind": "CronJob", "metadata": { "name": "c" },
                "spec": { "jobTemplate": { "spec": { "template": { "spec": { "containers": [
                    { "name": "a", "image": "busybox:latest", "imagePullPolicy": "Always" },
                    { "name": "b", "image": "gomicro-conformance/user-srv:0.1.0", "imagePullPolicy": "Always" }
                ] } } } } }
            }))
            .unwrap(),
        }];
        let changes = use_provided_images(&mut manifests, &profile);
        assert_eq!(changes.len(), 1, "{changes:?}");
        let containers = containers_mut(&mut manifests[0].object.data);
        assert_eq!(containers[0]["imagePullPolicy"], "Always");
        assert_eq!(containers[1]["imagePullPolicy"], "IfNotPresent");
    }
}
