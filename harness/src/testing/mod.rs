//! The conformance cases as tests: one test per case of the profile's declared features,
//! generated from the case registry, for a `harness = false` test target run by
//! `cargo nextest run` (or `cargo test`). The project's own e2e suite is this applied to the
//! reference profile; a third party gets the same in its own repository.
//!
//! ```no_run
//! // tests/conformance.rs, with `[[test]] name = "conformance", harness = false` in Cargo.toml
//! fn main() {
//!     harness::testing::ConformanceTests::new("conformance/profile.yaml").main()
//! }
//! ```
//!
//! `cargo nextest run --list` then lists `conformance::REG_001`, `conformance::LOGIN_001`, …;
//! filters select cases as usual. Listing starts nothing. nextest runs each test in its own
//! process, so the cluster outlives them: the first test starts a local cluster as a
//! `harness up` daemon (or uses `KUBECONFIG` with `HARNESS_E2E_BACKEND=kubeconfig`) and deploys
//! the profile; later tests attach to it; `harness down` stops it. Cases whose backend lacks
//! their lever are listed as ignored. A failed test leaves a diagnostics bundle (see
//! [`bundle`]) and its message says where.

// The example's `fn main` is the point: a `harness = false` target's entry.
#![allow(clippy::needless_doctest_main)]

mod bundle;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use libtest_mimic::{Arguments, Failed, Trial};

use crate::cases;
use crate::cluster::local::default_state_dir;
use crate::cluster::{BackendKind, provider};
use crate::context::Ctx;
use crate::deploy;
use crate::profile::Profile;
use crate::run::start_cluster;
use crate::secrets::KnownSecrets;
use crate::verdict::{self, Outcome, Runner};

/// What a passing case observed, for snapshots: `(case ID, normalised observations)`.
pub type OnPass = Box<dyn Fn(&str, &serde_json::Value) + Send + Sync>;

/// The conformance cases of one profile as tests (see the module documentation).
pub struct ConformanceTests {
    profile: PathBuf,
    harness_exe: Option<PathBuf>,
    images_of: Vec<PathBuf>,
    on_pass: Option<OnPass>,
}

impl ConformanceTests {
    /// Tests for the profile at `profile` (relative paths from the test's working directory,
    /// which cargo sets to the package's root).
    pub fn new(profile: impl Into<PathBuf>) -> ConformanceTests {
        ConformanceTests {
            profile: profile.into(),
            harness_exe: None,
            images_of: Vec::new(),
            on_pass: None,
        }
    }

    /// The `harness` executable that runs the local cluster's daemon (default: `harness` on
    /// `PATH`). A test of the harness package itself passes `env!("CARGO_BIN_EXE_harness")`.
    pub fn harness_exe(mut self, path: impl Into<PathBuf>) -> ConformanceTests {
        self.harness_exe = Some(path.into());
        self
    }

    /// Also provides the images of another profile on the shared local cluster (whose image
    /// set is fixed when it starts), for tests that deploy that profile too.
    pub fn with_images_of(mut self, profile: impl Into<PathBuf>) -> ConformanceTests {
        self.images_of.push(profile.into());
        self
    }

    /// Called with each passing case's observations (e.g. an insta snapshot).
    pub fn on_pass(
        mut self,
        check: impl Fn(&str, &serde_json::Value) + Send + Sync + 'static,
    ) -> ConformanceTests {
        self.on_pass = Some(Box::new(check));
        self
    }

    /// Parses the test binary's arguments, lists or runs the tests and exits.
    pub fn main(self) -> ! {
        let arguments = Arguments::from_args();
        match self.trials() {
            Ok(trials) => libtest_mimic::run(&arguments, trials).exit(),
            Err(error) => {
                eprintln!("error: {error:#}");
                std::process::exit(2)
            }
        }
    }

