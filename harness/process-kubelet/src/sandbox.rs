//! The container root: a plan of mounts prepared before `fork` and applied in the child
//! (`pre_exec`) inside the pod's netns and a fresh mount + UTS namespace, ending in `chroot`.
//!
//! Everything the child needs is allocated up front; the child only makes system calls.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::stat::Mode;

/// The in-pod path of the service-account files.
pub const SERVICE_ACCOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// A directory from the host (or a pod-level directory) to expose inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraMount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

/// What the container's root is built from.
#[derive(Debug, Clone)]
pub struct RootSpec {
    /// Mount point (on the host) for the root tmpfs; it exists and is empty.
    pub root: PathBuf,
    /// Pod-level `/etc/hosts` and `/etc/hostname` replacements (bound if the host has them).
    pub hosts_file: PathBuf,
    pub hostname_file: PathBuf,
    /// Image tree and service-account dir and any volumes.
    pub mounts: Vec<ExtraMount>,
    /// Hostname inside the UTS namespace (the pod name).
    pub hostname: String,
    /// Working directory after `chroot`.
    pub working_dir: PathBuf,
}

/// One step of building the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Tmpfs {
        target: CString,
        options: CString,
    },
    Bind {
        source: CString,
        target: CString,
        read_only: bool,
    },
    Proc {
        target: CString,
    },
    Mkdir {
        path: CString,
    },
    Symlink {
        target: CString,
        link: CString,
    },
}

/// A prepared root plus the netns to join.
pub struct RootPlan {
    netns: OwnedFd,
    hostname: Vec<u8>,
    steps: Vec<(Step, Vec<u8>)>,
    root: CString,
    working_dir: CString,
    error_fd: Option<OwnedFd>,
}

fn cstr(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other(format!("path {path:?} contains NUL")))
}

/// `root` joined with an absolute in-container path.
fn inside(root: &Path, path: &Path) -> PathBuf {
    let mut out = root.to_path_buf();
    out.extend(
        path.components()
            .filter(|c| matches!(c, Component::Normal(_))),
    );
    out
}

/// Mkdir steps for every component of `path` below `root`.
fn mkdir_all(root: &Path, path: &Path) -> Vec<PathBuf> {
    let mut current = root.to_path_buf();
    let mut dirs = Vec::new();
    for component in path.components() {
        if let Component::Normal(part) = component {
            current.push(part);
            dirs.push(current.clone());
        }
    }
    dirs
}

/// The ordered steps for `spec`, looking at the host's top-level layout (symlinked /bin …).
pub fn plan_steps(spec: &RootSpec) -> io::Result<Vec<Step>> {
    let root = &spec.root;
    let mut steps = Vec::new();
    let mkdirs = |steps: &mut Vec<Step>, path: &Path| -> io::Result<()> {
        for dir in mkdir_all(root, path) {
            steps.push(Step::Mkdir { path: cstr(&dir)? });
        }
        Ok(())
    };
    let bind =
        |steps: &mut Vec<Step>, source: &Path, target: &Path, read_only: bool| -> io::Result<()> {
            steps.push(Step::Bind {
                source: cstr(source)?,
                target: cstr(&inside(root, target))?,
                read_only,
            });
            Ok(())
        };
    let tmpfs = |steps: &mut Vec<Step>, target: &Path, options: &str| -> io::Result<()> {
        steps.push(Step::Tmpfs {
            target: cstr(&inside(root, target))?,
            options: CString::new(options)?,
        });
        Ok(())
    };
    steps.push(Step::Tmpfs {
        target: cstr(root)?,
        options: CString::new("mode=0755")?,
    });
    for dir in [
        "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/opt",
    ] {
        let host = Path::new(dir);
        let Ok(meta) = host.symlink_metadata() else {
            continue;
        };
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(host)?;
            steps.push(Step::Symlink {
                target: cstr(&target)?,
                link: cstr(&inside(root, host))?,
            });
        } else if meta.is_dir() {
            mkdirs(&mut steps, host)?;
            bind(&mut steps, host, host, true)?;
        }
    }
    mkdirs(&mut steps, Path::new("/proc"))?;
    steps.push(Step::Proc {
        target: cstr(&inside(root, Path::new("/proc")))?,
    });
    mkdirs(&mut steps, Path::new("/dev"))?;
    bind(&mut steps, Path::new("/dev"), Path::new("/dev"), false)?;
    mkdirs(&mut steps, Path::new("/sys"))?;
    bind(&mut steps, Path::new("/sys"), Path::new("/sys"), true)?;
    for (dir, options) in [
        ("/tmp", "mode=1777"),
        ("/root", "mode=0700"),
        ("/run", "mode=0755"),
    ] {
        mkdirs(&mut steps, Path::new(dir))?;
        tmpfs(&mut steps, Path::new(dir), options)?;
    }
    mkdirs(&mut steps, Path::new("/var/tmp"))?;
    for (pod_file, host_file) in [
        (&spec.hosts_file, "/etc/hosts"),
        (&spec.hostname_file, "/etc/hostname"),
    ] {
        if Path::new(host_file).is_file() {
            bind(&mut steps, pod_file, Path::new(host_file), true)?;
        }
    }
    for extra in &spec.mounts {
        mkdirs(&mut steps, &extra.target)?;
        bind(&mut steps, &extra.source, &extra.target, extra.read_only)?;
    }
    Ok(steps)
}

