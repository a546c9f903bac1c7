//! End-to-end conformance suite against the reference services on a real cluster.
//!
//! One cluster serves the whole run: the first test starts a `harness up` daemon (local
//! backend) or uses KUBECONFIG (`HARNESS_E2E_BACKEND=kubeconfig`), deploys the reference
//! profile, and later tests (other processes under nextest) attach to it. `ci/test.sh` stops
//! it afterwards (`harness down`). Each test runs one named case and snapshots its
//! normalised observations. The cluster also provides the images of the other profiles the
//! suite deploys (the unsorted third-party manifest set), since a local node's image map is
//! fixed when it starts. A test that fails (the shared set-up included) leaves a diagnostics
//! bundle (see `bundle`) and its failure message says where.

#[path = "e2e/bundle.rs"]
mod bundle;

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use harness::cases::{self, Outcome};
use harness::cluster::BackendKind;
use harness::cluster::local::default_state_dir;
use harness::context::Ctx;
use harness::deploy::{self, REGISTRATION_DEADLINE};
use harness::images::workspace_root;
use harness::profile::{Profile, reference_profile_path};
use harness::run::{DEPLOY_DEADLINE, start_cluster};
use rstest::rstest;

struct Suite {
    runtime: tokio::runtime::Runtime,
    setup: Result<Ctx, SetupFailure>,
}

/// Why the shared cluster is not usable, and its client if it came up.
struct SetupFailure {
    error: String,
    client: Option<kube::Client>,
}

fn backend() -> BackendKind {
    match std::env::var("HARNESS_E2E_BACKEND").as_deref() {
        Ok("kubeconfig") => BackendKind::Kubeconfig,
        Ok("local") | Err(_) => BackendKind::Local,
        Ok(other) => panic!(
            "HARNESS_E2E_BACKEND={other} is not supported by the e2e suite (local or kubeconfig)"
        ),
    }
}

/// The shared cluster with the reference services deployed (once per test process).
fn suite() -> &'static Suite {
    static SUITE: OnceLock<Suite> = OnceLock::new();
    SUITE.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        let setup = runtime.block_on(set_up());
        Suite { runtime, setup }
    })
}

async fn set_up() -> Result<Ctx, SetupFailure> {
    let failed = |error: anyhow::Error, client| SetupFailure {
        error: format!("cannot bring up the e2e cluster: {error:#}"),
        client,
    };
    let load = |path: std::path::PathBuf| Profile::load(&path).map_err(|e| failed(e, None));
    let profile = load(reference_profile_path())?;
    let harness_exe = Path::new(env!("CARGO_BIN_EXE_harness"));
    let mut with_all_images = profile.clone();
    with_all_images
        .images
        .extend(load(unsorted_profile_path())?.images);
    let cluster = start_cluster(backend(), &with_all_images, true, harness_exe)
        .await
        .map_err(|e| failed(e, None))?;
    let client = cluster.client();
    deploy::deploy(&client, &profile, DEPLOY_DEADLINE)
        .await
        .map_err(|e| failed(e, Some(client.clone())))?;
    let mut ctx = Ctx::new(cluster, profile).map_err(|e| failed(e, Some(client.clone())))?;
    // Per test process: a container exit or restart no case caused fails the case.
    ctx.watch_stability("before the first case")
        .await
        .map_err(|e| failed(e, Some(client)))?;
    Ok(ctx)
}

/// Runs `test` on the shared cluster; when it fails (or the set-up did), writes the
/// diagnostics bundle of `namespace` and fails with the original message and the bundle's path.
fn with_diagnostics(namespace: &str, test: impl FnOnce(&Ctx)) {
    bundle::forget_earlier_runs();
    let suite = suite();
    let (failure, client, redactor) = match &suite.setup {
        Ok(ctx) => match catch_unwind(AssertUnwindSafe(|| test(ctx))) {
            Ok(()) => return,
            Err(panic) => (
                panic_message(panic.as_ref()),
                Some(ctx.client()),
                ctx.secrets.redactor(),
            ),
        },
        Err(setup) => (
            setup.error.clone(),
            setup.client.clone(),
            reference_secrets().redactor(),
        ),
    };
    let dir = bundle::dir();
    let cluster = client.as_ref().map(|client| (client, namespace));
    let local_state = (backend() == BackendKind::Local).then(default_state_dir);
    match suite.runtime.block_on(bundle::write(
        &dir,
        &failure,
        cluster,
        local_state.as_deref(),
        redactor,
    )) {
        Ok(()) => panic!("{failure}\ndiagnostics bundle: {}", dir.display()),
        Err(error) => panic!(
            "{failure}\nno diagnostics bundle ({}): {error:#}",
            dir.display()
        ),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "the test panicked with a non-text payload".into())
}

