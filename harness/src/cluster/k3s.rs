//! k3s in a Docker container (testcontainers-modules `K3s`), with the profile's images built by
//! the Docker CLI and imported into k3s' containerd.
//!
//! Steps of [`K3sCluster::start`]: check that a Docker engine answers; start the container
//! (privileged, host user and cgroup namespaces, bundled add-ons we do not need disabled) while
//! building the images; read the kubeconfig out of the container and point it at the mapped API
//! port on 127.0.0.1; wait for the node to be Ready and CoreDNS to be Ready; `docker save` the
//! images, copy the archive into the container and `ctr import` it.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use testcontainers_modules::k3s::{K3s, KUBE_SECURE_PORT};
use testcontainers_modules::testcontainers::bollard::container::LogOutput;
use testcontainers_modules::testcontainers::bollard::exec::{CreateExecOptions, StartExecResults};
use testcontainers_modules::testcontainers::core::CgroupnsMode;
use testcontainers_modules::testcontainers::core::client::docker_client_instance;
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use crate::profile::DockerBuild;
use crate::wait::wait_until;

/// The k3s image.
pub const K3S_IMAGE: &str = "rancher/k3s";
/// The pinned k3s tag. Its Kubernetes minor must match the workspace's k8s-openapi feature
/// (`v1_35`) and `ci/controlplane/versions.env`, which pins the same minor for the local backend.
pub const K3S_TAG: &str = "v1.35.4-k3s1";
/// Label put on every k3s container of the harness, so CI can reap leftovers by label.
pub const CONTAINER_LABEL: (&str, &str) = ("dev.gomicro-conformance.backend", "k3s");

/// containerd snapshotter: `native` works wherever `/var/lib/rancher/k3s` lives (overlayfs
/// inside an overlayfs-backed container fails); the image import must unpack into the same one.
const SNAPSHOTTER: &str = "native";
/// Where k3s writes its admin kubeconfig inside the container.
const KUBECONFIG_IN_CONTAINER: &str = "/etc/rancher/k3s/k3s.yaml";
/// Where the image archive is copied (the image's data volume: real disk, not the overlay).
const IMAGE_ARCHIVE_IN_CONTAINER: &str = "/var/lib/rancher/k3s/harness-images.tar";
/// Until the container logs "Node controller sync successful" (cold CI starts are slow).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(240);
/// Until the node and CoreDNS are Ready after the container started (includes image pulls).
const READY_TIMEOUT: Duration = Duration::from_secs(240);
/// The engine check must stay quick: `auto` runs it on every start.
const ENGINE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Output lines of a failed command quoted in its error.
const OUTPUT_TAIL_LINES: usize = 40;
/// Environment switch: reuse images already in the Docker engine instead of building them.
const SKIP_BUILD_ENV: &str = "HARNESS_SKIP_IMAGE_BUILD";

/// Whether a Docker engine answers (the same engine testcontainers would start k3s on),
/// within about two seconds.
pub async fn docker_engine_answers() -> bool {
    let ping = async { docker_client_instance().await.ok()?.ping().await.ok() };
    matches!(
        tokio::time::timeout(ENGINE_PROBE_TIMEOUT, ping).await,
        Ok(Some(_))
    )
}

/// Why `auto` cannot use k3s here, or `None` when it can: a Docker engine answers and already
/// holds the pinned k3s image. `auto` never pulls (a pull would reach a registry; on a closed
/// machine it would look up an outside name): `--backend k3s` pulls when the image is missing.
pub async fn unavailable_reason() -> Option<String> {
    if !docker_engine_answers().await {
        return Some(format!(
            "no Docker engine answered within {ENGINE_PROBE_TIMEOUT:?} (DOCKER_HOST or /var/run/docker.sock)"
        ));
    }
    let image = format!("{K3S_IMAGE}:{K3S_TAG}");
    if !docker_has_image(&image).await {
        return Some(format!(
            "the Docker engine does not hold {image}; `docker pull {image}` (or `--backend k3s`, which pulls it) makes auto choose k3s"
        ));
    }
    None
}

/// A running k3s container with the profile's images imported.
pub struct K3sCluster {
    container: ContainerAsync<K3s>,
    /// The rewritten admin kubeconfig, written for humans (`KUBECONFIG=... kubectl ...`).
    kubeconfig: TempFile,
}

