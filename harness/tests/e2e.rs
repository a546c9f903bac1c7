//! End-to-end tests on the shared cluster beyond the conformance cases (those are generated, one
//! test per case, by the `conformance` target): a third party's unsorted manifest set, a case
//! past its timeout, a selection, and the seed article's walkthrough with the real curl and
//! grpcurl. Fixture implementations with images of their own (leaking secrets, crashing) are
//! e2e_fixtures', on clusters of their own.
//!
//! They share the conformance target's cluster (a `harness up` daemon, or KUBECONFIG with
//! `HARNESS_E2E_BACKEND=kubeconfig`) through [`harness::testing::Suite`] or `harness run
//! --keep-cluster`. `ci/test.sh` stops it afterwards (`harness down`). A failed test leaves a
//! diagnostics bundle and its failure message says where.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::Path;
use std::sync::OnceLock;

use harness::context::Ctx;
use harness::deploy;
use harness::images::workspace_root;
use harness::profile::{Profile, reference_profile_path};
use harness::testing::Suite;

mod support;

/// The shared cluster with the reference services deployed (once per test process).
fn suite() -> &'static Suite {
    static SUITE: OnceLock<Suite> = OnceLock::new();
    SUITE.get_or_init(|| {
        Suite::set_up(
            &[reference_profile_path(), unsorted_profile_path()],
            Some(Path::new(env!("CARGO_BIN_EXE_harness"))),
        )
    })
}

/// Runs `test` on the shared cluster and fails with its message and diagnostics bundle.
fn with_diagnostics(namespace: &str, test: impl FnOnce(&Ctx)) {
    if let Err(message) = suite().with_diagnostics(namespace, test) {
        panic!("{message}");
    }
}

fn reference_namespace() -> String {
    Profile::load(&reference_profile_path())
        .map(|p| p.namespace)
        .unwrap_or_else(|e| panic!("cannot read the reference profile: {e:#}"))
}

fn unsorted_profile_path() -> std::path::PathBuf {
    workspace_root().join("fixtures/profiles/unsorted-manifests.yaml")
}

/// A third party's manifest set as written (file names sorting before `namespace.yaml`,
/// multi-document files, registry images pulled `Always`, `./binary` from the image's
/// working directory) deploys and its services register; then it is removed again.
#[test]
fn unsorted_third_party_manifests_deploy_and_register() {
    support::require_local_backend("the unsorted fixture's images");
    let profile = Profile::load(&unsorted_profile_path()).unwrap();
    // The bundle is written before the set is removed, so it still shows the set's pods.
    let checked = catch_unwind(AssertUnwindSafe(|| {
        with_diagnostics(&profile.namespace, |ctx| {
            let client = ctx.client();
            let registered = suite()
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
    if let Ok(ctx) = suite().ctx() {
        suite()
            .block_on(deploy::remove(&ctx.client(), &profile))
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
    deploy::deploy(client, profile).await?;
    let mut registered = Vec::new();
    for (_, service) in profile.all_services() {
        harness::pods::wait_registered(client, profile, service, profile.timeouts.registration)
            .await?;
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
    let (curl, grpcurl) = (tool("CURL", "curl"), tool("GRPCURL", "grpcurl"));
    with_diagnostics(&reference_namespace(), |ctx| {
        let admin = &ctx.profile.services.admin;
        let (http, grpc) = suite()
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

/// A case forced past its timeout still runs its restores (fixtures/profiles/broken/
/// case-timeout.yaml: the reference services, 2 s per case): RES-002 is cut off while it scales
/// user-srv, its clean-up scales user-srv back to one replica, and RES-003, which needs exactly
/// one, passes. `harness run --keep-cluster` on the shared cluster (the images are the
/// reference's).
#[test]
fn a_case_past_its_timeout_is_cleaned_up_and_the_next_case_passes() {
    support::require_local_backend("the shared local cluster");
    // Up with every image of the suite (as the other tests need it), not only the reference's.
    suite().ctx().unwrap_or_else(|e| panic!("{e}"));
    let reports = tempfile::tempdir().unwrap();
    let profile = workspace_root().join("fixtures/profiles/broken/case-timeout.yaml");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["run", "--backend", "local", "--keep-cluster"])
        .args(["--case", "RES-002", "--case", "RES-003", "--profile"])
        .arg(&profile)
        .arg("--report-dir")
        .arg(reports.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "a failed run exits 1: {stderr}");
    let summary = std::fs::read_to_string(reports.path().join("summary.md")).unwrap();
    let row = |id: &str| support::summary_row(&summary, id);
    let cut = row("RES-002");
    assert!(
        cut.contains("| **failed** |") && cut.contains("did not finish within 2s"),
        "{cut}"
    );
    assert!(row("RES-003").contains("| passed |"), "{summary}");
}

/// `harness run` with a selection on the shared cluster: one passing case succeeds (exit 0) and
/// claims no level; with `--require-level core` the same run exits 1 saying why.
#[test]
fn a_passing_selection_succeeds_and_claims_no_level_unless_core_is_required() {
    support::require_local_backend("the shared local cluster");
    // Up with every image of the suite (as the other tests need it), not only the reference's.
    suite().ctx().unwrap_or_else(|e| panic!("{e}"));
    for (extra, code) in [(&[][..], 0), (&["--require-level", "core"][..], 1)] {
        let reports = tempfile::tempdir().unwrap();
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
            .args([
                "run",
                "--backend",
                "local",
                "--keep-cluster",
                "--case",
                "LOGIN-001",
            ])
            .args(extra)
            .arg("--report-dir")
            .arg(reports.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(code), "{extra:?}: {stderr}");
        let summary = std::fs::read_to_string(reports.path().join("summary.md")).unwrap();
        let first = summary.lines().next().unwrap();
        assert!(
            first.contains("1 case(s) ran: 1 passed, 0 failed")
                && first.contains("conformance level: none"),
            "{first}"
        );
        assert!(
            summary.contains("Not selected (no verdict, no level claimed from them): REG-001"),
            "{summary}"
        );
        if code == 1 {
            assert!(
                first.starts_with("## Conformance of reference-services 0.1.0: Failure: the required level Core was not reached"),
                "{first}"
            );
        } else {
            assert!(first.contains(": Success: "), "{first}");
        }
    }
}
