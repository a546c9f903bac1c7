//! Waiting on conditions with deadlines (never a bare sleep as synchronisation): on one
//! Kubernetes object through kube's runtime ([`wait_for`], [`wait_gone`]: a watch, no polling),
//! on anything else by retrying a check ([`wait_until`]).

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::runtime::wait::{Condition, await_condition};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// Waits until the object `name` of `api` meets `condition` (kube's `await_condition`, which
/// watches it), failing after `deadline` with `what`; returns the object as last seen.
pub(crate) async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    deadline: Duration,
    what: &str,
    condition: impl Condition<K>,
) -> Result<Option<K>>
where
    K: Clone + Debug + Send + DeserializeOwned + Resource + 'static,
{
    match tokio::time::timeout(deadline, await_condition(api.clone(), name, condition)).await {
        Ok(seen) => seen.with_context(|| format!("watching {name} while waiting for {what}")),
        Err(_) => bail!("timed out after {deadline:?} waiting for {what}"),
    }
}

/// Waits until the object `name` of `api` is gone (deleted, or replaced by one of another UID
/// when `uid` is given), failing after `deadline`.
pub(crate) async fn wait_gone<K>(
    api: &Api<K>,
    name: &str,
    uid: Option<&str>,
    deadline: Duration,
) -> Result<()>
where
    K: Clone + Debug + Send + DeserializeOwned + Resource<DynamicType = ()> + 'static,
{
    let what = format!("{} {name} to be gone", K::kind(&()));
    let uid = uid.map(str::to_string);
    let gone = move |object: Option<&K>| match (object, &uid) {
        (None, _) => true,
        (Some(object), Some(uid)) => object.meta().uid.as_ref() != Some(uid),
        (Some(_), None) => false,
    };
    wait_for(api, name, deadline, &what, gone).await.map(drop)
}

/// Polls `check` every 100 ms until it yields `Some`, failing after `deadline` with `what`
/// and the last error seen.
pub(crate) async fn wait_until<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> Result<T>
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