    /// The tests, one per case of a declared feature, named `conformance::<ID>` with `-` as
    /// `_`; ignored where the backend lacks the case's lever. Nothing is started.
    pub fn trials(self) -> anyhow::Result<Vec<Trial>> {
        let profile = Profile::load(&self.profile)?;
        let backend = test_backend();
        let shared = std::sync::Arc::new(Shared {
            options: self,
            profile: profile.clone(),
            suite: OnceLock::new(),
        });
        Ok(cases::all()
            .into_iter()
            .filter(|case| profile.declares(case.feature))
            .map(|case| {
                let shared = shared.clone();
                let id = case.id;
                let lacking = case
                    .lever
                    .is_some_and(|lever| !provider(backend).levers().contains(&lever));
                Trial::test(
                    format!("conformance::{}", id.replace('-', "_")),
                    move || shared.run_case(id),
                )
                .with_kind(case.feature.name())
                .with_ignored_flag(lacking)
            })
            .collect())
    }
}

/// Stops the tests' shared local cluster (`harness down` through `harness_exe`), for a test that
/// starts a fresh one; panics, saying why, when that fails.
pub fn stop_shared_cluster(harness_exe: &Path) {
    let down = std::process::Command::new(harness_exe)
        .arg("down")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} down: {e}", harness_exe.display()));
    assert!(
        down.status.success(),
        "cannot stop the shared e2e cluster: {}",
        String::from_utf8_lossy(&down.stderr)
    );
}

/// The backend of the tests: `HARNESS_E2E_BACKEND=kubeconfig` for an existing cluster, else the
/// local backend.
pub fn test_backend() -> BackendKind {
    match std::env::var("HARNESS_E2E_BACKEND").as_deref() {
        Ok("kubeconfig") => BackendKind::Kubeconfig,
        _ => BackendKind::Local,
    }
}

/// State shared by the tests of one process.
struct Shared {
    options: ConformanceTests,
    profile: Profile,
    suite: OnceLock<Suite>,
}

impl Shared {
    fn suite(&self) -> &Suite {
        self.suite.get_or_init(|| {
            let mut profiles = vec![self.options.profile.clone()];
            profiles.extend(self.options.images_of.iter().cloned());
            Suite::set_up(&profiles, self.options.harness_exe.as_deref())
        })
    }

    fn run_case(&self, id: &str) -> Result<(), Failed> {
        let case = cases::by_id(id).ok_or_else(|| Failed::from(format!("no case {id}")))?;
        let suite = self.suite();
        let declared = self.profile.features.clone();
        suite
            .with_diagnostics(&self.profile.namespace, |ctx| {
                let result = suite.block_on(Runner::new(ctx, &declared).run(&case));
                match result.outcome {
                    Outcome::Passed => {
                        if let Some(check) = &self.options.on_pass {
                            check(id, &result.observations);
                        }
                    }
                    outcome => {
                        let message = format!(
                            "{id} {}: {}: {}",
                            case.summary,
                            outcome.word(),
                            result.reason.unwrap_or_default()
                        );
                        panic!("{message}");
                    }
                }
            })
            .map_err(Failed::from)
    }
}

/// One shared cluster per test process, with the first profile deployed.
pub struct Suite {
    runtime: tokio::runtime::Runtime,
    setup: Result<Ctx, SetupFailure>,
}

/// Why the shared cluster is not usable, and its client if it came up.
struct SetupFailure {
    error: String,
    client: Option<kube::Client>,
    secrets: KnownSecrets,
}

/// Serialises the tests of one process (cases change the shared deployment).
static SERIAL: Mutex<()> = Mutex::new(());

impl Suite {
    /// Starts or attaches to the shared cluster with the images of every profile in `profiles`
    /// and deploys the first one. A failure is kept and fails every test that uses the suite.
    pub fn set_up(profiles: &[PathBuf], harness_exe: Option<&Path>) -> Suite {
        verdict::install_panic_hook();
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        let setup = runtime.block_on(set_up(profiles, harness_exe));
        Suite { runtime, setup }
    }

