//! The OCI image layout archive: blobs (layers, config, manifest) named by their sha256,
//! `index.json` naming the image, and `oci-layout`, in one tar.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, ImageConfigurationBuilder,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, Os, PlatformBuilder, RootFsBuilder,
    Sha256Digest,
};
use sha2::{Digest as _, Sha256};

use crate::layer::Layer;
use crate::reference::normalize_reference;

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
    for layer in layers {
        let tar = layer.to_tar()?;
        layer_descriptors.push(descriptor(MediaType::ImageLayer, &tar)?);
        blobs.push(tar);
    }
    let diff_ids: Vec<String> = layer_descriptors
        .iter()
        .map(|d| d.digest().to_string())
        .collect();
    let config_json = serde_json::to_vec(
        &ImageConfigurationBuilder::default()
            .architecture(Arch::default())
            .os(Os::default())
            .config(image_config(config)?)
            .rootfs(
                RootFsBuilder::default()
                    .typ("layers")
                    .diff_ids(diff_ids)
                    .build()?,
            )
            .build()?,
    )?;
    let manifest = serde_json::to_vec(
        &ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .config(descriptor(MediaType::ImageConfig, &config_json)?)
            .layers(layer_descriptors)
            .build()?,
    )?;
    let mut manifest_descriptor = descriptor(MediaType::ImageManifest, &manifest)?;
    let manifest_digest = manifest_descriptor.digest().to_string();
    manifest_descriptor.set_platform(Some(
        PlatformBuilder::default()
            .architecture(Arch::default())
            .os(Os::default())
            .build()?,
    ));
    manifest_descriptor.set_annotations(Some(
        [
            ("io.containerd.image.name", &reference),
            ("org.opencontainers.image.ref.name", &reference),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value.clone()))
        .collect(),
    ));
    let index = serde_json::to_vec(
        &ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(vec![manifest_descriptor])
            .build()?,
    )?;
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

/// The OCI image config's `config`: only what is set.
fn image_config(config: &ImageConfig) -> Result<oci_spec::image::Config> {
    let mut builder = ConfigBuilder::default();
    if !config.entrypoint.is_empty() {
        builder = builder.entrypoint(config.entrypoint.clone());
    }
    if !config.cmd.is_empty() {
        builder = builder.cmd(config.cmd.clone());
    }
    if let Some(dir) = &config.working_dir {
        builder = builder.working_dir(dir.clone());
    }
    if !config.env.is_empty() {
        builder = builder.env(config.env.clone());
    }
    Ok(builder.build()?)
}

/// The descriptor of `blob`: its media type, sha256 digest and size.
fn descriptor(media_type: MediaType, blob: &[u8]) -> Result<Descriptor> {
    let digest: Sha256Digest = sha256_hex(blob).parse()?;
    Ok(DescriptorBuilder::default()
        .media_type(media_type)
        .digest(digest)
        .size(blob.len() as u64)
        .build()?)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Read as _;

    use serde_json::{Value, json};

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
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
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
