//! Conformance profiles: which implementation to deploy and what it claims to support.
//!
//! A profile is a YAML file (see `fixtures/profiles/reference.yaml`). Relative paths in it are
//! resolved against the directory of the file, so a profile can live in another repository.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::features::{Declared, Feature};

/// API version every profile must declare.
pub(crate) const PROFILE_API_VERSION: &str = "conformance.gomicro.dev/v1";

/// Environment variable choosing the Kubernetes minor(s) (as `--kubernetes-version` does; the
/// command line wins).
pub(crate) const KUBERNETES_VERSION_ENV: &str = "HARNESS_KUBERNETES_VERSION";

/// A parsed, validated profile with paths made absolute.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(
    title = "Conformance profile",
    description = "Which implementation the harness deploys and what it claims (README, \"Testing your implementation\"). Relative paths are resolved against the profile's directory."
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    /// Must be `conformance.gomicro.dev/v1` (`PROFILE_API_VERSION`).
    #[schemars(extend("const" = PROFILE_API_VERSION))]
    pub api_version: String,
    /// Must be `Profile`.
    #[schemars(extend("const" = "Profile"))]
    pub kind: String,
    /// Who made the implementation under test (copied into the report).
    pub implementation: Implementation,
    /// Namespace the manifests deploy into.
    pub namespace: String,
    /// Prefix of the registry's label and annotation keys (`gomicro` gives `gomicro-service-id`).
    pub key_prefix: String,
    /// Directory of manifests (every `*.yaml`/`*.yml` file, multi-document files too), applied
    /// in object-kind order whatever the file names.
    pub manifests: PathBuf,
    /// The three services of the contract.
    pub services: Services,
    /// Service account the services run as (checked by the RBAC cases).
    pub service_account: String,
    /// Image name (as written in the manifests) to how the backends obtain it.
    #[serde(default)]
    pub images: BTreeMap<String, ImageSource>,
    /// Features the implementation claims (`harness cases` lists them with their level); cases
    /// of other features are skipped.
    pub features: Declared,
    /// Implementation-specific expectations the contract allows.
    #[serde(default)]
    pub expectations: Expectations,
    /// Deadlines of the runner (a slow cluster needs longer ones).
    #[serde(default)]
    pub timeouts: Timeouts,
    /// The Kubernetes minor the local and k3s backends start (`1.34`, or its exact patch
    /// `v1.34.4`; `harness versions` lists the supported ones); default: the newest supported.
    /// `--kubernetes-version` overrides it; a kubeconfig cluster must run it when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// Where the profile was read from (set by [`Profile::load`]).
    #[serde(skip)]
    pub source: PathBuf,
}

/// Report metadata about the implementation.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Implementation {
    /// Who maintains the implementation.
    pub organization: String,
    /// The implementation's name.
    pub project: String,
    /// Where it lives.
    pub url: String,
    /// The version tested.
    pub version: String,
    /// Who to contact about the report.
    #[serde(default)]
    pub contact: Vec<String>,
}

/// The admin, user and token services.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Services {
    /// admin-srv: the HTTP gateway that resolves the others.
    pub admin: ServiceSpec,
    /// user-srv: checks passwords over gRPC.
    pub user: ServiceSpec,
    /// token-srv: issues tokens over gRPC.
    pub token: ServiceSpec,
}

/// One service of the contract.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    /// Name of its Deployment (also the `app` label).
    pub deployment: String,
    /// Registry name, e.g. `go-micro.user-srv`.
    pub name: String,
    /// Its ConfigMap.
    pub config_map: String,
    /// HTTP port, if it serves HTTP.
    #[serde(default)]
    pub http_port: Option<u16>,
    /// gRPC port.
    pub grpc_port: u16,
}

/// How to obtain one image on each kind of backend.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageSource {
    /// A directory tree plus entrypoint, written as an OCI archive by the harness.
    #[serde(default)]
    pub local: Option<LocalImageSource>,
    /// Or: an OCI or `docker save` archive the profile brings, imported as it is.
    #[serde(default)]
    pub archive: Option<PathBuf>,
    /// For Docker-based backends: how to build it (absent: pulled or preloaded).
    #[serde(default)]
    pub docker: Option<DockerBuild>,
    /// Image references in the manifests that stand for this image (e.g. the registry path
    /// a third party's manifests pull from); they are rewritten to this image's name.
    #[serde(default)]
    pub replaces: Vec<String>,
}

