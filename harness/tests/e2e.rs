//! End-to-end conformance suite against the reference services on a real cluster.
//!
//! One cluster serves the whole run: the first test starts a `harness up` daemon (local
//! backend) or uses KUBECONFIG (`HARNESS_E2E_BACKEND=kubeconfig`), deploys the reference
//! profile, and later tests (other processes under nextest) attach to it. `ci/test.sh` stops
//! it afterwards (`harness down`). Each test runs one named case and snapshots its
//! normalised observations. The cluster also provides the images of the other profiles the
//! suite deploys (the unsorted third-party manifest set), since a local node's image map is
//! fixed when it starts.

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use harness::cases::{self, Outcome};
use harness::cluster::BackendKind;
use harness::context::Ctx;
use harness::deploy::{self, REGISTRATION_DEADLINE};
use harness::images::workspace_root;
use harness::profile::{Profile, reference_profile_path};
use harness::run::{DEPLOY_DEADLINE, start_cluster};
use rstest::rstest;

struct Suite {
    runtime: tokio::runtime::Runtime,
    ctx: Ctx,
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
        let ctx = runtime
            .block_on(async {
                let profile = Profile::load(&reference_profile_path())?;
                let harness_exe = Path::new(env!("CARGO_BIN_EXE_harness"));
                let mut with_all_images = profile.clone();
                with_all_images
                    .images
                    .extend(Profile::load(&unsorted_profile_path())?.images);
                let cluster = start_cluster(backend(), &with_all_images, true, harness_exe).await?;
                deploy::deploy(&cluster.client(), &profile, DEPLOY_DEADLINE).await?;
                Ctx::new(cluster, profile)
            })
            .unwrap_or_else(|error| panic!("cannot bring up the e2e cluster: {error:#}"));
        Suite { runtime, ctx }
    })
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
fn conformance(#[case] id: &str) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let case = cases::by_id(id).unwrap_or_else(|| panic!("no case {id}"));
    let suite = suite();
    let result = suite.runtime.block_on(cases::run_case(&suite.ctx, &case));
    assert_eq!(
        result.outcome,
        Outcome::Passed,
        "{id} {}: {}",
        case.summary,
        result.reason.unwrap_or_default()
    );
    insta::assert_json_snapshot!(id, result.observations);
}

/// A third party's manifest set as written (file names sorting before `namespace.yaml`,
/// multi-document files, registry images pulled `Always`, `./binary` from the image's
/// working directory) deploys and its services register; then it is removed again.
#[test]
fn unsorted_third_party_manifests_deploy_and_register() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    assert_eq!(
        backend(),
        BackendKind::Local,
        "the unsorted fixture's images exist on the local backend only"
    );
    let suite = suite();
    let profile = Profile::load(&unsorted_profile_path()).unwrap();
    let client = suite.ctx.client();
    let outcome = suite.runtime.block_on(async {
        let checked = async {
            deploy::deploy(&client, &profile, DEPLOY_DEADLINE).await?;
            let mut registered = Vec::new();
            for (_, service) in profile.all_services() {
                harness::pods::wait_registered(&client, &profile, service, REGISTRATION_DEADLINE)
                    .await?;
                let pods = harness::pods::ready_pods(&client, &profile.namespace, service).await?;
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
            anyhow::Ok(registered)
        };
        let checked = checked.await;
        let removed = deploy::remove(&client, &profile, DEPLOY_DEADLINE).await;
        (checked, removed)
    });
    let registered = outcome
        .0
        .unwrap_or_else(|e| panic!("the unsorted manifest set did not deploy: {e:#}"));
    outcome
        .1
        .unwrap_or_else(|e| panic!("removing the unsorted manifest set: {e:#}"));
    assert_eq!(
        registered,
        [
            ("go-micro.token-srv".to_string(), 1),
            ("go-micro.user-srv".to_string(), 1),
            ("go-micro.admin-srv".to_string(), 1)
        ]
    );
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