/// What the reference profile holds secret (for a bundle written without a context).
fn reference_secrets() -> harness::secrets::KnownSecrets {
    Profile::load(&reference_profile_path())
        .map(|profile| harness::secrets::KnownSecrets::for_profile(&profile))
        .unwrap_or_else(|e| panic!("cannot read the reference profile: {e:#}"))
}

fn reference_namespace() -> String {
    Profile::load(&reference_profile_path())
        .map(|p| p.namespace)
        .unwrap_or_else(|e| panic!("cannot read the reference profile: {e:#}"))
}

fn unsorted_profile_path() -> std::path::PathBuf {
    workspace_root().join("fixtures/profiles/unsorted-manifests.yaml")
}

/// Cases change the shared deployment (scaling, ConfigMaps), so they never overlap.
static SERIAL: Mutex<()> = Mutex::new(());

#[rstest]
#[case::reg_001("REG-001")]
#[case::reg_002("REG-002")]
#[case::health_001("HEALTH-001")]
#[case::health_002("HEALTH-002")]
#[case::login_001("LOGIN-001")]
#[case::login_002("LOGIN-002")]
#[case::login_003("LOGIN-003")]
#[case::login_004("LOGIN-004")]
#[case::login_005("LOGIN-005")]
#[case::rbac_001("RBAC-001")]
#[case::rbac_002("RBAC-002")]
#[case::res_001("RES-001")]
#[case::res_002("RES-002")]
#[case::res_003("RES-003")]
#[case::res_004("RES-004")]
#[case::disc_001("DISC-001")]
#[case::cfg_001("CFG-001")]
#[case::cfg_002("CFG-002")]
#[case::cfg_003("CFG-003")]
#[case::cfg_004("CFG-004")]
#[case::fault_001("FAULT-001")]
#[case::fault_002("FAULT-002")]
#[case::fault_003("FAULT-003")]
#[case::fault_004("FAULT-004")]
#[case::fault_005("FAULT-005")]
#[case::bad_001("BAD-001")]
#[case::bad_002("BAD-002")]
#[case::bad_003("BAD-003")]
#[case::bad_004("BAD-004")]
#[case::bad_005("BAD-005")]
#[case::bad_006("BAD-006")]
#[case::bad_007("BAD-007")]
#[case::sec_001("SEC-001")]
#[case::sec_002("SEC-002")]
#[case::bad_008("BAD-008")]
fn conformance(#[case] id: &str) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let case = cases::by_id(id).unwrap_or_else(|| panic!("no case {id}"));
    with_diagnostics(&reference_namespace(), |ctx| {
        let result = suite().runtime.block_on(cases::run_case(ctx, &case));
        assert_eq!(
            result.outcome,
            Outcome::Passed,
            "{id} {}: {}",
            case.summary,
            result.reason.unwrap_or_default()
        );
        insta::assert_json_snapshot!(id, result.observations);
    });
}

/// Takes the suite's serial lock for a test whose fixture `what` exists on the local backend only.
fn serial_on_local_backend(what: &str) -> std::sync::MutexGuard<'static, ()> {
    let serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    assert_eq!(
        backend(),
        BackendKind::Local,
        "{what}: only the local backend has it"
    );
    serial
}