/// A local image: a directory placed at `mount_path` of an image the harness writes (the
/// entrypoint program's shared libraries are added from the host).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalImageSource {
    /// A prebuilt directory used as the image root (third parties).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Or: a cargo package of this workspace whose binary (built in the harness's own cargo
    /// profile: dev under `cargo run`, release for `cargo run --release`) is placed at the root.
    #[serde(default)]
    pub cargo_package: Option<String>,
    /// With `cargo_package`: a directory copied to `<root>/conf`.
    #[serde(default)]
    pub conf: Option<PathBuf>,
    /// With `cargo_package`: a directory whose files are copied into the root (e.g. a
    /// wrapper script around the binary).
    #[serde(default)]
    pub overlay: Option<PathBuf>,
    /// Where the root appears inside the pod.
    pub mount_path: PathBuf,
    /// The image's entrypoint (command and arguments). A relative program (`./server`)
    /// is found from `working_dir`, as with a Dockerfile's `WORKDIR` + `ENTRYPOINT`.
    pub entrypoint: Vec<String>,
    /// The image's working directory (Dockerfile `WORKDIR`; `/` when absent).
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// The image's environment (Dockerfile `ENV`); the container's `env` overrides it.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Absolute host paths copied into the image at the same paths: programs (with their
    /// shared libraries) and directories a script image needs, e.g. `/bin/sh`.
    #[serde(default)]
    pub host_paths: Vec<PathBuf>,
}

/// A Docker build of one image.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DockerBuild {
    /// Build context directory.
    pub context: PathBuf,
    /// Dockerfile, relative to the profile.
    pub dockerfile: PathBuf,
    /// `--build-arg` values.
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
}

/// The runner's deadlines, each a duration like `180s` or `3m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timeouts {
    /// Longest a case's body may take (default 180s).
    #[serde(default = "default_case_timeout", with = "duration_text")]
    #[schemars(with = "String", extend("examples" = ["180s", "3m", "2m 30s"]))]
    pub case: Duration,
    /// Longest each restore a case registered may take (default 120s).
    #[serde(default = "default_cleanup_timeout", with = "duration_text")]
    #[schemars(with = "String", extend("examples" = ["180s", "3m", "2m 30s"]))]
    pub cleanup: Duration,
    /// Longest the runner waits for the implementation to be as deployed before a case
    /// (default 120s).
    #[serde(default = "default_recovery_timeout", with = "duration_text")]
    #[schemars(with = "String", extend("examples" = ["180s", "3m", "2m 30s"]))]
    pub recovery: Duration,
    /// Longest one step of a case waits for the cluster or the implementation to change: a
    /// rollout, a pod to go, a resolver update, a reload (default 60s).
    #[serde(default = "default_step_timeout", with = "duration_text")]
    #[schemars(with = "String", extend("examples" = ["180s", "3m", "2m 30s"]))]
    pub step: Duration,
    /// Longest the deployment's rollouts may take (default 180s).
    #[serde(default = "default_deploy_timeout", with = "duration_text")]
    #[schemars(with = "String", extend("examples" = ["180s", "3m", "2m 30s"]))]
    pub deploy: Duration,
    /// Longest the deployment waits, after the rollouts, for each service's pods to register
    /// before the run goes on with a warning (the registration and resolver cases then judge
    /// it; default 30s).
    #[serde(default = "default_registration_timeout", with = "duration_text")]
    #[schemars(with = "String", extend("examples" = ["30s", "5s"]))]
    pub registration: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            case: default_case_timeout(),
            cleanup: default_cleanup_timeout(),
            recovery: default_recovery_timeout(),
            step: default_step_timeout(),
            deploy: default_deploy_timeout(),
            registration: default_registration_timeout(),
        }
    }
}

fn default_case_timeout() -> Duration {
    Duration::from_secs(180)
}

fn default_cleanup_timeout() -> Duration {
    Duration::from_secs(120)
}

fn default_recovery_timeout() -> Duration {
    Duration::from_secs(120)
}

fn default_step_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_deploy_timeout() -> Duration {
    Duration::from_secs(180)
}

fn default_registration_timeout() -> Duration {
    Duration::from_secs(30)
}

/// Durations written as text (`180s`, `2m 30s`).
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*value).to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        let duration = humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!("{text:?} is not a duration like 180s: {e}"))
        })?;
        if duration.is_zero() {
            return Err(serde::de::Error::custom(
                "a timeout must be longer than zero",
            ));
        }
        Ok(duration)
    }
}

/// Expectations where the contract allows implementations to differ.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expectations {
    /// HTTP status for wrong credentials: 500 (Go-Micro) or 401.
    #[serde(default = "default_wrong_credentials_status")]
    pub wrong_credentials_http_status: u16,
    /// The demo user.
    #[serde(default)]
    pub demo_user: DemoUser,
    /// The token service's signing key as deployed.
    #[serde(default = "default_api_key")]
    pub api_key: String,
    /// HTTP statuses of a login while user-srv has no reachable instance: 503 (UNAVAILABLE)
    /// and 504 (DEADLINE_EXCEEDED) both conform; a profile may narrow the list.
    #[serde(default = "default_no_instance_status")]
    pub no_instance_http_status: Vec<u16>,
}

