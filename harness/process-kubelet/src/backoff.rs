//! The kubelet's crash-loop back-off: the first restart is immediate, then 10 s doubling up to
//! 5 min; a container that ran for 10 min without exiting starts a fresh streak.

use std::time::Duration;

/// First non-zero delay.
pub const INITIAL: Duration = Duration::from_secs(10);
/// Longest delay.
pub const MAX: Duration = Duration::from_secs(300);
/// A run at least this long resets the streak (the kubelet uses twice the maximum).
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// Restart bookkeeping for one container.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CrashBackoff {
    streak: u32,
}

impl CrashBackoff {
    /// Records an exit after a run of `ran_for` and returns how long to wait before restarting.
    pub fn next_delay(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= RESET_AFTER {
            self.streak = 0;
        }
        let delay = delay_for_streak(self.streak);
        self.streak = self.streak.saturating_add(1);
        delay
    }
}

/// The delay before the restart that follows `streak` earlier restarts in a row.
pub fn delay_for_streak(streak: u32) -> Duration {
    match streak {
        0 => Duration::ZERO,
        n => INITIAL.saturating_mul(1u32 << (n - 1).min(16)).min(MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_kubelet_schedule() {
        let mut backoff = CrashBackoff::default();
        let delays: Vec<u64> = (0..8)
            .map(|_| backoff.next_delay(Duration::from_secs(1)).as_secs())
            .collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn long_run_resets_the_streak() {
        let mut backoff = CrashBackoff::default();
        for _ in 0..5 {
            backoff.next_delay(Duration::from_secs(1));
        }
        assert_eq!(backoff.next_delay(RESET_AFTER), Duration::ZERO);
        assert_eq!(backoff.next_delay(Duration::from_secs(1)), INITIAL);
    }

    #[test]
    fn huge_streaks_do_not_overflow() {
        assert_eq!(delay_for_streak(u32::MAX), MAX);
    }
}
