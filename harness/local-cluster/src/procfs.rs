//! Process identity from /proc (the `procfs` crate): command lines, start times, liveness.

use std::time::{Duration, Instant};

use ::procfs::process::Process;

/// The argv of `pid`, if it runs.
pub(crate) fn cmdline(pid: i32) -> Option<Vec<String>> {
    let argv = Process::new(pid).ok()?.cmdline().ok()?;
    (!argv.is_empty()).then_some(argv)
}

/// State letter and start time (clock ticks since boot) of `pid`.
fn stat(pid: i32) -> Option<(char, u64)> {
    let stat = Process::new(pid).ok()?.stat().ok()?;
    Some((stat.state, stat.starttime))
}

/// Start time of `pid` (distinguishes it from a later process reusing the pid).
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|(_, start)| start)
}

/// Whether `pid` exists and is not a zombie.
pub(crate) fn is_alive(pid: i32) -> bool {
    matches!(stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// Whether `pid` runs and started at `start` (the same process as recorded).
pub(crate) fn is_same_process(pid: i32, start: u64) -> bool {
    is_alive(pid) && start_time(pid) == Some(start)
}

/// Waits until `pid` is gone (or a zombie), up to `timeout`; true when gone.
pub(crate) async fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !is_alive(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_with_a_stable_identity() {
        let pid = std::process::id() as i32;
        let start = start_time(pid).unwrap();
        assert!(is_same_process(pid, start));
        assert!(!is_same_process(pid, start + 1));
        assert!(cmdline(pid).unwrap()[0].contains("local_cluster"));
    }
}
