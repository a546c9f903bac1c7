//! The built `harness` binary refuses bad input to itself before any cluster work: exit code 2
//! within a second, a message saying what is valid, nothing started or written.
//!
//! "Nothing started" is observed three ways: the local backend's state directory (pointed at a
//! fresh temporary path) is never created, a KUBECONFIG pointing at a loopback listener of the
//! test is never dialled, and stderr never reports a backend.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rstest::rstest;

/// Longest a refusal may take.
const REFUSAL_BUDGET: Duration = Duration::from_secs(1);

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// A scratch directory with a kubeconfig naming a loopback listener nobody may dial.
struct Sandbox {
    dir: tempfile::TempDir,
    listener: TcpListener,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        std::fs::write(
            dir.path().join("kubeconfig"),
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n"
            ),
        )
        .unwrap();
        Sandbox { dir, listener }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs the harness in the sandbox (killed after 20 s so a regression cannot hang the suite).
    fn harness(&self, args: &[&str]) -> Outcome {
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
            .args(args)
            .current_dir(self.dir.path())
            .env("GOMICRO_STATE_DIR", self.path("state"))
            .env("KUBECONFIG", self.path("kubeconfig"))
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = started + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        Outcome {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }

    fn assert_nothing_started(&self, outcome: &Outcome) {
        assert!(
            !self.path("state").exists(),
            "the local state directory was created: {}",
            outcome.stderr
        );
        assert!(
            !outcome.stderr.contains("[harness] backend"),
            "a backend was chosen: {}",
            outcome.stderr
        );
        match self.listener.accept() {
            Err(error) if error.kind() == ErrorKind::WouldBlock => {}
            other => panic!("the kubeconfig's API server was dialled: {other:?}"),
        }
    }

    /// A copy of the reference profile with absolute paths, `edit` applied.
    fn profile(&self, edit: impl Fn(String) -> String) -> String {
        let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/profiles");
        let text = std::fs::read_to_string(reference.join("reference.yaml"))
            .unwrap()
            .replace("../..", &reference.join("../..").display().to_string());
        let path = self.path("profile.yaml");
        std::fs::write(&path, edit(text)).unwrap();
        path.display().to_string()
    }
}

fn assert_refused(sandbox: &Sandbox, args: &[&str], expected: &str) {
    let outcome = sandbox.harness(args);
    assert_eq!(
        outcome.code,
        Some(2),
        "harness {args:?}: stderr {}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains(expected),
        "harness {args:?}: stderr lacks {expected:?}: {}",
        outcome.stderr
    );
    assert!(
        outcome.elapsed < REFUSAL_BUDGET,
        "harness {args:?} took {:?}",
        outcome.elapsed
    );
    assert!(
        !sandbox.path("reports").exists(),
        "a refused run created its report directory"
    );
    sandbox.assert_nothing_started(&outcome);
}

#[rstest]
#[case::unknown_case(&["run", "--case", "NOPE-001"], "unknown case NOPE-001; valid case IDs are REG-001, REG-002")]
#[case::unknown_feature(&["run", "--backend", "kubeconfig", "--feature", "teleport"], "unknown feature teleport; known features are registration")]
#[case::case_outside_feature(&["run", "--backend", "kubeconfig", "--case", "CFG-001", "--feature", "health"], "conflicting options: --case CFG-001 belongs to feature config-load")]
#[case::keep_external_cluster(&["run", "--backend", "kubeconfig", "--keep-cluster"], "conflicting options: --keep-cluster with --backend kubeconfig")]
#[case::unknown_option(&["run", "--teleport"], "unexpected argument '--teleport'")]
#[case::missing_profile(&["run", "--backend", "kubeconfig", "--profile", "nope.yaml"], "cannot read profile nope.yaml")]
#[case::missing_compare(&["bench", "--compare", "nope.json"], "cannot read the bench JSON nope.json")]
#[case::bench_on_kubeconfig(&["bench", "--backend", "kubeconfig"], "use --backend local, or --backend k3s")]
#[case::up_on_kubeconfig(&["up", "--backend", "kubeconfig"], "`harness up` keeps a local cluster running")]
#[case::against_without_compare(&["bench", "--against", "nope.json"], "the following required arguments were not provided")]
#[case::unsupported_kubernetes(&["run", "--backend", "kubeconfig", "--kubernetes-version", "1.29"], "--kubernetes-version: Kubernetes 1.29 is not supported; supported minors: 1.34, 1.35, 1.36, 1.37")]
#[case::other_patch(&["run", "--backend", "local", "--kubernetes-version", "v1.34.1"], "Kubernetes v1.34.1 is not the patch built for 1.34: use 1.34 or v1.34.4")]
#[case::unsupported_in_a_list(&["run", "--backend", "local", "--kubernetes-version", "1.34,1.99"], "Kubernetes 1.99 is not supported")]
#[case::matrix_on_kubeconfig(&["run", "--backend", "kubeconfig", "--kubernetes-version", "1.34,1.35"], "the kubeconfig backend's cluster runs one version")]
#[case::matrix_twice(&["run", "--backend", "local", "--kubernetes-version", "1.34,v1.34.4"], "--kubernetes-version names 1.34 twice")]
#[case::matrix_kept(&["run", "--backend", "local", "--kubernetes-version", "1.34,1.35", "--keep-cluster"], "conflicting options: --keep-cluster with several --kubernetes-version values")]
#[case::up_unsupported(&["up", "--kubernetes-version", "1.20"], "Kubernetes 1.20 is not supported")]
fn bad_options_are_refused(#[case] args: &[&str], #[case] expected: &str) {
    assert_refused(&Sandbox::new(), args, expected);
}

