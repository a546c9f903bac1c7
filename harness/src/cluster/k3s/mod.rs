//! k3s in a Docker container (testcontainers-modules `K3s`) with the harness's image archives
//! imported into k3s' containerd: only what k3s needs beyond the shared backend code.
//!
//! Steps of [`K3sCluster::start`]: check that a Docker engine answers; start the container
//! (privileged, host user and cgroup namespaces, bundled add-ons we do not need disabled) with
//! the archives copied in; read the kubeconfig out of it ([`kubeconfig`]); wait for the node and
//! node ([`ready`]); `ctr import` the archives ([`images`]). Commands run through
//! testcontainers' exec, files go in through its copy-to.

mod images;
mod kubeconfig;
mod ready;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures::future::BoxFuture;
use local_cluster::versions::Release;
use testcontainers_modules::k3s::{K3s, KUBE_SECURE_PORT};
use testcontainers_modules::testcontainers::core::client::docker_client_instance;
use testcontainers_modules::testcontainers::core::{CgroupnsMode, CmdWaitFor, ExecCommand};
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt};

use self::kubeconfig::{
    TempFile, api_server_url, rewrite_kubeconfig_server, temp_path, write_private_file,
};
use super::provider::{Prepared, Provider};
use super::{Backend, BackendKind};
use crate::profile::{DockerBuild, Profile};
use crate::wait::wait_until;

/// The k3s image.
pub(crate) const K3S_IMAGE: &str = "rancher/k3s";
/// Environment variable overriding the tag of the version table (`ci/controlplane/versions.tsv`).
pub(crate) const K3S_TAG_ENV: &str = "HARNESS_K3S_TAG";

/// The k3s image to run for `release`: its tag in the version table, or `HARNESS_K3S_TAG`.
pub(crate) fn k3s_image(release: &Release) -> String {
    let tag = std::env::var(K3S_TAG_ENV)
        .ok()
        .filter(|tag| !tag.is_empty())
        .unwrap_or_else(|| release.k3s_tag.clone());
    format!("{K3S_IMAGE}:{tag}")
}
/// Label put on every k3s container of the harness, so CI can reap leftovers by label.
pub(crate) const CONTAINER_LABEL: (&str, &str) = ("dev.gomicro-conformance.backend", "k3s");

/// containerd snapshotter: `native` works wherever `/var/lib/rancher/k3s` lives (overlayfs
/// inside an overlayfs-backed container fails); the image import must unpack into the same one.
const SNAPSHOTTER: &str = "native";
/// Where k3s writes its admin kubeconfig inside the container.
const KUBECONFIG_IN_CONTAINER: &str = "/etc/rancher/k3s/k3s.yaml";
/// Where the image archives are copied (the image's data volume: real disk, not the overlay).
const ARCHIVE_DIR_IN_CONTAINER: &str = "/var/lib/rancher/k3s/harness-images";
/// Until the container logs "Node controller sync successful" (cold CI starts are slow).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(240);
/// Until the node is Ready after the container started.
const READY_TIMEOUT: Duration = Duration::from_secs(240);
/// The engine check must stay quick: `auto` runs it on every start.
const ENGINE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Output lines of a failed command quoted in its error.
const OUTPUT_TAIL_LINES: usize = 40;
/// Environment switch: also build the profile's Docker images and import them as archives.
const DOCKER_BUILD_ENV: &str = "HARNESS_K3S_DOCKER_BUILD";
/// Environment switch (with the Docker build): reuse images already in the Docker engine.
const SKIP_BUILD_ENV: &str = "HARNESS_SKIP_IMAGE_BUILD";

/// Whether a Docker engine answers (the same engine testcontainers would start k3s on),
/// within about two seconds.
pub(crate) async fn docker_engine_answers() -> bool {
    let ping = async { docker_client_instance().await.ok()?.ping().await.ok() };
    matches!(
        tokio::time::timeout(ENGINE_PROBE_TIMEOUT, ping).await,
        Ok(Some(_))
    )
}

/// Fails with what to do when no Docker engine answers (k3s runs in one).
pub(crate) async fn require_docker_engine() -> Result<()> {
    if !docker_engine_answers().await {
        bail!(
            "the k3s backend needs a Docker engine, and none answered within {ENGINE_PROBE_TIMEOUT:?} \
             (DOCKER_HOST or /var/run/docker.sock); start Docker, or use `--backend local`, which \
             needs no Docker"
        );
    }
    Ok(())
}

/// Why `auto` cannot use k3s here, or `None` when it can: a Docker engine answers and already
/// holds the pinned k3s image. `auto` never pulls (a pull would reach a registry; on a closed
/// machine it would look up an outside name): `--backend k3s` pulls when the image is missing.
pub(crate) async fn unavailable_reason(release: &Release) -> Option<String> {
    if !docker_engine_answers().await {
        return Some(format!(
            "no Docker engine answered within {ENGINE_PROBE_TIMEOUT:?} (DOCKER_HOST or /var/run/docker.sock)"
        ));
    }
    let image = k3s_image(release);
    if images::docker_has_image(&image).await {
        return None;
    }
    // On a CI runner (`CI` set, as GitHub Actions sets it) a Docker engine with registry access
    // is the norm: pull the pinned image once rather than fall back to a backend needing root.
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        eprintln!("[harness] backend auto: CI is set and Docker answers: pulling {image} ...");
        match images::docker_pull(&image).await {
            Ok(()) => return None,
            Err(error) => {
                return Some(format!("pulling {image} failed: {error:#}"));
            }
        }
    }
    Some(format!(
        "the Docker engine does not hold {image}; `docker pull {image}` (or `--backend k3s`, which pulls it) makes auto choose k3s"
    ))
}

