//! Delivering images to any cluster: the harness's OCI archives pushed to a registry the
//! cluster can pull from (`--registry HOST[:PORT]/PREFIX`), with the OCI distribution API
//! through `oci-client`. The manifests, configs and layers go as written, so the pushed digests
//! are the archives' own.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::Value;

use crate::profile::{ImageSource, Profile};

/// Where images are pushed: a registry host (with its port) and a repository prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    host: String,
    prefix: String,
}

impl FromStr for Registry {
    type Err = String;

    /// `HOST[:PORT]/PREFIX` (the prefix may have several segments, or be empty).
    fn from_str(text: &str) -> Result<Registry, String> {
        let (host, prefix) = text.split_once('/').unwrap_or((text, ""));
        let valid_host = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
        let valid_prefix = prefix.split('/').filter(|s| !s.is_empty()).all(|segment| {
            segment
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        });
        if !valid_host || !valid_prefix {
            return Err(format!(
                "--registry {text:?}: expected HOST[:PORT]/PREFIX, e.g. 127.0.0.1:5000/conformance (lower-case repository path)"
            ));
        }
        Ok(Registry {
            host: host.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    }
}

impl Registry {
    /// The reference `image` gets in this registry: its repository path (without a registry
    /// host of its own) under the prefix, with its tag.
    pub(crate) fn reference_for(&self, image: &str) -> String {
        let path = match image.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                rest
            }
            _ => image,
        };
        if self.prefix.is_empty() {
            format!("{}/{path}", self.host)
        } else {
            format!("{}/{}/{path}", self.host, self.prefix)
        }
    }

    /// Plain HTTP only to a registry on loopback (one the run started); TLS everywhere else.
    fn protocol(&self) -> ClientProtocol {
        let name = self
            .host
            .rsplit_once(':')
            .map_or(self.host.as_str(), |(name, _)| name);
        let loopback = name == "localhost"
            || name == "[::1]"
            || name
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback());
        if loopback {
            ClientProtocol::HttpsExcept(vec![self.host.clone()])
        } else {
            ClientProtocol::Https
        }
    }
}

/// One image archive read into memory: its name, manifest and blobs.
struct Archive {
    name: String,
    manifest: Vec<u8>,
    blobs: BTreeMap<String, Vec<u8>>,
    layers: Vec<String>,
    config: String,
}

/// Reads an OCI image layout tar: the image named in its index, its manifest and the blobs it
/// lists.
fn read_archive(path: &Path) -> Result<Archive> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for entry in tar::Archive::new(file).entries()? {
        let mut entry = entry?;
        let name = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        files.insert(name, data);
    }
    let blob = |digest: &str| -> Result<Vec<u8>> {
        let hex = digest
            .strip_prefix("sha256:")
            .with_context(|| format!("digest {digest} is not sha256"))?;
        files
            .get(&format!("blobs/sha256/{hex}"))
            .cloned()
            .with_context(|| format!("blob {digest} is missing"))
    };
    let index: Value = serde_json::from_slice(
        files
            .get("index.json")
            .context("no index.json: not an OCI image layout")?,
    )?;
    let descriptor = &index["manifests"][0];
    let annotations = &descriptor["annotations"];
    let name = annotations["io.containerd.image.name"]
        .as_str()
        .or_else(|| annotations["org.opencontainers.image.ref.name"].as_str())
        .context("the index names no image")?
        .to_string();
    let manifest = blob(
        descriptor["digest"]
            .as_str()
            .context("no manifest digest")?,
    )?;
    let parsed: Value = serde_json::from_slice(&manifest)?;
    let config = parsed["config"]["digest"]
        .as_str()
        .context("the manifest has no config")?
        .to_string();
    let layers: Vec<String> = parsed["layers"]
        .as_array()
        .context("the manifest has no layers")?
        .iter()
        .filter_map(|l| l["digest"].as_str().map(String::from))
        .collect();
    let mut blobs = BTreeMap::new();
    for digest in layers.iter().chain([&config]) {
        blobs.insert(digest.clone(), blob(digest)?);
    }
    Ok(Archive {
        name,
        manifest,
        blobs,
        layers,
        config,
    })
}

