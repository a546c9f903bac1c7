//! The OCI image layout archive: blobs (layers, config, manifest) named by their sha256,
//! `index.json` naming the image, and `oci-layout`, in one tar.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::layer::Layer;
use crate::reference::normalize_reference;

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// What the image runs: the OCI image config's `Entrypoint`, `Cmd`, `WorkingDir`, `Env`.
#[derive(Debug, Clone, Default)]
pub struct ImageConfig {
    /// The program and its first arguments.
    pub entrypoint: Vec<String>,
    /// Default arguments after the entrypoint.
    pub cmd: Vec<String>,
    /// The working directory (absolute), if not `/`.
    pub working_dir: Option<String>,
    /// `NAME=value` entries.
    pub env: Vec<String>,
}

/// What [`write_archive`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSummary {
    /// The fully qualified reference the archive names the image by.
    pub reference: String,
    /// `sha256:<hex>` of the manifest (the image's digest).
    pub manifest_digest: String,
    /// Size of the archive file.
    pub archive_bytes: u64,
}

/// Writes an OCI image layout tar for `reference` (normalized, see
/// [`normalize_reference`]) with `layers` (bottom first) and `config` to `path`
/// (atomically: a partial archive never appears at `path`).
pub fn write_archive(
    path: &Path,
    reference: &str,
    layers: &[Layer],
    config: &ImageConfig,
) -> Result<ArchiveSummary> {
    let reference = normalize_reference(reference)?;
    if layers.is_empty() {
        bail!("image {reference}: at least one layer is needed");
    }
    if let Some(dir) = &config.working_dir
        && !dir.starts_with('/')
    {
        bail!("image {reference}: working directory {dir:?} must be absolute");
    }
    if let Some(bad) = config.env.iter().find(|e| !e.contains('=')) {
        bail!("image {reference}: env entry {bad:?} is not NAME=value");
    }
    let mut blobs = Vec::new();
    let mut layer_descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in layers {
        let tar = layer.to_tar()?;
        let descriptor = descriptor(LAYER_TYPE, &tar);
        diff_ids.push(descriptor["digest"].clone());
        layer_descriptors.push(descriptor);
        blobs.push(tar);
    }
    let (os, architecture) = platform();
    let config_json = serde_json::to_vec(&json!({
        "architecture": architecture,
        "os": os,
        "config": image_config_json(config),
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": descriptor(CONFIG_TYPE, &config_json),
        "layers": layer_descriptors,
    }))?;
    let mut manifest_descriptor = descriptor(MANIFEST_TYPE, &manifest);
    let manifest_digest = manifest_descriptor["digest"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    manifest_descriptor["platform"] = json!({ "architecture": architecture, "os": os });
    manifest_descriptor["annotations"] = json!({
        "io.containerd.image.name": reference,
        "org.opencontainers.image.ref.name": reference,
    });
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [manifest_descriptor],
    }))?;
    blobs.push(config_json);
    blobs.push(manifest);

    let partial = path.with_extension("partial");
    write_layout(&partial, &index, &blobs)
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(ArchiveSummary {
        reference,
        manifest_digest,
        archive_bytes: std::fs::metadata(path)?.len(),
    })
}

fn write_layout(path: &Path, index: &[u8], blobs: &[Vec<u8>]) -> Result<()> {
    let file = std::fs::File::create(path)?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    let mut append = |name: &str, data: &[u8]| -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        builder.append_data(&mut header, name, data)?;
        Ok(())
    };
    append("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    append("index.json", index)?;
    let mut written = std::collections::BTreeSet::new();
    for blob in blobs {
        let hex = sha256_hex(blob);
        if written.insert(hex.clone()) {
            append(&format!("blobs/sha256/{hex}"), blob)?;
        }
    }
    builder.into_inner()?.flush()?;
    Ok(())
}

fn image_config_json(config: &ImageConfig) -> Value {
    let mut value = json!({});
    if !config.entrypoint.is_empty() {
        value["Entrypoint"] = json!(config.entrypoint);
    }
    if !config.cmd.is_empty() {
        value["Cmd"] = json!(config.cmd);
    }
    if let Some(dir) = &config.working_dir {
        value["WorkingDir"] = json!(dir);
    }
    if !config.env.is_empty() {
        value["Env"] = json!(config.env);
    }
    value
}

