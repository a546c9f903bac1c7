//! `attach_configmaps` against an in-process fake of the Kubernetes API (no cluster, no
//! network): the LIST, the watch that follows, and the contract's log lines.

use std::convert::Infallible;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gomicro_config::{Config, Entry, RemoteSettings};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Serves LIST with a fixed response and each WATCH with the next body the test releases.
#[derive(Clone)]
struct FakeApi {
    list: Arc<(u16, Value)>,
    watch_bodies: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeApi {
    fn new(status: u16, list: Value) -> (FakeApi, mpsc::UnboundedSender<String>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let fake = FakeApi {
            list: Arc::new((status, list)),
            watch_bodies: Arc::new(tokio::sync::Mutex::new(rx)),
            requests: Arc::default(),
        };
        (fake, tx)
    }

    fn client(&self) -> kube::Client {
        let fake = self.clone();
        let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
            let fake = fake.clone();
            async move {
                let uri = request.uri().to_string();
                fake.requests.lock().unwrap().push(uri.clone());
                let (status, body) = if uri.contains("watch=true") {
                    match fake.watch_bodies.lock().await.recv().await {
                        Some(body) => (200, body),
                        None => std::future::pending().await,
                    }
                } else {
                    (fake.list.0, fake.list.1.to_string())
                };
                let response = http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(body.into_bytes()))
                    .unwrap();
                Ok::<_, Infallible>(response)
            }
        });
        kube::Client::new(service, "default")
    }
}

fn configmap(resource_version: &str, config_yaml: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "token-srv", "namespace": "go-micro", "resourceVersion": resource_version},
        "data": {"config.yaml": config_yaml, "api_key": "raw-text"},
        "binaryData": {"blob.yaml": "YTogMQ=="}
    })
}

fn event(kind: &str, object: Value) -> String {
    format!("{}\n", json!({"type": kind, "object": object}))
}

fn settings() -> RemoteSettings {
    RemoteSettings {
        namespace: "go-micro".into(),
        label_selector: Some("app=token-srv".into()),
        field_selector: None,
        kubeconfig: None,
    }
}

fn local_config() -> Config {
    Config::from_entries(vec![
        Entry::new(
            "config.yaml",
            "auth:\n  api_key: ${vault.key:some_api_key}\nserver:\n  grpc:\n    timeout: 1s\n",
        )
        .unwrap(),
    ])
    .unwrap()
}

/// Captures everything logged on this thread (the tests run on a current-thread runtime).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .without_time()
            .with_writer(move || logs.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits (up to 10 s) until `condition` holds.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn list_then_watch_applies_rejects_and_keeps_values() {
    let logs = Logs::default();
    let _guard = logs.install();
    let list = json!({
        "apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": "1"},
        "items": [configmap("1", "vault:\n  key: listed\n")]
    });
    let (fake, watch_bodies) = FakeApi::new(200, list);
    let config = local_config();
    let mut updates = config.subscribe();

    let handle = config
        .attach_configmaps(fake.client(), &settings(), Duration::from_millis(20))
        .await
        .unwrap();
    assert_eq!(config.snapshot()["auth"]["api_key"], json!("listed"));
    assert_eq!(config.snapshot()["server"]["grpc"]["timeout"], json!("1s"));
    assert_eq!(
        config.raw("go-micro/token-srv/api_key").as_deref(),
        Some("raw-text")
    );
    assert_eq!(
        config.raw("go-micro/token-srv/blob.yaml"),
        None,
        "binaryData is ignored"
    );
    assert!(updates.has_changed().unwrap());
    updates.borrow_and_update();
    let first_request = fake.requests.lock().unwrap()[0].clone();
    assert!(
        first_request.starts_with("/api/v1/namespaces/go-micro/configmaps?")
            && first_request.contains("labelSelector=app%3Dtoken-srv"),
        "{first_request}"
    );

    watch_bodies
        .send(event(
            "MODIFIED",
            configmap("2", "vault:\n  key: watched\n"),
        ))
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), updates.changed())
        .await
        .expect("the watched update is applied")
        .unwrap();
    assert_eq!(config.snapshot()["auth"]["api_key"], json!("watched"));
    assert!(
        fake.requests
            .lock()
            .unwrap()
            .iter()
            .any(|uri| uri.contains("watch=true") && uri.contains("labelSelector=app%3Dtoken-srv")),
        "the watch uses the same selector"
    );

    watch_bodies
        .send(event("MODIFIED", configmap("3", "vault: [unclosed\n")))
        .unwrap();
    eventually("the bad update to be rejected", || {
        config.last_error().is_some()
    })
    .await;
    assert!(
        config
            .last_error()
            .unwrap()
            .starts_with("go-micro/token-srv/config.yaml: invalid yaml:")
    );
    assert_eq!(config.snapshot()["auth"]["api_key"], json!("watched"));

    watch_bodies
        .send(event("DELETED", configmap("4", "vault: [unclosed\n")))
        .unwrap();
    eventually("the delete to be reported", || {
        logs.text()
            .contains("config map go-micro/token-srv deleted; keeping its last values")
    })
    .await;
    assert_eq!(config.snapshot()["auth"]["api_key"], json!("watched"));
    assert!(
        !updates.has_changed().unwrap(),
        "rejected and deleted publish nothing"
    );
    handle.stop().await;

    let text = logs.text();
    for line in [
        "DEBUG gomicro_config::parse: config loaded: go-micro/token-srv/config.yaml format: yaml",
        "DEBUG gomicro_config::parse: config loaded: go-micro/token-srv/api_key format: raw",
        "INFO gomicro_config::config: config reloaded: go-micro/token-srv/config.yaml",
        "ERROR gomicro_config::config: config update rejected: go-micro/token-srv/config.yaml: invalid yaml:",
        "ERROR gomicro_config::watch: config map go-micro/token-srv deleted; keeping its last values",
    ] {
        assert!(text.contains(line), "missing log line {line:?} in:\n{text}");
    }
}

#[tokio::test]
async fn a_forbidden_list_fails_with_namespace_verb_and_message() {
    let forbidden = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "configmaps is forbidden: User \"system:serviceaccount:go-micro:default\" \
                    cannot list resource \"configmaps\" in API group \"\" in the namespace \"go-micro\"",
        "reason": "Forbidden", "details": {"kind": "configmaps"}, "code": 403
    });
    let (fake, _watch_bodies) = FakeApi::new(403, forbidden);
    let config = local_config();
    let err = config
        .attach_configmaps(fake.client(), &settings(), Duration::from_millis(20))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot list configmaps in namespace go-micro: 403 Forbidden: configmaps is forbidden: \
         User \"system:serviceaccount:go-micro:default\" cannot list resource \"configmaps\" in \
         API group \"\" in the namespace \"go-micro\""
    );
    assert_eq!(config.snapshot()["auth"]["api_key"], json!("some_api_key"));
}

#[tokio::test]
async fn a_bad_listed_configmap_fails_the_attach_and_changes_nothing() {
    let list = json!({
        "apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": "1"},
        "items": [configmap("1", "a: 1\na: 2\n")]
    });
    let (fake, _watch_bodies) = FakeApi::new(200, list);
    let config = local_config();
    let message = config
        .attach_configmaps(fake.client(), &settings(), Duration::from_millis(20))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message
            .starts_with("go-micro/token-srv/config.yaml: invalid yaml: duplicate mapping key: a"),
        "{message}"
    );
    assert!(config.configmap_ids().is_empty());
    assert_eq!(config.raw("go-micro/token-srv/api_key"), None);
}