/// A running k3s container with the profile's images imported.
pub(crate) struct K3sCluster {
    container: ContainerAsync<K3s>,
    /// The image it runs (`rancher/k3s:<tag>`).
    image: String,
    /// The rewritten admin kubeconfig, written for humans (`KUBECONFIG=... kubectl ...`).
    kubeconfig: TempFile,
}

impl K3sCluster {
    /// Starts k3s with `archives` (OCI or `docker save` archives; with
    /// `HARNESS_K3S_DOCKER_BUILD=1` the `docker_builds` are built and saved as archives too)
    /// copied in, imports them, waits until the node is Ready, and returns an
    /// admin client. `expected` names the images of `archives`, which containerd must list
    /// afterwards.
    pub(crate) async fn start(
        image: String,
        archives: &[PathBuf],
        docker_builds: &BTreeMap<String, DockerBuild>,
        expected: &[String],
    ) -> Result<(K3sCluster, kube::Client)> {
        require_docker_engine().await?;
        let (mut archives, mut expected) = (archives.to_vec(), expected.to_vec());
        if std::env::var_os(DOCKER_BUILD_ENV).is_some_and(|v| v == "1") {
            let dir = std::env::temp_dir().join("gomicro-conformance-k3s-images");
            archives.extend(images::docker_archives(docker_builds, &dir).await?);
            expected.extend(docker_builds.keys().cloned());
        }
        let (cluster, client) = start_ready_cluster(image, &archives).await?;
        eprintln!("[k3s] importing {} image archive(s) ...", archives.len());
        images::import_archives(&cluster.container, archives.len(), &expected).await?;
        Ok((cluster, client))
    }