impl K3sCluster {
    /// Starts k3s, builds and imports `images` (image reference to its Docker build), waits
    /// until the node and CoreDNS are Ready, and returns an admin client.
    pub async fn start(
        images: &BTreeMap<String, DockerBuild>,
    ) -> Result<(K3sCluster, kube::Client)> {
        if !docker_engine_answers().await {
            bail!(
                "the k3s backend needs a Docker engine, and none answered within {ENGINE_PROBE_TIMEOUT:?} \
                 (DOCKER_HOST or /var/run/docker.sock); start Docker, or use `--backend local`, which \
                 needs no Docker"
            );
        }
        // Build while k3s boots; wait for both so a failed build never leaks a half-started container.
        let (cluster, built) = tokio::join!(start_ready_cluster(), build_images(images));
        let (cluster, client) = cluster?;
        built?;
        let names: Vec<&str> = images.keys().map(String::as_str).collect();
        import_images(cluster.container.id(), &names).await?;
        Ok((cluster, client))
    }

    /// Removes the container, or with `keep` leaves it running and prints how to reach and
    /// remove it.
    pub async fn shutdown(self, keep: bool) -> Result<()> {
        let K3sCluster {
            container,
            kubeconfig,
        } = self;
        let id = container.id().to_string();
        if keep {
            let kubeconfig = kubeconfig.keep();
            eprintln!(
                "[k3s] keeping container {id} ({K3S_IMAGE}:{K3S_TAG}); reach it with\n  \
                 export KUBECONFIG={}\n  kubectl get pods -A\n\
                 [k3s] remove it with\n  docker rm -f -v {id}",
                kubeconfig.display()
            );
            // Dropping the handle would remove the container.
            std::mem::forget(container);
            return Ok(());
        }
        eprintln!("[k3s] removing container {}", short_id(&id));
        drop(kubeconfig);
        container
            .rm()
            .await
            .with_context(|| format!("cannot remove k3s container {id}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Container and client

/// The k3s server command: the module's default (`server --snapshotter=native`) plus the
/// bundled add-ons the conformance run does not need (fewer image pulls, less memory).
fn k3s_command() -> Vec<String> {
    [
        "server".to_string(),
        format!("--snapshotter={SNAPSHOTTER}"),
        "--disable=traefik".to_string(),
        "--disable=metrics-server".to_string(),
        "--disable=servicelb".to_string(),
        "--disable=local-storage".to_string(),
    ]
    .into()
}

/// Starts the container, builds a client and waits until the cluster can run pods.
async fn start_ready_cluster() -> Result<(K3sCluster, kube::Client)> {
    eprintln!(
        "[k3s] starting {K3S_IMAGE}:{K3S_TAG} (up to {}s) ...",
        STARTUP_TIMEOUT.as_secs()
    );
    let started = Instant::now();
    let container = K3s::default()
        .with_tag(K3S_TAG)
        .with_cmd(k3s_command())
        .with_privileged(true)
        .with_userns_mode("host")
        .with_cgroupns_mode(CgroupnsMode::Host)
        .with_label(CONTAINER_LABEL.0, CONTAINER_LABEL.1)
        .with_startup_timeout(STARTUP_TIMEOUT)
        .start()
        .await
        .map_err(|error| explain_start_error(&error.to_string()))?;
    let id = container.id().to_string();
    eprintln!(
        "[k3s] container {} up after {}s",
        short_id(&id),
        started.elapsed().as_secs()
    );

    let api_port = container
        .get_host_port_ipv4(KUBE_SECURE_PORT)
        .await
        .context("k3s: the API port 6443 is not published")?;
    let original = read_container_file(&id, KUBECONFIG_IN_CONTAINER).await?;
    let kubeconfig_yaml = rewrite_kubeconfig_server(&original, &api_server_url(api_port))?;
    let kubeconfig = TempFile(temp_path(&id, "kubeconfig"));
    write_private_file(&kubeconfig.0, &kubeconfig_yaml)?;
    eprintln!("[k3s] kubeconfig: {}", kubeconfig.0.display());
    let cluster = K3sCluster {
        container,
        kubeconfig,
    };

    let client = client_from_kubeconfig(&kubeconfig_yaml).await?;
    wait_until_ready(&client).await?;
    eprintln!("[k3s] cluster ready after {}s", started.elapsed().as_secs());
    Ok((cluster, client))
}

/// Turns a failed start into an error that says what to do.
fn explain_start_error(error: &str) -> anyhow::Error {
    let lowered = error.to_lowercase();
    if lowered.contains("privileged") || lowered.contains("authorization denied") {
        anyhow!(
            "the Docker engine refused a privileged container, which k3s needs ({error}); use a \
             Docker engine that allows `--privileged`, or `--backend local`"
        )
    } else {
        anyhow!(
            "k3s ({K3S_IMAGE}:{K3S_TAG}) did not start: {error}. It needs a privileged container and \
             registry access (it pulls its image, CoreDNS and pause); `--backend local` needs neither"
        )
    }
}

/// The API server as reached from this machine: always loopback (the serving certificate
/// covers 127.0.0.1, and the harness sends traffic nowhere else).
fn api_server_url(port: u16) -> String {
    format!("https://127.0.0.1:{port}")
}

/// Reads one text file out of the container (no bind mounts: works with any local engine).
async fn read_container_file(container_id: &str, path: &str) -> Result<String> {
    wait_until(
        Duration::from_secs(30),
        &format!("{path} in the k3s container"),
        move || async move { exec_checked(container_id, &["cat", path]).await.map(Some) },
    )
    .await
}

/// Replaces the `server:` of every cluster in a kubeconfig with `server_url`, keeping the rest
/// of the text as it is (so the result is also the file humans use), and checks the result.
fn rewrite_kubeconfig_server(yaml: &str, server_url: &str) -> Result<String> {
    let mut rewritten = String::with_capacity(yaml.len());
    let mut replaced = 0;
    for line in yaml.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        if line.trim_start().starts_with("server:") {
            let _ = writeln!(rewritten, "{indent}server: {server_url}");
            replaced += 1;
        } else {
            let _ = writeln!(rewritten, "{line}");
        }
    }
    if replaced == 0 {
        bail!("k3s kubeconfig has no `server:` entry to rewrite");
    }
    let parsed = Kubeconfig::from_yaml(&rewritten)
        .context("k3s kubeconfig does not parse after rewriting")?;
    let servers: Vec<Option<&str>> = parsed
        .clusters
        .iter()
        .map(|c| c.cluster.as_ref().and_then(|c| c.server.as_deref()))
        .collect();
    if servers.is_empty() || servers.iter().any(|server| *server != Some(server_url)) {
        bail!("k3s kubeconfig: rewriting the server gave {servers:?}, expected {server_url}");
    }
    Ok(rewritten)
}

/// An admin client from kubeconfig text.
async fn client_from_kubeconfig(yaml: &str) -> Result<kube::Client> {
    let kubeconfig = Kubeconfig::from_yaml(yaml).context("k3s kubeconfig does not parse")?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("k3s kubeconfig is not usable")?;
    kube::Client::try_from(config).context("cannot build a client for k3s")
}

/// A per-container path in the temporary directory.
fn temp_path(container_id: &str, extension: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "gomicro-conformance-k3s-{}.{extension}",
        short_id(container_id)
    ))
}

/// Writes a file readable only by its owner (it holds the cluster's admin key).
fn write_private_file(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn short_id(container_id: &str) -> &str {
    &container_id[..container_id.len().min(12)]
}

// ---------------------------------------------------------------------------------------------
// Readiness

/// Waits until a node is Ready and a CoreDNS pod is Ready.
async fn wait_until_ready(client: &kube::Client) -> Result<()> {
    eprintln!(
        "[k3s] waiting for the node and CoreDNS to be Ready (up to {}s) ...",
        READY_TIMEOUT.as_secs()
    );
    let deadline = Instant::now() + READY_TIMEOUT;
    let nodes = &Api::<Node>::all(client.clone());
    wait_until(READY_TIMEOUT, "the k3s node to be Ready", move || async move {
        node_ready(&nodes.list(&ListParams::default()).await?.items).map(Some)
    })
    .await?;
    let coredns = &Api::<Pod>::namespaced(client.clone(), "kube-system");
    let selector = &ListParams::default().labels("k8s-app=kube-dns");
    wait_until(
        deadline.saturating_duration_since(Instant::now()),
        "CoreDNS to be Ready",
        move || async move { pod_ready(&coredns.list(selector).await?.items).map(Some) },
    )
    .await
}

/// `Ok` when some node has condition Ready=True, else an error saying what is missing.
fn node_ready(nodes: &[Node]) -> Result<()> {
    if nodes.is_empty() {
        bail!("no node has registered yet");
    }
    let mut states = Vec::new();
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or("?");
        let conditions = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default();
        match conditions.iter().find(|c| c.type_ == "Ready") {
            Some(c) if c.status == "True" => return Ok(()),
            Some(c) => states.push(format!(
                "{name}: Ready={} ({})",
                c.status,
                c.message.as_deref().unwrap_or("")
            )),
            None => states.push(format!("{name}: no Ready condition yet")),
        }
    }
    bail!("{}", states.join("; "))
}

/// `Ok` when some pod is Running with condition Ready=True, else an error saying why not.
fn pod_ready(pods: &[Pod]) -> Result<()> {
    if pods.is_empty() {
        bail!("no pod created yet");
    }
    let mut states = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or("?");
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Unknown");
        let ready = status
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if phase == "Running" && ready {
            return Ok(());
        }
        let waiting: Vec<String> = status
            .and_then(|s| s.container_statuses.as_deref())
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .collect();
        states.push(format!(
            "{name}: phase {phase}, ready {ready}, waiting {waiting:?}"
        ));
    }
    bail!("{}", states.join("; "))
}