fn describe(step: &Step) -> Vec<u8> {
    let text = match step {
        Step::Tmpfs { target, .. } => format!("mount tmpfs on {target:?}"),
        Step::Bind { source, target, .. } => format!("bind {source:?} to {target:?}"),
        Step::Proc { target } => format!("mount proc on {target:?}"),
        Step::Mkdir { path } => format!("mkdir {path:?}"),
        Step::Symlink { target, link } => format!("symlink {link:?} -> {target:?}"),
    };
    format!("process-kubelet: container setup failed: {text}: ").into_bytes()
}

impl RootPlan {
    /// Prepares everything for [`RootPlan::enter`]: opens the netns and an error-report file.
    pub fn prepare(spec: &RootSpec, netns_path: &Path, error_file: &Path) -> io::Result<Self> {
        let netns = std::fs::File::open(netns_path)
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot open netns {netns_path:?}: {e}"))
            })?
            .into();
        let error_fd = std::fs::File::create(error_file).ok().map(OwnedFd::from);
        let steps = plan_steps(spec)?
            .into_iter()
            .map(|s| (s.clone(), describe(&s)))
            .collect();
        Ok(Self {
            netns,
            hostname: spec.hostname.as_bytes().to_vec(),
            steps,
            root: cstr(&spec.root)?,
            working_dir: cstr(&spec.working_dir)?,
            error_fd,
        })
    }

    fn report(&self, what: &[u8], err: nix::Error) -> io::Error {
        if let Some(fd) = &self.error_fd {
            let _ = nix::unistd::write(fd.as_fd(), what);
            let _ = nix::unistd::write(fd.as_fd(), err.desc().as_bytes());
        }
        io::Error::from_raw_os_error(err as i32)
    }

    /// Runs in the forked child: new session, pod netns, new mount and UTS namespaces, the root
    /// steps, `chroot`, `chdir`. Only system calls; no allocation.
    pub fn enter(&self) -> io::Result<()> {
        let fail = |what: &'static [u8]| move |e| self.report(what, e);
        nix::unistd::setsid().map_err(fail(b"process-kubelet: setsid: "))?;
        setns(self.netns.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(fail(b"process-kubelet: setns(net): "))?;
        unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS)
            .map_err(fail(b"process-kubelet: unshare: "))?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(fail(b"process-kubelet: make / private: "))?;
        nix::unistd::sethostname(std::ffi::OsStr::from_bytes(&self.hostname))
            .map_err(fail(b"process-kubelet: sethostname: "))?;
        for (step, what) in &self.steps {
            apply(step).map_err(|e| self.report(what, e))?;
        }
        nix::unistd::chroot(self.root.as_c_str()).map_err(fail(b"process-kubelet: chroot: "))?;
        nix::unistd::chdir(self.working_dir.as_c_str())
            .map_err(fail(b"process-kubelet: chdir to working dir: "))?;
        Ok(())
    }
}