/// Pushes every archive to `registry`, printing each image's size and time; returns each
/// image's name (as the harness and the manifests know it, without `docker.io/`) → its pushed
/// reference. A refused push names the registry's answer.
pub(crate) async fn push_archives(
    registry: &Registry,
    archives: &[PathBuf],
) -> Result<BTreeMap<String, String>> {
    let client = Client::new(ClientConfig {
        protocol: registry.protocol(),
        ..Default::default()
    });
    let started = Instant::now();
    let mut pushed = BTreeMap::new();
    let mut total_bytes = 0usize;
    for path in archives {
        let image_started = Instant::now();
        let archive = read_archive(path).with_context(|| format!("reading {}", path.display()))?;
        let short = archive
            .name
            .strip_prefix("docker.io/")
            .unwrap_or(&archive.name)
            .to_string();
        let target = registry.reference_for(&short);
        let reference: Reference = target
            .parse()
            .with_context(|| format!("{target} is not an image reference"))?;
        client
            .store_auth_if_needed(reference.resolve_registry(), &RegistryAuth::Anonymous)
            .await;
        let mut bytes = archive.manifest.len();
        for digest in archive.layers.iter().chain([&archive.config]) {
            let data = archive.blobs[digest].clone();
            bytes += data.len();
            client
                .push_blob(&reference, data, digest)
                .await
                .with_context(|| {
                    format!(
                        "pushing {digest} of {short} to {}: the registry refused",
                        registry.host
                    )
                })?;
        }
        client
            .push_manifest_raw(
                &reference,
                archive.manifest.clone(),
                reqwest::header::HeaderValue::from_static(
                    "application/vnd.oci.image.manifest.v1+json",
                ),
            )
            .await
            .with_context(|| {
                format!(
                    "pushing the manifest of {short} to {}: the registry refused",
                    registry.host
                )
            })?;
        eprintln!(
            "[images] pushed {target} ({:.1} MiB) in {:.1} s",
            bytes as f64 / (1024.0 * 1024.0),
            image_started.elapsed().as_secs_f64()
        );
        total_bytes += bytes;
        pushed.insert(short, target);
    }
    if pushed.is_empty() {
        bail!("no image to push");
    }
    eprintln!(
        "[images] {} image(s), {:.1} MiB, pushed to {} in {:.1} s",
        pushed.len(),
        total_bytes as f64 / (1024.0 * 1024.0),
        registry.host,
        started.elapsed().as_secs_f64()
    );
    Ok(pushed)
}

/// `profile` with its images (and the harness's pod image) pushed to `registry`: each image is
/// renamed to its pushed reference and `replaces` its old name, so the manifests deploy the
/// pushed references.
pub(crate) async fn deliver(
    profile: &Profile,
    registry: &Registry,
    harness_exe: &Path,
) -> Result<Profile> {
    let archives = super::local_archives(profile, harness_exe)?;
    let pushed = push_archives(registry, &archives).await?;
    let mut delivered = profile.clone();
    let mut images = BTreeMap::new();
    for (name, mut source) in profile.images.clone() {
        match pushed.get(&name) {
            Some(target) => {
                source.replaces.push(name);
                images.insert(target.clone(), source);
            }
            None => {
                images.insert(name, source);
            }
        }
    }
    if let Some(target) = pushed.get(super::HARNESS_POD_IMAGE) {
        images.insert(
            target.clone(),
            ImageSource {
                replaces: vec![super::HARNESS_POD_IMAGE.to_string()],
                ..ImageSource::default()
            },
        );
    }
    delivered.images = images;
    Ok(delivered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_go_under_the_prefix_without_their_own_registry() {
        let registry: Registry = "127.0.0.1:5000/conformance".parse().unwrap();
        assert_eq!(
            registry.reference_for("gomicro-conformance/token-srv:0.1.0"),
            "127.0.0.1:5000/conformance/gomicro-conformance/token-srv:0.1.0"
        );
        assert_eq!(
            registry.reference_for("ghcr.io/acme/user-srv:1"),
            "127.0.0.1:5000/conformance/acme/user-srv:1"
        );
        let bare: Registry = "localhost:5000".parse().unwrap();
        assert_eq!(bare.reference_for("a/b:c"), "localhost:5000/a/b:c");
        assert_eq!(
            bare.protocol(),
            ClientProtocol::HttpsExcept(vec!["localhost:5000".into()])
        );
        let remote: Registry = "registry.example/x".parse().unwrap();
        assert_eq!(remote.protocol(), ClientProtocol::Https);
    }

    #[test]
    fn a_malformed_registry_is_refused_with_the_expected_form() {
        for bad in ["", "/prefix", "127.0.0.1:5000/Upper", "a b/c"] {
            let error = bad.parse::<Registry>().unwrap_err();
            assert!(error.contains("HOST[:PORT]/PREFIX"), "{bad}: {error}");
        }
    }
}