#[test]
fn an_undeclared_feature_is_refused_with_the_declared_ones() {
    let sandbox = Sandbox::new();
    let profile = sandbox.profile(|text| text.replace("  - cors\n", ""));
    let args = ["run", "--backend", "kubeconfig", "--profile", &profile];
    assert_refused(
        &sandbox,
        &[&args[..], &["--feature", "cors"]].concat(),
        "feature cors is not declared by profile",
    );
    assert_refused(
        &sandbox,
        &[&args[..], &["--case", "LOGIN-005"]].concat(),
        "case LOGIN-005 needs feature cors, which profile",
    );
}

#[test]
fn a_profile_asking_for_an_unsupported_kubernetes_is_refused() {
    let sandbox = Sandbox::new();
    let profile = sandbox.profile(|text| text + "kubernetesVersion: \"1.30\"\n");
    assert_refused(
        &sandbox,
        &["run", "--backend", "kubeconfig", "--profile", &profile],
        "kubernetesVersion: Kubernetes 1.30 is not supported; supported minors: 1.34",
    );
}

#[test]
fn an_unwritable_report_dir_is_refused_and_the_file_in_its_way_kept() {
    let sandbox = Sandbox::new();
    let file = sandbox.path("a-file");
    std::fs::write(&file, "keep me").unwrap();
    let dir = file.join("reports").display().to_string();
    assert_refused(
        &sandbox,
        &["run", "--backend", "kubeconfig", "--report-dir", &dir],
        "is not writable: cannot create it",
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

#[test]
fn a_profile_whose_manifests_are_missing_or_empty_is_refused() {
    let sandbox = Sandbox::new();
    let manifests = sandbox.path("manifests");
    let profile = sandbox.profile(|text| {
        let dir = manifests.display().to_string();
        let line = text.lines().find(|l| l.starts_with("manifests:")).unwrap();
        text.replace(line, &format!("manifests: {dir}"))
    });
    let args = ["run", "--backend", "kubeconfig", "--profile", &profile];
    assert_refused(&sandbox, &args, "does not exist");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("empty.yaml"), "# no objects\n---\n").unwrap();
    assert_refused(&sandbox, &args, "holds no YAML objects");
    assert_refused(&sandbox, &args, "at least one Kubernetes object");
    for command in [
        &["up", "--profile", &profile][..],
        &["bench", "--profile", &profile],
    ] {
        assert_refused(&sandbox, command, "holds no YAML objects");
    }
}

#[test]
fn a_compare_file_that_is_not_bench_json_is_refused() {
    let sandbox = Sandbox::new();
    let old = sandbox.path("old.json");
    std::fs::write(&old, r#"{"profiles": []}"#).unwrap();
    let old = old.display().to_string();
    assert_refused(
        &sandbox,
        &["bench", "--compare", &old],
        "cannot be compared: it has no formatVersion",
    );
}

#[test]
fn help_documents_the_exit_codes() {
    let sandbox = Sandbox::new();
    let outcome = sandbox.harness(&["--help"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
    for line in [
        "Exit status:",
        "0  nothing failed",
        "1  the implementation failed",
        "2  usage error",
        "3  the harness could not test",
    ] {
        assert!(
            outcome.stdout.contains(line),
            "--help lacks {line:?}: {}",
            outcome.stdout
        );
    }
    let run_help = sandbox.harness(&["run", "--help"]);
    for option in ["--feature", "--require-level"] {
        assert!(run_help.stdout.contains(option), "{}", run_help.stdout);
    }
}

/// Without a Docker engine the k3s backend fails before any image is built or anything started:
/// exit 3 (the harness could not test) within seconds, with a report that says why.
#[test]
fn k3s_without_docker_cannot_test_and_builds_nothing() {
    let sandbox = Sandbox::new();
    let started = Instant::now();
    let mut command = Command::new(env!("CARGO_BIN_EXE_harness"));
    let output = command
        .args(["run", "--backend", "k3s", "--case", "LOGIN-001"])
        .current_dir(sandbox.dir.path())
        .env("GOMICRO_STATE_DIR", sandbox.path("state"))
        .env(
            "DOCKER_HOST",
            format!("unix://{}", sandbox.path("no-docker.sock").display()),
        )
        .env("GOMICRO_CACHE_DIR", sandbox.path("cache"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(stderr.contains("needs a Docker engine"), "{stderr}");
    assert!(!stderr.contains("[images]"), "images were built: {stderr}");
    assert!(!sandbox.path("state").exists() && !sandbox.path("cache").exists());
    let summary = std::fs::read_to_string(sandbox.path("reports/summary.md")).unwrap();
    assert!(
        summary
            .lines()
            .next()
            .unwrap()
            .contains("Error: the harness could not test"),
        "{summary}"
    );
}