fn apply(step: &Step) -> nix::Result<()> {
    let none = None::<&std::ffi::CStr>;
    match step {
        Step::Tmpfs { target, options } => mount(
            Some(c"tmpfs"),
            target.as_c_str(),
            Some(c"tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(options.as_c_str()),
        ),
        Step::Proc { target } => mount(
            Some(c"proc"),
            target.as_c_str(),
            Some(c"proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            none,
        ),
        Step::Bind {
            source,
            target,
            read_only,
        } => {
            mount(
                Some(source.as_c_str()),
                target.as_c_str(),
                none,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                none,
            )?;
            if *read_only {
                let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
                mount(none, target.as_c_str(), none, flags, none)?;
            }
            Ok(())
        }
        Step::Mkdir { path } => {
            match nix::unistd::mkdir(path.as_c_str(), Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(nix::Error::EEXIST) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Step::Symlink { target, link } => {
            // SAFETY: both pointers are valid NUL-terminated strings owned by the plan.
            let rc = unsafe { nix::libc::symlink(target.as_ptr(), link.as_ptr()) };
            if rc == 0 {
                Ok(())
            } else {
                Err(nix::Error::last())
            }
        }
    }
}

/// Joining an existing container (for exec probes): its net, UTS and mount namespaces, then
/// its root and working directory.
pub struct EnterExisting {
    namespaces: Vec<(OwnedFd, CloneFlags)>,
    root: CString,
    working_dir: CString,
}

impl EnterExisting {
    /// Opens `/proc/<pid>/ns/{net,uts,mnt}` of a running container.
    pub fn prepare(pid: u32, root: &Path, working_dir: &Path) -> io::Result<Self> {
        let mut namespaces = Vec::new();
        for (name, flag) in [
            ("net", CloneFlags::CLONE_NEWNET),
            ("uts", CloneFlags::CLONE_NEWUTS),
            ("mnt", CloneFlags::CLONE_NEWNS),
        ] {
            let file = std::fs::File::open(format!("/proc/{pid}/ns/{name}"))?;
            namespaces.push((OwnedFd::from(file), flag));
        }
        Ok(Self {
            namespaces,
            root: cstr(root)?,
            working_dir: cstr(working_dir)?,
        })
    }

    /// Runs in the forked child.
    pub fn enter(&self) -> io::Result<()> {
        let os = |e: nix::Error| io::Error::from_raw_os_error(e as i32);
        nix::unistd::setsid().map_err(os)?;
        for (fd, flag) in &self.namespaces {
            setns(fd.as_fd(), *flag).map_err(os)?;
        }
        nix::unistd::chroot(self.root.as_c_str()).map_err(os)?;
        nix::unistd::chdir(self.working_dir.as_c_str()).map_err(os)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RootSpec {
        RootSpec {
            root: "/state/pods/u1/_root".into(),
            hosts_file: "/state/pods/u1/_etc/hosts".into(),
            hostname_file: "/state/pods/u1/_etc/hostname".into(),
            mounts: vec![
                ExtraMount {
                    source: "/srv/img".into(),
                    target: "/app".into(),
                    read_only: true,
                },
                ExtraMount {
                    source: "/state/pods/u1/_sa".into(),
                    target: SERVICE_ACCOUNT_PATH.into(),
                    read_only: true,
                },
            ],
            hostname: "web-1".into(),
            working_dir: "/".into(),
        }
    }

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    #[test]
    fn starts_with_root_tmpfs_and_binds_usr_read_only() {
        let steps = plan_steps(&spec()).unwrap();
        assert_eq!(
            steps[0],
            Step::Tmpfs {
                target: c("/state/pods/u1/_root"),
                options: c("mode=0755")
            }
        );
        assert!(steps.contains(&Step::Bind {
            source: c("/usr"),
            target: c("/state/pods/u1/_root/usr"),
            read_only: true
        }));
        assert!(steps.contains(&Step::Proc {
            target: c("/state/pods/u1/_root/proc")
        }));
        assert!(steps.contains(&Step::Tmpfs {
            target: c("/state/pods/u1/_root/root"),
            options: c("mode=0700")
        }));
    }

    #[test]
    fn extra_mounts_get_their_parents_created_first() {
        let steps = plan_steps(&spec()).unwrap();
        let pos = |step: &Step| steps.iter().position(|s| s == step).unwrap();
        let sa_target = c("/state/pods/u1/_root/var/run/secrets/kubernetes.io/serviceaccount");
        let bind_sa = pos(&Step::Bind {
            source: c("/state/pods/u1/_sa"),
            target: sa_target.clone(),
            read_only: true,
        });
        assert!(
            pos(&Step::Mkdir {
                path: c("/state/pods/u1/_root/var/run/secrets")
            }) < bind_sa
        );
        assert!(pos(&Step::Mkdir { path: sa_target }) < bind_sa);
        let bind_app = pos(&Step::Bind {
            source: c("/srv/img"),
            target: c("/state/pods/u1/_root/app"),
            read_only: true,
        });
        assert!(
            pos(&Step::Mkdir {
                path: c("/state/pods/u1/_root/app")
            }) < bind_app
        );
    }

    #[test]
    fn pod_hosts_file_is_bound_after_etc() {
        let steps = plan_steps(&spec()).unwrap();
        let pos = |step: &Step| steps.iter().position(|s| s == step);
        let etc = pos(&Step::Bind {
            source: c("/etc"),
            target: c("/state/pods/u1/_root/etc"),
            read_only: true,
        });
        let hosts = pos(&Step::Bind {
            source: c("/state/pods/u1/_etc/hosts"),
            target: c("/state/pods/u1/_root/etc/hosts"),
            read_only: true,
        });
        if Path::new("/etc/hosts").is_file() {
            assert!(etc.unwrap() < hosts.unwrap());
        }
    }

    #[test]
    fn inside_ignores_parent_components() {
        assert_eq!(
            inside(Path::new("/r"), Path::new("/../etc/./x")),
            PathBuf::from("/r/etc/x")
        );
    }
}
