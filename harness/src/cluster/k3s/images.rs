//! Images for k3s: the harness's OCI archives (the same the local node imports), or, as an
//! option, Docker builds saved as archives; imported with k3s' ctr after the container starts.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, anyhow, bail};
use testcontainers_modules::k3s::K3s;
use testcontainers_modules::testcontainers::ContainerAsync;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use super::{ARCHIVE_DIR_IN_CONTAINER, OUTPUT_TAIL_LINES, SKIP_BUILD_ENV, SNAPSHOTTER, exec};
use crate::profile::DockerBuild;

/// Builds every image with the Docker CLI (progress on stderr). With `HARNESS_SKIP_IMAGE_BUILD=1`
/// an image the engine already has is used as it is.
async fn build_images(images: &BTreeMap<String, DockerBuild>) -> Result<()> {
    let reuse_existing = std::env::var_os(SKIP_BUILD_ENV).is_some_and(|v| v == "1");
    for (name, build) in images {
        if reuse_existing && docker_has_image(name).await {
            eprintln!("[k3s] {SKIP_BUILD_ENV}=1: using the engine's {name}");
            continue;
        }
        eprintln!("[k3s] building {name} ...");
        run_docker(&format!("build {name}"), docker_build_args(name, build)).await?;
    }
    Ok(())
}

/// Arguments of `docker build` for one image.
fn docker_build_args(name: &str, build: &DockerBuild) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "build".into(),
        "-t".into(),
        name.into(),
        "-f".into(),
        build.dockerfile.clone().into(),
    ];
    for (key, value) in &build.build_args {
        args.push("--build-arg".into());
        args.push(format!("{key}={value}").into());
    }
    args.push(build.context.clone().into());
    args
}

/// `docker pull <name>`, its output passed through.
pub(super) async fn docker_pull(name: &str) -> Result<()> {
    let status = Command::new("docker")
        .args(["pull", name])
        .status()
        .await
        .context("cannot run docker")?;
    if !status.success() {
        bail!("docker pull {name} failed ({status})");
    }
    Ok(())
}

pub(super) async fn docker_has_image(name: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|status| status.success())
}

/// Where each archive is copied into the container when it is created (the image's data
/// volume: real disk, not the overlay).
pub(super) fn archive_in_container(index: usize) -> String {
    format!("{ARCHIVE_DIR_IN_CONTAINER}/{index}.tar")
}

/// The Docker builds as archives (`docker save`, one per image): the option for images only a
/// Dockerfile describes (`HARNESS_K3S_DOCKER_BUILD=1` builds the reference images this way).
pub(super) async fn docker_archives(
    images: &BTreeMap<String, DockerBuild>,
    out_dir: &Path,
) -> Result<Vec<PathBuf>> {
    build_images(images).await?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut archives = Vec::new();
    for name in images.keys() {
        let archive = out_dir.join(format!("{}.docker.tar", name.replace(['/', ':'], "_")));
        let save = vec![
            "save".into(),
            "-o".into(),
            archive.clone().into(),
            name.into(),
        ];
        run_docker(&format!("save {name}"), save).await?;
        archives.push(archive);
    }
    Ok(archives)
}