fn descriptor(media_type: &str, blob: &[u8]) -> Value {
    json!({
        "mediaType": media_type,
        "digest": format!("sha256:{}", sha256_hex(blob)),
        "size": blob.len(),
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The OCI `os` and `architecture` of the machine the harness runs on.
fn platform() -> (&'static str, &'static str) {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    };
    ("linux", architecture)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Read as _;

    use super::*;

    /// Every file of an archive by name.
    fn unpack(path: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let name = entry.path().unwrap().to_string_lossy().into_owned();
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                (name, bytes)
            })
            .collect()
    }

    fn blob<'a>(files: &'a BTreeMap<String, Vec<u8>>, descriptor: &Value) -> &'a [u8] {
        let digest = descriptor["digest"].as_str().unwrap();
        let bytes = &files[&format!("blobs/sha256/{}", digest.strip_prefix("sha256:").unwrap())];
        assert_eq!(descriptor["size"], json!(bytes.len()), "size of {digest}");
        bytes
    }

    fn sample() -> (Layer, ImageConfig) {
        let mut layer = Layer::new();
        layer
            .add_bytes("/app/server", b"#!/bin/sh\necho hi\n".to_vec(), 0o755)
            .unwrap();
        let config = ImageConfig {
            entrypoint: vec!["/app/server".into()],
            cmd: vec!["--port".into(), "8080".into()],
            working_dir: Some("/app".into()),
            env: vec!["MODE=test".into()],
        };
        (layer, config)
    }

    #[test]
    fn every_blob_is_named_by_its_digest_and_the_index_names_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tar");
        let (layer, config) = sample();
        let summary = write_archive(
            &path,
            "gomicro/app:dev",
            std::slice::from_ref(&layer),
            &config,
        )
        .unwrap();
        assert_eq!(summary.reference, "docker.io/gomicro/app:dev");
        assert_eq!(
            summary.archive_bytes,
            std::fs::metadata(&path).unwrap().len()
        );

        let files = unpack(&path);
        for (name, bytes) in &files {
            if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                assert_eq!(sha256_hex(bytes), hex, "blob {name}");
            }
        }
        assert_eq!(files["oci-layout"], br#"{"imageLayoutVersion":"1.0.0"}"#);
        let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let entry = &index["manifests"][0];
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(entry["digest"], json!(summary.manifest_digest));
        assert_eq!(
            entry["annotations"]["io.containerd.image.name"],
            "docker.io/gomicro/app:dev"
        );
        assert_eq!(entry["platform"]["os"], "linux");

        let manifest: Value = serde_json::from_slice(blob(&files, entry)).unwrap();
        assert_eq!(manifest["mediaType"], MANIFEST_TYPE);
        let image: Value = serde_json::from_slice(blob(&files, &manifest["config"])).unwrap();
        assert_eq!(
            image["config"],
            json!({
                "Entrypoint": ["/app/server"],
                "Cmd": ["--port", "8080"],
                "WorkingDir": "/app",
                "Env": ["MODE=test"],
            })
        );
        let layer_tar = blob(&files, &manifest["layers"][0]);
        assert_eq!(layer_tar, layer.to_tar().unwrap().as_slice());
        assert_eq!(
            image["rootfs"]["diff_ids"][0],
            manifest["layers"][0]["digest"]
        );
        assert_eq!(
            files.len(),
            5,
            "oci-layout, index.json, layer, config, manifest"
        );
    }

    #[test]
    fn the_same_image_gets_the_same_digest_and_a_change_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let (layer, config) = sample();
        let write = |name: &str, config: &ImageConfig| {
            write_archive(
                &dir.path().join(name),
                "app",
                std::slice::from_ref(&layer),
                config,
            )
            .unwrap()
        };
        let first = write("a.tar", &config);
        assert_eq!(first, write("b.tar", &config));
        let changed = ImageConfig {
            env: vec!["MODE=other".into()],
            ..config
        };
        assert_ne!(
            write("c.tar", &changed).manifest_digest,
            first.manifest_digest
        );
    }

    #[test]
    fn bad_input_is_refused_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tar");
        let (layer, config) = sample();
        let cases = [
            (
                write_archive(&path, "app", &[], &config),
                "at least one layer",
            ),
            (
                write_archive(&path, "App", std::slice::from_ref(&layer), &config),
                "lowercase",
            ),
            (
                write_archive(
                    &path,
                    "app",
                    std::slice::from_ref(&layer),
                    &ImageConfig {
                        working_dir: Some("app".into()),
                        ..config.clone()
                    },
                ),
                "must be absolute",
            ),
            (
                write_archive(
                    &path,
                    "app",
                    &[layer],
                    &ImageConfig {
                        env: vec!["NOVALUE".into()],
                        ..config
                    },
                ),
                "NAME=value",
            ),
        ];
        for (result, reason) in cases {
            let error = result.unwrap_err().to_string();
            assert!(error.contains(reason), "{error}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