/// The statuses CONTRACT.md §5 allows while a downstream has no reachable instance.
pub(crate) const NO_INSTANCE_STATUSES: [u16; 2] = [503, 504];

/// Credentials of the demo user.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DemoUser {
    /// User name of the demo user.
    pub user_name: String,
    /// Its password.
    pub password: String,
    /// Its user ID, as login answers carry it.
    pub id: String,
}

impl Default for DemoUser {
    fn default() -> Self {
        DemoUser {
            user_name: "thangn".into(),
            password: "123456".into(),
            id: "1".into(),
        }
    }
}

impl Default for Expectations {
    fn default() -> Self {
        Expectations {
            wrong_credentials_http_status: default_wrong_credentials_status(),
            demo_user: DemoUser::default(),
            api_key: default_api_key(),
            no_instance_http_status: default_no_instance_status(),
        }
    }
}

fn default_wrong_credentials_status() -> u16 {
    500
}

fn default_api_key() -> String {
    "some_api_key".into()
}

fn default_no_instance_status() -> Vec<u16> {
    NO_INSTANCE_STATUSES.to_vec()
}

impl Profile {
    /// Reads, validates and resolves a profile file.
    pub fn load(path: &Path) -> Result<Profile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read profile {}", path.display()))?;
        let mut profile = Profile::parse(&text)
            .with_context(|| format!("profile {} is invalid", path.display()))?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        profile.resolve_paths(&base);
        profile.source = path.to_path_buf();
        if !profile.manifests.is_dir() {
            bail!(
                "profile {}: manifests directory {} does not exist",
                path.display(),
                profile.manifests.display()
            );
        }
        Ok(profile)
    }

    /// Parses and validates profile text (paths stay as written).
    pub fn parse(text: &str) -> Result<Profile> {
        let profile: Profile = serde_saphyr::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        profile.validate()?;
        Ok(profile)
    }

    fn validate(&self) -> Result<()> {
        if self.api_version != PROFILE_API_VERSION {
            bail!(
                "apiVersion must be {PROFILE_API_VERSION}, found {:?}",
                self.api_version
            );
        }
        if self.kind != "Profile" {
            bail!("kind must be Profile, found {:?}", self.kind);
        }
        if self.key_prefix.is_empty() || self.key_prefix.contains('/') {
            bail!(
                "keyPrefix must be a non-empty label-key prefix without '/', found {:?}",
                self.key_prefix
            );
        }
        if let Some(version) = &self.kubernetes_version {
            local_cluster::versions::release(version).context("kubernetesVersion")?;
        }
        let no_instance = &self.expectations.no_instance_http_status;
        if no_instance.is_empty()
            || no_instance
                .iter()
                .any(|s| !NO_INSTANCE_STATUSES.contains(s))
        {
            bail!(
                "expectations.noInstanceHttpStatus must name some of {NO_INSTANCE_STATUSES:?} (CONTRACT.md §5), found {no_instance:?}"
            );
        }
        for (name, image) in &self.images {
            if image.local.is_some() && image.archive.is_some() {
                bail!("image {name}: `local` and `archive` exclude each other");
            }
            if let Some(local) = &image.local {
                match (&local.dir, &local.cargo_package) {
                    (Some(_), None) | (None, Some(_)) => {}
                    _ => bail!("image {name}: local needs exactly one of `dir` or `cargoPackage`"),
                }
                if local.entrypoint.is_empty() {
                    bail!("image {name}: local.entrypoint must not be empty");
                }
                if (local.conf.is_some() || local.overlay.is_some())
                    && local.cargo_package.is_none()
                {
                    bail!("image {name}: local.conf and local.overlay need cargoPackage");
                }
                if let Some(path) = local.host_paths.iter().find(|p| !p.is_absolute()) {
                    bail!(
                        "image {name}: local.hostPaths must be absolute, found {}",
                        path.display()
                    );
                }
                if let Some(dir) = local.working_dir.as_ref().filter(|d| !d.is_absolute()) {
                    bail!(
                        "image {name}: local.workingDir must be absolute, found {}",
                        dir.display()
                    );
                }
            }
        }
        let mut claimed = BTreeMap::new();
        for (name, image) in &self.images {
            for reference in &image.replaces {
                if self.images.contains_key(reference) {
                    bail!("image {name}: replaces {reference}, which is itself a profile image");
                }
                if let Some(other) = claimed.insert(reference.as_str(), name.as_str()) {
                    bail!("images {other} and {name} both replace {reference}");
                }
            }
        }
        Ok(())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        abs(&mut self.manifests);
        for image in self.images.values_mut() {
            if let Some(local) = &mut image.local {
                if let Some(dir) = &mut local.dir {
                    abs(dir);
                }
                for dir in [&mut local.conf, &mut local.overlay].into_iter().flatten() {
                    abs(dir);
                }
            }
            if let Some(archive) = &mut image.archive {
                abs(archive);
            }
            if let Some(docker) = &mut image.docker {
                abs(&mut docker.context);
                abs(&mut docker.dockerfile);
            }
        }
    }

    /// The profile image a manifest's image reference stands for: the reference itself when
    /// the profile provides it, else the image that `replaces` it; `None` when not provided.
    pub fn provided_image(&self, reference: &str) -> Option<String> {
        if self.images.contains_key(reference) {
            return Some(reference.to_string());
        }
        self.images
            .iter()
            .find(|(_, image)| image.replaces.iter().any(|r| r == reference))
            .map(|(name, _)| name.clone())
    }

    /// Label or annotation key `<prefix>-service-<suffix>`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}-service-{suffix}", self.key_prefix)
    }

    /// The supported Kubernetes minor to start: the profile's (checked when loaded), else the
    /// default one.
    pub(crate) fn kubernetes_release(&self) -> &'static local_cluster::versions::Release {
        self.kubernetes_version
            .as_deref()
            .and_then(|v| local_cluster::versions::release(v).ok())
            .unwrap_or_else(local_cluster::versions::default_release)
    }

    /// Whether the implementation claims a feature.
    pub fn declares(&self, feature: Feature) -> bool {
        self.features.contains(&feature)
    }

    /// The three services with a short role name.
    pub fn all_services(&self) -> [(&'static str, &ServiceSpec); 3] {
        [
            ("token", &self.services.token),
            ("user", &self.services.user),
            ("admin", &self.services.admin),
        ]
    }
}