    /// Removes the container, or with `keep` leaves it running and prints how to reach and
    /// remove it.
    async fn stop(self, keep: bool) -> Result<()> {
        let K3sCluster {
            container,
            image,
            kubeconfig,
        } = self;
        let id = container.id().to_string();
        if keep {
            let kubeconfig = kubeconfig.keep();
            eprintln!(
                "[k3s] keeping container {id} ({image}); reach it with\n  \
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

/// The k3s backend: k3s in a container of a Docker engine.
pub(crate) struct K3sProvider;

impl Provider for K3sProvider {
    fn prepare<'a>(
        &'a self,
        profile: &'a Profile,
        harness_exe: &'a Path,
    ) -> BoxFuture<'a, Result<Prepared>> {
        Box::pin(async move {
            // Before any image is built: without an engine nothing else is worth doing.
            require_docker_engine().await?;
            let archives = crate::images::local_archives(profile, harness_exe)?;
            let expected: Vec<String> = profile
                .images
                .iter()
                .filter(|(_, image)| image.local.is_some() || image.archive.is_some())
                .map(|(name, _)| name.clone())
                .chain([crate::images::HARNESS_POD_IMAGE.to_string()])
                .collect();
            let docker_builds = crate::images::docker_builds(profile);
            let image = k3s_image(profile.kubernetes_release());
            Ok(Prepared {
                kind: BackendKind::K3s,
                kubernetes_minor: local_cluster::versions::minor_of(
                    image.rsplit(':').next().unwrap_or_default(),
                ),
                start: Box::new(move |_keep| {
                    Box::pin(async move {
                        let (k3s, client) =
                            K3sCluster::start(image, &archives, &docker_builds, &expected).await?;
                        Ok((client, Box::new(k3s) as Box<dyn Backend>))
                    })
                }),
            })
        })
    }
}

impl Backend for K3sCluster {
    fn shutdown(self: Box<Self>, keep: bool) -> BoxFuture<'static, Result<()>> {
        Box::pin(self.stop(keep))
    }
}

/// The k3s server command: the module's default (`server --snapshotter=native`), every bundled
/// add-on disabled (the services reach the API server by its Service IP and each other by pod
/// IP: no DNS is needed), and the harness's own pod image as the sandbox image, imported with
/// the other archives, so k3s pulls nothing from a registry.
fn k3s_command() -> Vec<String> {
    [
        "server".to_string(),
        format!("--snapshotter={SNAPSHOTTER}"),
        "--disable=traefik".to_string(),
        "--disable=metrics-server".to_string(),
        "--disable=servicelb".to_string(),
        "--disable=local-storage".to_string(),
        "--disable=coredns".to_string(),
        format!("--pause-image={}", crate::images::HARNESS_POD_IMAGE),
    ]
    .into()
}

/// Starts the container with `archives` copied in, builds a client and waits until the
/// cluster can run pods.
async fn start_ready_cluster(
    image: String,
    archives: &[PathBuf],
) -> Result<(K3sCluster, kube::Client)> {
    eprintln!(
        "[k3s] starting {image} (up to {}s) ...",
        STARTUP_TIMEOUT.as_secs()
    );
    let started = Instant::now();
    let (name, tag) = image.rsplit_once(':').expect("k3s_image has a tag");
    let mut request = K3s::default().with_name(name).with_tag(tag);
    for (index, archive) in archives.iter().enumerate() {
        request = request.with_copy_to(images::archive_in_container(index), archive.clone());
    }
    let container = request
        .with_cmd(k3s_command())
        .with_privileged(true)
        .with_userns_mode("host")
        .with_cgroupns_mode(CgroupnsMode::Host)
        .with_label(CONTAINER_LABEL.0, CONTAINER_LABEL.1)
        .with_startup_timeout(STARTUP_TIMEOUT)
        .start()
        .await
        .map_err(|error| explain_start_error(&image, &error.to_string()))?;
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
    let original = read_container_file(&container, KUBECONFIG_IN_CONTAINER).await?;
    let kubeconfig_yaml = rewrite_kubeconfig_server(&original, &api_server_url(api_port))?;
    let kubeconfig = TempFile(temp_path(&id, "kubeconfig"));
    write_private_file(&kubeconfig.0, &kubeconfig_yaml)?;
    eprintln!("[k3s] kubeconfig: {}", kubeconfig.0.display());
    let client = local_cluster::client_from_kubeconfig(&kubeconfig.0).await?;
    let cluster = K3sCluster {
        container,
        image,
        kubeconfig,
    };

    ready::wait_until_ready(&client).await?;
    eprintln!("[k3s] cluster ready after {}s", started.elapsed().as_secs());
    Ok((cluster, client))
}

/// Turns a failed start into an error that says what to do.
fn explain_start_error(image: &str, error: &str) -> anyhow::Error {
    let lowered = error.to_lowercase();
    if lowered.contains("privileged") || lowered.contains("authorization denied") {
        anyhow!(
            "the Docker engine refused a privileged container, which k3s needs ({error}); use a \
             Docker engine that allows `--privileged`, or `--backend local`"
        )
    } else {
        anyhow!(
            "k3s ({image}) did not start: {error}. It needs a privileged container and \
             access to the registry holding its own image; `--backend local` needs neither"
        )
    }
}

/// Reads one text file out of the container (no bind mounts: works with any local engine).
async fn read_container_file(container: &ContainerAsync<K3s>, path: &str) -> Result<String> {
    wait_until(
        Duration::from_secs(30),
        &format!("{path} in the k3s container"),
        move || async move { exec(container, &["cat", path]).await.map(Some) },
    )
    .await
}

/// Runs a command in the container (testcontainers' exec) until it exits; its stdout on
/// success, else an error quoting its output.
async fn exec(container: &ContainerAsync<K3s>, command: &[&str]) -> Result<String> {
    let rendered = command.join(" ");
    let mut result = container
        .exec(
            ExecCommand::new(command.iter().copied()).with_cmd_ready_condition(CmdWaitFor::exit()),
        )
        .await
        .with_context(|| format!("k3s: cannot run `{rendered}` in the container"))?;
    let stdout = String::from_utf8_lossy(&result.stdout_to_vec().await?).into_owned();
    let stderr = String::from_utf8_lossy(&result.stderr_to_vec().await?).into_owned();
    // `exit_code` borrows the (non-Sync) result across an await: off the async task it goes.
    let runtime = tokio::runtime::Handle::current();
    let code = tokio::task::spawn_blocking(move || runtime.block_on(result.exit_code()))
        .await
        .context("k3s: the exit-code task panicked")??;
    match code {
        Some(0) => Ok(stdout),
        code => bail!(
            "k3s: `{rendered}` failed (exit code {code:?}); output:\n{}",
            tail(&format!("{stdout}{stderr}"), OUTPUT_TAIL_LINES)
        ),
    }
}

pub(super) fn short_id(container_id: &str) -> &str {
    &container_id[..container_id.len().min(12)]
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn k3s_command_keeps_the_module_defaults_and_disables_addons() {
        let command = k3s_command();
        assert_eq!(command[..2], ["server", "--snapshotter=native"]);
        for addon in ["traefik", "metrics-server", "servicelb", "coredns"] {
            assert!(
                command.contains(&format!("--disable={addon}")),
                "{command:?}"
            );
        }
        assert!(
            command.contains(&format!(
                "--pause-image={}",
                crate::images::HARNESS_POD_IMAGE
            )),
            "{command:?}"
        );
    }

    #[test]
    fn start_and_shutdown_can_run_on_spawned_tasks() {
        fn assert_send<T: Send>(_: &T) {}
        fn assert_send_future<F: std::future::Future + Send>(_: impl FnOnce(K3sCluster) -> F) {}
        let builds = BTreeMap::new();
        assert_send(&K3sCluster::start(String::new(), &[], &builds, &[]));
        assert_send_future(|cluster| cluster.stop(false));
    }

    #[test]
    fn output_tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
