//! Real parts: OCI archives written by `oci-archive` are accepted by the pinned containerd
//! (`ctr images import` into the CRI namespace, unpacked) and run with runc: the static pause
//! image, and a glibc program image whose shared libraries were found with ldd.
//!
//! Needs root and the node runtime (ci/node/build.sh); skips with a printed reason otherwise.
//! With GOMICRO_NODE_BIN_DIR set (ci/test.sh sets it) a skip is a failure.
//! Starts a private containerd: run it under the machine's cluster lock when sharing a machine.

use std::path::{Path, PathBuf};

use local_cluster::{
    CRI_NAMESPACE, Containerd, NODE_BIN_DIR_ENV, PAUSE_IMAGE, ensure_node_binaries,
    write_pause_archive,
};
use oci_archive::{ImageConfig, Layer, write_archive};

const APP_IMAGE: &str = "localhost/gomicro-conformance/oci-test:1";

fn node_bin_dir() -> Option<PathBuf> {
    let reason = if !nix::unistd::geteuid().is_root() {
        "not running as root".to_string()
    } else {
        match ensure_node_binaries() {
            Ok(dir) => return Some(dir),
            Err(error) => format!("{error:#}"),
        }
    };
    assert!(
        std::env::var_os(NODE_BIN_DIR_ENV).is_none(),
        "{NODE_BIN_DIR_ENV} is set but: {reason}"
    );
    eprintln!("SKIPPED image_import: {reason}");
    None
}

/// `/bin/sh` and `/bin/ls` with their shared libraries, a data file, and an entrypoint that
/// shows the env, working directory and arguments it got.
fn write_app_archive(dir: &Path) -> oci_archive::ArchiveSummary {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("greeting.txt"), "hello\n").unwrap();
    let mut layer = Layer::new();
    layer.add_program(Path::new("/bin/sh"), "/bin/sh").unwrap();
    layer.add_program(Path::new("/bin/ls"), "/bin/ls").unwrap();
    layer.add_dir(&data, "/data").unwrap();
    write_archive(
        &dir.join("app.tar"),
        APP_IMAGE,
        &[layer],
        &ImageConfig {
            entrypoint: vec!["/bin/sh".into(), "-c".into()],
            cmd: vec!["echo mode=$MODE dir=$(pwd); ls".into()],
            working_dir: Some("/data".into()),
            env: vec!["MODE=oci".into()],
        },
    )
    .unwrap()
}

/// `ctr run --rm` of `image` in a fresh network namespace with no cgroup parent left behind.
fn run(containerd: &Containerd, bin: &Path, image: &str, id: &str, args: &[&str]) -> String {
    let runc = bin.join("runc");
    let runc_root = containerd.paths().socket().with_file_name("runc");
    let fifo_dir = containerd.paths().socket().with_file_name("fifo");
    let mut command = vec![
        "-n",
        CRI_NAMESPACE,
        "run",
        "--rm",
        "--cgroup",
        "",
        "--runc-binary",
        runc.to_str().unwrap(),
        "--runc-root",
        runc_root.to_str().unwrap(),
        "--fifo-dir",
        fifo_dir.to_str().unwrap(),
        image,
        id,
    ];
    command.extend_from_slice(args);
    containerd.ctr(&command).unwrap()
}

#[test]
fn archives_import_into_containerd_and_run() {
    let Some(bin) = node_bin_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let pause = write_pause_archive(&bin, &work.path().join("pause.tar")).unwrap();
    let app = write_app_archive(work.path());
    let state = work.path().join("containerd");
    let host_containerd_dir = Path::new("/run/containerd").exists();
    let containerd = Containerd::start(&state, &bin, PAUSE_IMAGE).unwrap();

    for archive in ["pause.tar", "app.tar"] {
        containerd.import(&work.path().join(archive)).unwrap();
    }
    let listed = containerd
        .ctr(&["-n", CRI_NAMESPACE, "images", "ls"])
        .unwrap();
    for summary in [&pause, &app] {
        assert!(
            listed
                .lines()
                .any(|line| line.starts_with(&summary.reference)
                    && line.contains(&summary.manifest_digest)),
            "{} {} not in\n{listed}",
            summary.reference,
            summary.manifest_digest
        );
    }

    let version = run(
        &containerd,
        &bin,
        &pause.reference,
        "oci-test-pause",
        &["/pause", "-v"],
    );
    assert_eq!(version.trim(), "gomicro-conformance pause");
    let output = run(&containerd, &bin, &app.reference, "oci-test-app", &[]);
    assert_eq!(
        output.replace('\r', ""),
        "mode=oci dir=/data\ngreeting.txt\n"
    );

    containerd.stop().unwrap();
    assert!(!state.exists(), "containerd's directory is left");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(&work.path().display().to_string()),
        "mounts left:\n{mountinfo}"
    );
    if !host_containerd_dir {
        assert!(
            !Path::new("/run/containerd").exists(),
            "ctr left /run/containerd"
        );
    }
    for id in ["oci-test-pause", "oci-test-app"] {
        let left: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .flatten()
            .map(|hierarchy| hierarchy.path().join(id))
            .filter(|cgroup| cgroup.exists())
            .collect();
        assert!(left.is_empty(), "cgroups left: {left:?}");
    }
}
