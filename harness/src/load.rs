//! Login load: a fixed number of concurrent workers logging the demo user in, bounded in
//! request count and in time, recording latencies and failures.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gomicro_proto::admin_srv::v1::LoginRequest;
use gomicro_proto::admin_srv::v1::authentication_service_client::AuthenticationServiceClient;
use serde::Serialize;
use serde_json::json;
use tonic::transport::Channel;

use crate::profile::DemoUser;

/// How many errors a run keeps verbatim.
const KEPT_ERRORS: usize = 5;

/// Where the logins go.
#[derive(Clone)]
pub(crate) enum Target {
    /// `POST <url>` with a JSON body.
    Http {
        client: reqwest::Client,
        url: String,
    },
    /// `admin_srv.v1.AuthenticationService/Login` on a channel.
    Grpc(AuthenticationServiceClient<Channel>),
}

impl Target {
    /// One login of `user`; the token of a successful reply.
    pub(crate) async fn login(&self, user: &DemoUser) -> Result<String> {
        match self {
            Target::Http { client, url } => {
                let response = client
                    .post(url)
                    .json(&json!({ "userName": user.user_name, "password": user.password }))
                    .send()
                    .await
                    .with_context(|| format!("POST {url}"))?;
                let status = response.status();
                let body: serde_json::Value = response
                    .json()
                    .await
                    .with_context(|| format!("POST {url} answered {status} without JSON"))?;
                match body["token"].as_str() {
                    Some(token) if status.is_success() => Ok(token.to_string()),
                    _ => bail!("POST {url} answered {status}: {body}"),
                }
            }
            Target::Grpc(client) => {
                let reply = client
                    .clone()
                    .login(LoginRequest {
                        user_name: user.user_name.clone(),
                        password: user.password.clone(),
                    })
                    .await
                    .map_err(|status| {
                        anyhow::anyhow!("gRPC Login: {:?} {}", status.code(), status.message())
                    })?;
                let token = reply.into_inner().token;
                if token.is_empty() {
                    bail!("gRPC Login replied without a token");
                }
                Ok(token)
            }
        }
    }
}

/// Bounds of one load run: it stops at whichever comes first.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Concurrent workers, each with one request in flight.
    pub concurrency: usize,
    /// Most requests started in total.
    pub max_requests: usize,
    /// Longest run.
    pub max_duration: Duration,
}

/// What a load run saw.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoadStats {
    pub succeeded: usize,
    pub failed: usize,
    #[serde(skip)]
    pub elapsed: Duration,
    /// Latencies of the successful logins.
    #[serde(skip)]
    pub latencies: Vec<Duration>,
    /// The first few failures, verbatim.
    pub first_errors: Vec<String>,
}

impl LoadStats {
    /// Successful logins per second.
    pub(crate) fn throughput(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.succeeded as f64 / seconds
        } else {
            0.0
        }
    }
}

/// Runs `budget.concurrency` workers until the budget is spent or `keep_going(started)` turns
/// false (`started` = requests started so far).
pub(crate) async fn run(
    target: &Target,
    user: &DemoUser,
    budget: Budget,
    keep_going: &(dyn Fn(usize) -> bool + Sync),
) -> LoadStats {
    let started = Instant::now();
    let issued = AtomicUsize::new(0);
    let errors = Mutex::new(Vec::new());
    let failed = AtomicUsize::new(0);
    let worker = || async {
        let mut latencies = Vec::new();
        loop {
            let n = issued.fetch_add(1, Ordering::SeqCst);
            if n >= budget.max_requests
                || started.elapsed() >= budget.max_duration
                || !keep_going(n)
            {
                break;
            }
            let begun = Instant::now();
            match target.login(user).await {
                Ok(_) => latencies.push(begun.elapsed()),
                Err(error) => {
                    failed.fetch_add(1, Ordering::SeqCst);
                    let mut kept = errors.lock().unwrap_or_else(|p| p.into_inner());
                    if kept.len() < KEPT_ERRORS {
                        kept.push(format!("{error:#}"));
                    }
                }
            }
        }
        latencies
    };
    let per_worker =
        futures::future::join_all((0..budget.concurrency.max(1)).map(|_| worker())).await;
    let latencies: Vec<Duration> = per_worker.into_iter().flatten().collect();
    LoadStats {
        succeeded: latencies.len(),
        failed: failed.load(Ordering::SeqCst),
        elapsed: started.elapsed(),
        latencies,
        first_errors: errors.into_inner().unwrap_or_else(|p| p.into_inner()),
    }
}

/// The `q`-quantile (0..=1) of `samples` by nearest rank; `None` when empty.
pub(crate) fn quantile<T: Copy + PartialOrd>(samples: &[T], q: f64) -> Option<T> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let samples = ms(&[50, 10, 40, 20, 30]);
        assert_eq!(quantile(&samples, 0.5), Some(Duration::from_millis(30)));
        assert_eq!(quantile(&samples, 0.95), Some(Duration::from_millis(50)));
        assert_eq!(quantile(&samples, 0.0), Some(Duration::from_millis(10)));
        assert_eq!(quantile::<f64>(&[], 0.5), None);
        assert_eq!(quantile(&[-3.0, 1.0, 2.0], 0.5), Some(1.0));
        let hundred: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&hundred, 0.99), Some(Duration::from_millis(99)));
    }

    #[tokio::test]
    async fn a_run_stops_at_its_request_budget_and_counts_failures() {
        // Nothing listens on port 9 of loopback: every login fails fast.
        let target = Target::Http {
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            url: "http://127.0.0.1:9/admin/v1/login".into(),
        };
        let budget = Budget {
            concurrency: 3,
            max_requests: 7,
            max_duration: Duration::from_secs(20),
        };
        let stats = run(&target, &DemoUser::default(), budget, &|_| true).await;
        assert_eq!(stats.succeeded, 0);
        assert_eq!(stats.failed, 7);
        assert_eq!(stats.first_errors.len(), KEPT_ERRORS);
        let stopped = run(&target, &DemoUser::default(), budget, &|n| n < 2).await;
        assert_eq!(stopped.failed, 2, "keep_going stops new requests");
    }
}