/// A third party's manifest set as written (file names sorting before `namespace.yaml`,
/// multi-document files, registry images pulled `Always`, `./binary` from the image's
/// working directory) deploys and its services register; then it is removed again.
#[test]
fn unsorted_third_party_manifests_deploy_and_register() {
    let _serial = serial_on_local_backend("the unsorted fixture's images");
    let profile = Profile::load(&unsorted_profile_path()).unwrap();
    // The bundle is written before the set is removed, so it still shows the set's pods.
    let checked = catch_unwind(AssertUnwindSafe(|| {
        with_diagnostics(&profile.namespace, |ctx| {
            let client = ctx.client();
            let registered = suite()
                .runtime
                .block_on(deploy_and_check(&client, &profile))
                .unwrap_or_else(|e| panic!("the unsorted manifest set did not deploy: {e:#}"));
            assert_eq!(
                registered,
                [
                    ("go-micro.token-srv".to_string(), 1),
                    ("go-micro.user-srv".to_string(), 1),
                    ("go-micro.admin-srv".to_string(), 1)
                ]
            );
        })
    }));
    if let Ok(ctx) = &suite().setup {
        suite()
            .runtime
            .block_on(deploy::remove(&ctx.client(), &profile, DEPLOY_DEADLINE))
            .unwrap_or_else(|e| panic!("removing the unsorted manifest set: {e:#}"));
    }
    if let Err(panic) = checked {
        resume_unwind(panic);
    }
}

/// Deploys `profile`, waits for its services to register and checks their pods run the
/// provided images; returns each service's name and pod count.
async fn deploy_and_check(
    client: &kube::Client,
    profile: &Profile,
) -> anyhow::Result<Vec<(String, usize)>> {
    deploy::deploy(client, profile, DEPLOY_DEADLINE).await?;
    let mut registered = Vec::new();
    for (_, service) in profile.all_services() {
        harness::pods::wait_registered(client, profile, service, REGISTRATION_DEADLINE).await?;
        let pods = harness::pods::ready_pods(client, &profile.namespace, service).await?;
        for pod in &pods {
            let container = &pod.spec.as_ref().unwrap().containers[0];
            anyhow::ensure!(
                profile
                    .images
                    .contains_key(container.image.as_deref().unwrap_or("")),
                "pod {:?} runs {:?}, not the provided image",
                pod.metadata.name,
                container.image
            );
            anyhow::ensure!(
                container.image_pull_policy.as_deref() == Some("IfNotPresent"),
                "pull policy {:?}",
                container.image_pull_policy
            );
        }
        registered.push((service.name.clone(), pods.len()));
    }
    Ok(registered)
}

/// A fixture implementation that logs its request bodies (fixtures/profiles/broken/leaky-admin.yaml)
/// fails SEC-001 and SEC-002 with the place named, and nothing its run wrote holds a secret.
/// It runs `harness run` as a user does, on its own local cluster, so the shared cluster is
/// stopped first (the next test starts it again).
#[test]
fn leaky_admin_fails_secret_hygiene_and_its_reports_hold_no_secret() {
    let _serial = serial_on_local_backend("the leaky fixture's image");
    let reports = tempfile::tempdir().unwrap();
    run_fixture_failing(
        "leaky-admin.yaml",
        &["--feature", "secret-hygiene"],
        reports.path(),
    );
    let summary = std::fs::read_to_string(reports.path().join("summary.md")).unwrap();
    for id in ["SEC-001", "SEC-002"] {
        let row = summary
            .lines()
            .find(|l| l.contains(&format!("| {id} |")))
            .unwrap_or_else(|| panic!("{id} is not in the summary:\n{summary}"));
        assert!(row.contains("| **failed** |"), "{row}");
        assert!(
            row.contains("container admin-srv line ") && row.contains("the demo user's password"),
            "{id} does not name where the password is: {row}"
        );
    }
    let files = files_under(reports.path());
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("diagnostics/logs/admin-srv")),
        "no admin-srv log in the diagnostics: {files:?}"
    );
    let mut leaked_logs_redacted = false;
    for file in &files {
        let text = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
        for secret in [
            "123456",
            "some_api_key",
            "conformance-wrong-password-",
            "conformance-hygiene-",
        ] {
            assert!(
                !text.contains(secret),
                "{} holds {secret:?}",
                file.display()
            );
        }
        let jwts = harness::secrets::jwt_ranges(&text);
        assert!(
            jwts.is_empty(),
            "{} holds a JWT at {jwts:?}",
            file.display()
        );
        leaked_logs_redacted |= text.contains("\"password\":\"[redacted]\"");
    }
    assert!(
        leaked_logs_redacted,
        "the diagnostics hold no redacted request body, so the leak was not collected"
    );
}