/// Path of the reference profile shipped in this repository: the checkout's, else (an
/// installed binary) its embedded copy with the `.k8s/` manifests, written into the cache.
/// Its images are built from the checkout's Rust sources.
pub fn reference_profile_path() -> PathBuf {
    let relative = crate::embedded::REFERENCE_PROFILE;
    if let Some(checkout) = local_cluster::sources::checkout() {
        return checkout.join(relative);
    }
    crate::embedded::write_reference().unwrap_or_else(|error| {
        let path = std::env::temp_dir().join(relative);
        eprintln!("warning: cannot write the embedded reference profile: {error:#}");
        path
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_profile_loads() {
        let profile = Profile::load(&reference_profile_path()).unwrap();
        assert_eq!(profile.key("id"), "gomicro-service-id");
        assert_eq!(profile.services.admin.http_port, Some(8080));
        assert!(profile.declares(Feature::Resolver));
        assert_eq!(profile.images.len(), 3);
    }

    #[test]
    fn broken_example_profiles_load() {
        let dir = reference_profile_path().parent().unwrap().join("broken");
        let prefix = Profile::load(&dir.join("wrong-key-prefix.yaml")).unwrap();
        assert_eq!(prefix.key("id"), "kratos-service-id");
        let never = Profile::load(&dir.join("never-registers.yaml")).unwrap();
        let user_image = &never.images["gomicro-conformance/user-srv:0.1.0"];
        assert!(
            user_image
                .local
                .as_ref()
                .unwrap()
                .dir
                .as_ref()
                .unwrap()
                .join("run.sh")
                .is_file()
        );
    }

    #[test]
    fn unknown_feature_is_named() {
        let text = std::fs::read_to_string(reference_profile_path()).unwrap();
        let text = text.replace("  - rbac\n", "  - rbac\n  - teleportation\n");
        let err = format!("{:#}", Profile::parse(&text).unwrap_err());
        assert!(err.contains("teleportation"), "{err}");
    }

    #[test]
    fn a_feature_without_cases_cannot_be_declared() {
        let text = std::fs::read_to_string(reference_profile_path()).unwrap();
        let text = text.replace("  - rbac\n", "  - rbac\n  - discovery\n");
        let err = format!("{:#}", Profile::parse(&text).unwrap_err());
        assert!(
            err.contains("`discovery` has no cases") && err.contains("readiness-aware-discovery"),
            "{err}"
        );
    }

    #[test]
    fn no_instance_statuses_are_limited_to_the_contracts() {
        let text = std::fs::read_to_string(reference_profile_path()).unwrap();
        let text = text.replace("noInstanceHttpStatus: [504]", "noInstanceHttpStatus: [500]");
        let err = format!("{:#}", Profile::parse(&text).unwrap_err());
        assert!(err.contains("noInstanceHttpStatus"), "{err}");
    }

    #[test]
    fn unknown_field_is_rejected() {
        let text = std::fs::read_to_string(reference_profile_path()).unwrap();
        let text = text.replace("keyPrefix: gomicro", "keyPrefix: gomicro\nkeyPrefx: typo");
        let err = format!("{:#}", Profile::parse(&text).unwrap_err());
        assert!(err.contains("keyPrefx"), "{err}");
    }
}