/// Imports the archives copied in at creation into the kubelet's containerd namespace and
/// checks that containerd lists every `expected` image.
pub(super) async fn import_archives(
    container: &ContainerAsync<K3s>,
    count: usize,
    expected: &[String],
) -> Result<()> {
    for index in 0..count {
        let archive = archive_in_container(index);
        let import = ctr_import_command(&archive);
        exec(
            container,
            &import.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .await?;
        if let Err(error) = exec(container, &["rm", "-f", &archive]).await {
            tracing::warn!("could not remove {archive} in the k3s container: {error:#}");
        }
    }
    let listed = exec(container, &["ctr", "-n", "k8s.io", "images", "ls", "-q"]).await?;
    let listed: Vec<&str> = listed.lines().map(str::trim).collect();
    let missing: Vec<String> = expected
        .iter()
        .map(|name| containerd_reference(name))
        .filter(|r| !listed.contains(&r.as_str()))
        .collect();
    if !missing.is_empty() {
        bail!("k3s containerd lacks {missing:?} after the import; it lists {listed:?}");
    }
    Ok(())
}

/// `ctr images import` into the kubelet's namespace, unpacked for k3s' snapshotter.
fn ctr_import_command(archive: &str) -> Vec<String> {
    [
        "ctr",
        "-n",
        "k8s.io",
        "images",
        "import",
        &format!("--snapshotter={SNAPSHOTTER}"),
        archive,
    ]
    .map(String::from)
    .into()
}

/// The fully qualified name containerd (and the kubelet) use for a Docker image reference:
/// Docker Hub's domain and `library/` added, `:latest` when no tag or digest is given.
fn containerd_reference(image: &str) -> String {
    let (first, rest) = image.split_once('/').unwrap_or(("", image));
    let has_domain =
        !first.is_empty() && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut reference = match (has_domain, first.is_empty()) {
        (true, _) => image.to_string(),
        (false, true) => format!("docker.io/library/{rest}"),
        (false, false) => format!("docker.io/{image}"),
    };
    let last = reference.rsplit('/').next().unwrap_or_default();
    if !last.contains(':') && !last.contains('@') {
        reference.push_str(":latest");
    }
    reference
}

/// Runs the docker CLI, echoing its output on stderr as `[k3s] <label> | line`; on failure the
/// error names the command and quotes the last lines of its output.
async fn run_docker(label: &str, args: Vec<OsString>) -> Result<()> {
    let rendered = render_command("docker", &args);
    let mut child = Command::new("docker")
        .args(&args)
        .env("BUILDKIT_PROGRESS", "plain")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => {
                anyhow!("the docker CLI is not installed (needed for `{rendered}`)")
            }
            _ => anyhow!("cannot run `{rendered}`: {error}"),
        })?;
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel();
    let readers = [
        child
            .stdout
            .take()
            .map(|out| forward_lines(out, lines_tx.clone())),
        child
            .stderr
            .take()
            .map(|err| forward_lines(err, lines_tx.clone())),
    ];
    drop(lines_tx);
    let mut last_lines = VecDeque::with_capacity(OUTPUT_TAIL_LINES);
    while let Some(line) = lines_rx.recv().await {
        eprintln!("[k3s] {label} | {line}");
        if last_lines.len() == OUTPUT_TAIL_LINES {
            last_lines.pop_front();
        }
        last_lines.push_back(line);
    }
    for reader in readers.into_iter().flatten() {
        let _ = reader.await;
    }
    let status = child
        .wait()
        .await
        .with_context(|| format!("`{rendered}` did not finish"))?;
    if !status.success() {
        let output: Vec<String> = last_lines.into();
        bail!(
            "`{rendered}` failed ({status}); last output lines:\n{}",
            output.join("\n")
        );
    }
    Ok(())
}

/// Sends each line of `stream` to `lines` until it ends.
fn forward_lines(
    stream: impl AsyncRead + Unpin + Send + 'static,
    lines: tokio::sync::mpsc::UnboundedSender<String>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if lines.send(line).is_err() {
                break;
            }
        }
    })
}

/// A command line for messages, with arguments containing spaces quoted.
fn render_command(program: &str, args: &[OsString]) -> String {
    let mut rendered = program.to_string();
    for arg in args {
        let arg = arg.to_string_lossy();
        if arg.is_empty() || arg.contains(char::is_whitespace) {
            let _ = write!(rendered, " '{arg}'");
        } else {
            let _ = write!(rendered, " {arg}");
        }
    }
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_build_command_lists_tag_file_args_and_context() {
        let build = DockerBuild {
            context: PathBuf::from("/repo"),
            dockerfile: PathBuf::from("/repo/reference-services/Dockerfile"),
            build_args: BTreeMap::from([
                ("SERVICE".into(), "token-srv".into()),
                ("A".into(), "b c".into()),
            ]),
        };
        let args = docker_build_args("gomicro-conformance/token-srv:0.1.0", &build);
        assert_eq!(
            render_command("docker", &args),
            "docker build -t gomicro-conformance/token-srv:0.1.0 -f /repo/reference-services/Dockerfile \
             --build-arg 'A=b c' --build-arg SERVICE=token-srv /repo"
        );
    }

    #[test]
    fn docker_references_are_qualified_like_containerd() {
        assert_eq!(
            containerd_reference("gomicro-conformance/token-srv:0.1.0"),
            "docker.io/gomicro-conformance/token-srv:0.1.0"
        );
        assert_eq!(
            containerd_reference("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            containerd_reference("ghcr.io/acme/svc:1"),
            "ghcr.io/acme/svc:1"
        );
        assert_eq!(
            containerd_reference("localhost:5000/svc"),
            "localhost:5000/svc:latest"
        );
        assert_eq!(containerd_reference("localhost/svc:2"), "localhost/svc:2");
    }

    #[test]
    fn imports_unpack_for_the_native_snapshotter() {
        assert!(ctr_import_command("/x.tar").contains(&"--snapshotter=native".to_string()));
        assert_eq!(
            archive_in_container(2),
            "/var/lib/rancher/k3s/harness-images/2.tar"
        );
    }
}