/// Stops the shared cluster (the next test starts it again) and runs `harness run` as a user
/// does, on a local cluster of its own, with the broken fixture profile `name` and `args`;
/// the run must fail (exit 1).
fn run_fixture_failing(name: &str, args: &[&str], reports: &Path) {
    let harness = env!("CARGO_BIN_EXE_harness");
    let down = std::process::Command::new(harness)
        .arg("down")
        .output()
        .unwrap();
    assert!(down.status.success(), "harness down: {down:?}");
    let profile = workspace_root().join("fixtures/profiles/broken").join(name);
    let run = std::process::Command::new(harness)
        .args(["run", "--backend", "local"])
        .args(args)
        .arg("--profile")
        .arg(&profile)
        .arg("--report-dir")
        .arg(reports)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "a failed run exits 1: {stderr}");
}

/// A fixture whose user-srv exits 1 as soon as it has checked its first login's password
/// (fixtures/profiles/broken/crash-once.yaml) fails the case running then, and every report
/// names pod, container, exit code, reason and time; the YAML report and the diagnostics keep
/// the crashed container's log. The crashing case is CFG-004: it keeps logging in for seconds
/// after its first login (while user-srv restarts, then for its 3 s window), so the exit is
/// well inside it, never at its edge where only the runtime's timing would decide.
#[test]
fn a_crash_fails_the_running_case_and_is_named_with_its_previous_log() {
    let _serial = serial_on_local_backend("the crash-once fixture's image");
    let reports = tempfile::tempdir().unwrap();
    run_fixture_failing(
        "crash-once.yaml",
        &["--case", "REG-001", "--case", "CFG-004"],
        reports.path(),
    );
    let read = |name: &str| std::fs::read_to_string(reports.path().join(name)).unwrap();
    let summary = read("summary.md");
    let row = |id: &str| {
        summary
            .lines()
            .find(|l| l.contains(&format!("| {id} |")))
            .unwrap_or_else(|| panic!("{id} is not in the summary:\n{summary}"))
            .to_string()
    };
    assert!(row("REG-001").contains("| passed |"), "{summary}");
    let crashed = row("CFG-004");
    assert!(
        crashed.contains("| **failed** |")
            && crashed.contains("no case caused it: pod user-srv-")
            && crashed.contains("container user-srv exit code 1 (Error) at ")
            && crashed.contains("during CFG-004"),
        "{crashed}"
    );
    let stability = summary
        .lines()
        .find(|l| l.starts_with("Stability: "))
        .unwrap_or_else(|| panic!("no stability line:\n{summary}"));
    assert!(
        stability.contains("1 unexpected container exit(s) or restart(s): pod user-srv-"),
        "{stability}"
    );
    for file in ["conformance-report.yaml", "junit.xml"] {
        assert!(
            read(file).contains("container user-srv exit code 1 (Error) at "),
            "{file}"
        );
    }
    assert!(
        read("conformance-report.yaml").contains("crash-once: first login answered"),
        "the YAML report does not keep the crashed container's log"
    );
    // The crashed container's log: `.previous.log` once the kubelet has restarted it, else
    // (its restart back-off has not passed when the run ends) the current `.log`.
    let logs: Vec<String> = files_under(reports.path())
        .into_iter()
        .filter(|f| {
            let name = f.to_string_lossy();
            name.contains("/user-srv-")
                && (name.ends_with("_user-srv.previous.log") || name.ends_with("_user-srv.log"))
        })
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(
        logs.iter()
            .any(|log| log.contains("crash-once: first login answered")),
        "no log of user-srv in the diagnostics holds the crash: {logs:?}"
    );
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// A command-line tool the walkthrough runs: `$<env>` when set (ci/test.sh sets it), else
/// `name` on PATH. Missing is a failure with a clear message, never a skip.
fn tool(env: &str, name: &str) -> std::path::PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return path.into();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is needed by the article walkthrough test: set {env} or put {name} on PATH \
                 (ci/test.sh installs it, see ensure_{name} in ci/lib.sh)"
            )
        })
}