    /// Runs a future on the suite's runtime.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The deployed context, or why there is none.
    pub fn ctx(&self) -> Result<&Ctx, String> {
        self.setup.as_ref().map_err(|failure| failure.error.clone())
    }

    /// Runs `test` on the shared cluster, one test at a time; when it panics (or the set-up
    /// failed), writes the diagnostics bundle of `namespace` and returns the message with the
    /// bundle's path.
    pub fn with_diagnostics(&self, namespace: &str, test: impl FnOnce(&Ctx)) -> Result<(), String> {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        bundle::forget_earlier_runs();
        let (failure, client, redactor) = match &self.setup {
            Ok(ctx) => match catch_unwind(AssertUnwindSafe(|| test(ctx))) {
                Ok(()) => return Ok(()),
                Err(panic) => (
                    verdict::panic_text(panic.as_ref()),
                    Some(ctx.client()),
                    ctx.secrets.redactor(),
                ),
            },
            Err(setup) => (
                setup.error.clone(),
                setup.client.clone(),
                setup.secrets.redactor(),
            ),
        };
        let dir = bundle::dir();
        let cluster = client.as_ref().map(|client| (client, namespace));
        let local_state = (test_backend() == BackendKind::Local).then(default_state_dir);
        Err(
            match self.block_on(bundle::write(
                &dir,
                &failure,
                cluster,
                local_state.as_deref(),
                redactor,
            )) {
                Ok(()) => format!("{failure}\ndiagnostics bundle: {}", dir.display()),
                Err(error) => format!(
                    "{failure}\nno diagnostics bundle ({}): {error:#}",
                    dir.display()
                ),
            },
        )
    }
}

async fn set_up(profiles: &[PathBuf], harness_exe: Option<&Path>) -> Result<Ctx, SetupFailure> {
    let failed = |error: anyhow::Error, client, secrets| SetupFailure {
        error: format!("cannot bring up the test cluster: {error:#}"),
        client,
        secrets,
    };
    let mut loaded = Vec::new();
    for path in profiles {
        loaded.push(Profile::load(path).map_err(|e| failed(e, None, KnownSecrets::default()))?);
    }
    let profile = loaded.remove(0);
    let secrets = KnownSecrets::for_profile(&profile);
    let mut with_all_images = profile.clone();
    if let Some(version) = std::env::var(crate::profile::KUBERNETES_VERSION_ENV)
        .ok()
        .filter(|v| !v.is_empty())
    {
        let release = crate::preflight::kubernetes_release(&version)
            .map_err(|e| failed(e.into(), None, secrets.clone()))?;
        with_all_images.kubernetes_version = Some(release.minor.clone());
    }
    for other in loaded {
        with_all_images.images.extend(other.images);
    }
    let exe = match harness_exe {
        Some(exe) => exe.to_path_buf(),
        None => which_harness().map_err(|e| failed(e, None, secrets.clone()))?,
    };
    let cluster = start_cluster(test_backend(), &with_all_images, true, &exe)
        .await
        .map_err(|e| failed(e, None, secrets.clone()))?;
    let client = cluster.client();
    deploy::deploy(&client, &profile)
        .await
        .map_err(|e| failed(e, Some(client.clone()), secrets.clone()))?;
    let mut ctx =
        Ctx::new(cluster, profile).map_err(|e| failed(e, Some(client.clone()), secrets.clone()))?;
    ctx.secrets = secrets.clone();
    // Per test process: a container exit or restart no case caused fails the case.
    ctx.watch_stability("before the first case")
        .await
        .map_err(|e| failed(e, Some(client), secrets))?;
    Ok(ctx)
}

/// `harness` on `PATH`.
fn which_harness() -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("harness"))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the local backend needs the `harness` executable for its cluster daemon: put it on PATH (cargo install) or call ConformanceTests::harness_exe"
            )
        })
}