// ---------------------------------------------------------------------------------------------
// Images

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

async fn docker_has_image(name: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|status| status.success())
}

/// Saves `images` from the Docker engine, copies the archive into the container and imports it
/// into the kubelet's containerd namespace, then checks that containerd lists every image.
async fn import_images(container_id: &str, images: &[&str]) -> Result<()> {
    if images.is_empty() {
        return Ok(());
    }
    let archive = TempFile(temp_path(container_id, "images.tar"));
    let mut save: Vec<OsString> = vec!["save".into(), "-o".into(), archive.0.clone().into()];
    save.extend(images.iter().map(OsString::from));
    eprintln!("[k3s] saving {} image(s) ...", images.len());
    run_docker("save", save).await?;
    let size_mib = std::fs::metadata(&archive.0)
        .map(|m| m.len() >> 20)
        .unwrap_or(0);

    eprintln!(
        "[k3s] importing {} image(s) ({size_mib} MiB) into k3s containerd ...",
        images.len()
    );
    let target = format!("{container_id}:{IMAGE_ARCHIVE_IN_CONTAINER}");
    run_docker("cp", vec!["cp".into(), archive.0.clone().into(), target.into()]).await.context(
        "copying the image archive into the k3s container failed (do the docker CLI and DOCKER_HOST \
         point at the same engine?)",
    )?;
    let import = ctr_import_command(IMAGE_ARCHIVE_IN_CONTAINER);
    exec_checked(
        container_id,
        &import.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await?;
    if let Err(error) = exec_checked(container_id, &["rm", "-f", IMAGE_ARCHIVE_IN_CONTAINER]).await
    {
        tracing::warn!("could not remove the image archive in the k3s container: {error:#}");
    }

    let listed = exec_checked(container_id, &["ctr", "-n", "k8s.io", "images", "ls", "-q"]).await?;
    let listed: Vec<&str> = listed.lines().map(str::trim).collect();
    let missing: Vec<String> = images
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

/// Runs a command in the container through the engine's exec API; its stdout on success,
/// else an error quoting its output.
async fn exec_checked(container_id: &str, command: &[&str]) -> Result<String> {
    let rendered = command.join(" ");
    let docker = docker_client_instance()
        .await
        .context("k3s: no Docker client")?;
    let options = CreateExecOptions {
        cmd: Some(command.to_vec()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..Default::default()
    };
    let exec = docker
        .create_exec(container_id, options)
        .await
        .with_context(|| format!("k3s: cannot run `{rendered}` in the container"))?;
    let (mut stdout, mut all_output) = (String::new(), String::new());
    if let StartExecResults::Attached { mut output, .. } = docker.start_exec(&exec.id, None).await?
    {
        while let Some(chunk) = output.next().await {
            let chunk =
                chunk.with_context(|| format!("k3s: reading the output of `{rendered}` failed"))?;
            let text = String::from_utf8_lossy(chunk.as_ref());
            if matches!(chunk, LogOutput::StdOut { .. }) {
                stdout.push_str(&text);
            }
            all_output.push_str(&text);
        }
    }
    let docker = &docker;
    let exec_id = exec.id.as_str();
    let code = wait_until(
        Duration::from_secs(10),
        &format!("`{rendered}` to exit"),
        move || async move { Ok(docker.inspect_exec(exec_id).await?.exit_code) },
    )
    .await?;
    if code != 0 {
        bail!(
            "k3s: `{rendered}` failed (exit code {code}); output:\n{}",
            tail(&all_output, OUTPUT_TAIL_LINES)
        );
    }
    Ok(stdout)
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

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A file removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    /// Leaves the file in place and returns its path.
    fn keep(self) -> PathBuf {
        let this = std::mem::ManuallyDrop::new(self);
        this.0.clone()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K3S_KUBECONFIG: &str = "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Y2E=
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
";

    #[test]
    fn kubeconfig_server_points_at_the_mapped_port() {
        let url = api_server_url(32771);
        let rewritten = rewrite_kubeconfig_server(K3S_KUBECONFIG, &url).unwrap();
        assert!(
            rewritten.contains("    server: https://127.0.0.1:32771\n"),
            "{rewritten}"
        );
        assert!(!rewritten.contains("6443"), "{rewritten}");
        let parsed = Kubeconfig::from_yaml(&rewritten).unwrap();
        assert_eq!(
            parsed.clusters[0]
                .cluster
                .as_ref()
                .unwrap()
                .server
                .as_deref(),
            Some(url.as_str())
        );
        assert_eq!(parsed.current_context.as_deref(), Some("default"));
        // Everything but the server line is kept.
        assert_eq!(rewritten.replace("32771", "6443"), K3S_KUBECONFIG);
    }

    #[test]
    fn kubeconfig_without_server_is_rejected() {
        let text = K3S_KUBECONFIG.replace("    server: https://127.0.0.1:6443\n", "");
        let err = rewrite_kubeconfig_server(&text, "https://127.0.0.1:1").unwrap_err();
        assert!(format!("{err:#}").contains("no `server:`"), "{err:#}");
    }

    #[tokio::test]
    async fn no_docker_engine_is_detected_quickly() {
        // The answer must always come within the probe timeout (plus scheduling slack); with no
        // engine socket anywhere testcontainers looks (as on the development machine), it is no.
        let started = Instant::now();
        let answers = docker_engine_answers().await;
        let elapsed = started.elapsed();
        assert!(
            elapsed < ENGINE_PROBE_TIMEOUT + Duration::from_millis(500),
            "took {elapsed:?}"
        );
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        let socket_candidates = [
            PathBuf::from("/var/run/docker.sock"),
            home.join(".docker/run/docker.sock"),
        ];
        let no_engine_configured = std::env::var_os("DOCKER_HOST").is_none()
            && !home.join(".testcontainers.properties").exists()
            && !socket_candidates.iter().any(|socket| socket.exists());
        if no_engine_configured {
            assert!(!answers, "an engine answered without any socket configured");
        }
    }

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
    fn k3s_command_keeps_the_module_defaults_and_disables_addons() {
        let command = k3s_command();
        assert_eq!(command[..2], ["server", "--snapshotter=native"]);
        for addon in ["traefik", "metrics-server", "servicelb"] {
            assert!(
                command.contains(&format!("--disable={addon}")),
                "{command:?}"
            );
        }
        assert!(ctr_import_command("/x.tar").contains(&"--snapshotter=native".to_string()));
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
    fn readiness_explains_what_is_missing() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "k3s-0" },
            "status": { "conditions": [{ "type": "Ready", "status": "False", "message": "CNI not ready" }] }
        }))
        .unwrap();
        let err = node_ready(std::slice::from_ref(&node))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("k3s-0") && err.contains("CNI not ready"),
            "{err}"
        );
        assert!(node_ready(&[]).is_err());

        let mut ready = node;
        ready.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "True".into();
        node_ready(&[ready]).unwrap();
    }

    #[test]
    fn coredns_must_be_running_and_ready() {
        let pod = |phase: &str, ready: &str| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": { "name": "coredns-abc" },
                "status": {
                    "phase": phase,
                    "conditions": [{ "type": "Ready", "status": ready }],
                    "containerStatuses": [{
                        "name": "coredns", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                        "state": { "waiting": { "reason": "ContainerCreating" } }
                    }]
                }
            }))
            .unwrap()
        };
        let err = pod_ready(&[pod("Pending", "False")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Pending") && err.contains("ContainerCreating"),
            "{err}"
        );
        assert!(pod_ready(&[pod("Running", "False")]).is_err());
        assert!(pod_ready(&[]).is_err());
        pod_ready(&[pod("Pending", "False"), pod("Running", "True")]).unwrap();
    }

    #[test]
    fn start_and_shutdown_can_run_on_spawned_tasks() {
        fn assert_send<T: Send>(_: &T) {}
        fn assert_send_future<F: std::future::Future + Send>(_: impl FnOnce(K3sCluster) -> F) {}
        let images = BTreeMap::new();
        assert_send(&K3sCluster::start(&images));
        assert_send_future(|cluster| cluster.shutdown(false));
    }

    #[test]
    fn output_tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