/// Runs a tool and returns its standard output, failing on a non-zero exit.
fn run_tool(program: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} {args:?} failed ({}): {stdout}{}",
        program.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The seed article's walkthrough, with the real curl and grpcurl against admin-srv's pod:
/// the HTTP and gRPC logins exactly as the article writes them (its curl sends JSON with
/// `Content-Type: application/json`), then `grpcurl list` and `describe`. It asserts what
/// CONTRACT.md §5 and §7 demand: the logins' replies and JWT, Login callable and described
/// through reflection with the contract's fields, health listed.
#[test]
fn article_walkthrough_with_curl_and_grpcurl() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let (curl, grpcurl) = (tool("CURL", "curl"), tool("GRPCURL", "grpcurl"));
    with_diagnostics(&reference_namespace(), |ctx| {
        let admin = &ctx.profile.services.admin;
        let (http, grpc) = suite()
            .runtime
            .block_on(async {
                let pod = ctx.ready_pods(admin).await?.remove(0);
                let http = ctx.pod_addr(&pod, admin.http_port.unwrap()).await?;
                let grpc = ctx.pod_addr(&pod, admin.grpc_port).await?;
                anyhow::Ok((http, grpc))
            })
            .unwrap();
        let check = |what: &str, output: &str| {
            let reply: harness::login::LoginReply = serde_json::from_str(output)
                .unwrap_or_else(|e| panic!("{what} printed no login reply ({e}): {output}"));
            harness::login::check_reply(ctx, &reply, &ctx.profile.expectations.api_key)
                .unwrap_or_else(|e| panic!("{what}: {e:#}"));
        };
        let url = format!("http://{http}/admin/v1/login");
        // The article's command; `-sS --noproxy '*'` only keep the output clean and the
        // environment's proxy out of the way.
        let article_body = "{\n  \"userName\": \"thangn\",\n  \"password\": \"123456\"\n}";
        check(
            "curl",
            &run_tool(
                &curl,
                &[
                    "-sS",
                    "--noproxy",
                    "*",
                    "-X",
                    "POST",
                    &url,
                    "-H",
                    "accept: application/json",
                    "-H",
                    "Content-Type: application/json",
                    "-d",
                    article_body,
                ],
            ),
        );
        let target = grpc.to_string();
        check(
            "grpcurl Login",
            &run_tool(
                &grpcurl,
                &[
                    "-plaintext",
                    "-d",
                    r#"{"userName":"thangn","password":"123456"}"#,
                    &target,
                    "admin_srv.v1.AuthenticationService/Login",
                ],
            ),
        );
        let listed = run_tool(&grpcurl, &["-plaintext", &target, "list"]);
        for service in [
            "admin_srv.v1.AuthenticationService",
            "grpc.health.v1.Health",
        ] {
            assert!(
                listed.lines().any(|l| l.trim() == service),
                "grpcurl list does not show {service}: {listed}"
            );
        }
        let describe =
            |symbol: &str| run_tool(&grpcurl, &["-plaintext", &target, "describe", symbol]);
        let service = describe("admin_srv.v1.AuthenticationService");
        assert!(
            service.contains(
                "rpc Login ( .admin_srv.v1.LoginRequest ) returns ( .admin_srv.v1.LoginReply )"
            ),
            "{service}"
        );
        let request = describe("admin_srv.v1.LoginRequest");
        for field in ["string userName = 1;", "string password = 2;"] {
            assert!(request.contains(field), "{request}");
        }
        let reply = describe("admin_srv.v1.LoginReply");
        for field in [
            "string id = 1;",
            "string userName = 2;",
            "string token = 3;",
        ] {
            assert!(reply.contains(field), "{reply}");
        }
    });
}

#[test]
fn every_case_has_an_e2e_test() {
    let source = include_str!("e2e.rs");
    for case in cases::all() {
        assert!(
            source.contains(&format!("(\"{}\")", case.id)),
            "case {} has no e2e test",
            case.id
        );
    }
}
