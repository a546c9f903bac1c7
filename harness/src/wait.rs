//! Waiting on conditions with deadlines (never a bare sleep as synchronisation).

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// Polls `check` every 100 ms until it yields `Some`, failing after `deadline` with `what`
/// and the last error seen.
pub async fn wait_until<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    loop {
        let last_error = match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => None,
            Err(error) => Some(error),
        };
        if start.elapsed() >= deadline {
            match last_error {
                Some(error) => {
                    bail!("timed out after {deadline:?} waiting for {what}; last error: {error:#}")
                }
                None => bail!("timed out after {deadline:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_value() {
        let mut calls = 0;
        let value = wait_until(Duration::from_secs(5), "three calls", || {
            calls += 1;
            let done = calls >= 3;
            async move { Ok(done.then_some(calls)) }
        })
        .await
        .unwrap();
        assert_eq!(value, 3);
    }

    #[tokio::test]
    async fn times_out_with_the_last_error() {
        let err = wait_until::<(), _, _>(Duration::from_millis(250), "never", || async {
            bail!("boom")
        })
        .await
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("never") && text.contains("boom"), "{text}");
    }
}
