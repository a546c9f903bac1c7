use std::sync::Arc;

use futures::channel::mpsc;
use serde_json::{Value, json};

use super::*;
use crate::Entry;

const DEBOUNCE: Duration = Duration::from_millis(200);

fn local_config() -> Config {
    Config::from_entries(vec![
        Entry::new(
            "config.yaml",
            "auth:\n  api_key: some_api_key\nserver:\n  grpc:\n    timeout: 1s\n",
        )
        .unwrap(),
    ])
    .unwrap()
}

fn configmap(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.namespace = Some("go-micro".into());
    cm.metadata.name = Some(name.into());
    cm.data = Some(
        data.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    cm
}

fn api_key_update(key: &str) -> watcher::Event<ConfigMap> {
    watcher::Event::Apply(configmap(
        "token-srv",
        &[("config.yaml", &format!("auth:\n  api_key: {key}\n"))],
    ))
}

fn api_key(config: &Config) -> Value {
    config.snapshot()["auth"]["api_key"].clone()
}

#[test]
fn a_burst_of_updates_publishes_once_with_the_last_value() {
    let config = local_config();
    let mut rx = config.subscribe();
    let mut reloader = Reloader::new(config.clone(), "go-micro");
    for i in 0..20 {
        reloader.handle(api_key_update(&format!("key-{i}")));
    }
    assert!(
        !rx.has_changed().unwrap(),
        "nothing applies before the flush"
    );
    let outcome = reloader.flush().unwrap();
    assert!(outcome.published);
    assert_eq!(outcome.changed_keys, ["go-micro/token-srv/config.yaml"]);
    assert!(rx.has_changed().unwrap());
    assert_eq!(rx.borrow_and_update()["auth"]["api_key"], json!("key-19"));
    assert!(!rx.has_changed().unwrap(), "exactly one publish");
    assert_eq!(reloader.flush(), None, "the batch was consumed");
    // Local values not overridden survive the merge.
    assert_eq!(config.snapshot()["server"]["grpc"]["timeout"], json!("1s"));
}

#[test]
fn a_malformed_update_is_rejected_and_the_previous_tree_kept() {
    let config = local_config();
    let mut reloader = Reloader::new(config.clone(), "go-micro");
    reloader.handle(api_key_update("good"));
    reloader.flush();
    let good = config.snapshot();
    let rx = config.subscribe();

    reloader.handle(watcher::Event::Apply(configmap(
        "token-srv",
        &[("config.yaml", "auth:\n  api_key: [unclosed\n")],
    )));
    let outcome = reloader.flush().unwrap();
    assert!(!outcome.published);
    assert_eq!(outcome.rejected.len(), 1);
    assert!(
        outcome.rejected[0].starts_with("go-micro/token-srv/config.yaml: invalid yaml:"),
        "{:?}",
        outcome.rejected
    );
    assert_eq!(config.snapshot(), good);
    assert!(!rx.has_changed().unwrap());
    assert_eq!(config.last_error(), Some(outcome.rejected[0].clone()));

    reloader.handle(api_key_update("fixed"));
    assert!(reloader.flush().unwrap().published);
    assert_eq!(api_key(&config), json!("fixed"));
    assert_eq!(
        config.last_error(),
        None,
        "an accepted update clears the error"
    );
}

#[test]
fn a_bad_configmap_does_not_block_a_good_one_in_the_same_batch() {
    let config = local_config();
    let mut reloader = Reloader::new(config.clone(), "go-micro");
    reloader.handle(api_key_update("new"));
    reloader.handle(watcher::Event::Apply(configmap(
        "web",
        &[("nginx.conf", "x")],
    )));
    let outcome = reloader.flush().unwrap();
    assert!(outcome.published);
    assert_eq!(
        outcome.rejected,
        [
            "go-micro/web/nginx.conf: unknown format `.conf` (expected .yaml, .yml, .json or no extension)"
        ]
    );
    assert_eq!(api_key(&config), json!("new"));
    assert_eq!(config.last_error(), Some(outcome.rejected[0].clone()));
}

#[test]
fn a_validator_rejection_keeps_the_previous_tree() {
    let config = local_config();
    config.set_validator(|tree| match &tree["auth"]["api_key"] {
        Value::String(_) => Ok(()),
        other => Err(format!("auth.api_key must be a string, found {other}")),
    });
    let mut reloader = Reloader::new(config.clone(), "go-micro");
    reloader.handle(watcher::Event::Apply(configmap(
        "token-srv",
        &[("config.yaml", "auth:\n  api_key: 42\n")],
    )));
    let outcome = reloader.flush().unwrap();
    assert!(!outcome.published);
    assert_eq!(
        outcome.rejected,
        [
            "go-micro/token-srv/config.yaml: rejected by validator: auth.api_key must be a string, found 42"
        ]
    );
    assert_eq!(api_key(&config), json!("some_api_key"));
    assert_eq!(
        config.configmap_ids(),
        [],
        "the rejected ConfigMap was not stored"
    );
}

#[test]
fn an_unresolvable_placeholder_rejects_the_update() {
    let config = local_config();
    let mut reloader = Reloader::new(config.clone(), "go-micro");
    reloader.handle(watcher::Event::Apply(configmap(
        "token-srv",
        &[("config.yaml", "auth:\n  api_key: ${vault.key}\n")],
    )));
    let outcome = reloader.flush().unwrap();
    assert_eq!(
        outcome.rejected,
        [
            "go-micro/token-srv/config.yaml: placeholder at `auth.api_key`: ${vault.key} is not set and has no default"
        ]
    );
    assert_eq!(api_key(&config), json!("some_api_key"));
}

#[test]
fn deletes_keep_the_last_values() {
    let config = local_config();
    let mut reloader = Reloader::new(config.clone(), "go-micro");
    let cm = configmap(
        "token-srv",
        &[("config.yaml", "auth:\n  api_key: remote\n")],
    );
    reloader.handle(watcher::Event::Apply(cm.clone()));
    reloader.flush();
    let rx = config.subscribe();
    reloader.handle(watcher::Event::Delete(cm));
    assert_eq!(reloader.flush(), None, "a delete changes nothing");
    assert_eq!(api_key(&config), json!("remote"));
    assert!(!rx.has_changed().unwrap());
}

#[test]
fn a_relist_without_a_configmap_keeps_its_values() {
    let config = local_config();
    let mut reloader = Reloader::new(config.clone(), "go-micro");
    reloader.handle(api_key_update("remote"));
    reloader.handle(watcher::Event::Apply(configmap(
        "other",
        &[("x.yaml", "x: 1\n")],
    )));
    reloader.flush();
    reloader.handle(watcher::Event::Init);
    reloader.handle(watcher::Event::InitApply(configmap(
        "other",
        &[("x.yaml", "x: 2\n")],
    )));
    reloader.handle(watcher::Event::InitDone);
    reloader.flush();
    assert_eq!(api_key(&config), json!("remote"));
    assert_eq!(config.snapshot()["x"], json!(2));
}

#[test]
fn unchanged_content_does_not_publish() {
    let config = local_config();
    let mut reloader = Reloader::new(config.clone(), "go-micro");
    reloader.handle(api_key_update("same"));
    reloader.flush();
    let rx = config.subscribe();
    reloader.handle(api_key_update("same"));
    let outcome = reloader.flush().unwrap();
    assert_eq!(outcome, ApplyOutcome::default());
    // New text, same tree (a comment): stored, but no new snapshot.
    reloader.handle(watcher::Event::Apply(configmap(
        "token-srv",
        &[("config.yaml", "# rotated\nauth:\n  api_key: same\n")],
    )));
    let outcome = reloader.flush().unwrap();
    assert_eq!(outcome.changed_keys, ["go-micro/token-srv/config.yaml"]);
    assert!(!outcome.published);
    assert!(!rx.has_changed().unwrap());
}

#[test]
fn raw_entries_follow_updates_without_touching_the_tree() {
    let config = local_config();
    let mut reloader = Reloader::new(config.clone(), "go-micro");
    reloader.handle(watcher::Event::Apply(configmap(
        "token-srv",
        &[("api_key", "v1")],
    )));
    reloader.flush();
    assert_eq!(
        config.raw("go-micro/token-srv/api_key").as_deref(),
        Some("v1")
    );
    assert_eq!(api_key(&config), json!("some_api_key"));
}

/// Records every snapshot a subscriber sees, with the (paused) time it saw it.
fn record_publishes(config: &Config) -> JoinHandle<Vec<(Instant, Arc<Value>)>> {
    let mut rx = config.subscribe();
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while rx.changed().await.is_ok() {
            seen.push((Instant::now(), rx.borrow_and_update().clone()));
        }
        seen
    })
}

#[tokio::test(start_paused = true)]
async fn run_debounces_a_burst_into_one_publish() {
    let config = local_config();
    let publishes = record_publishes(&config);
    let (tx, rx) = mpsc::unbounded();
    let task = tokio::spawn(run(rx, Reloader::new(config.clone(), "go-micro"), DEBOUNCE));
    let mut last_event = Instant::now();
    for i in 0..20 {
        tx.unbounded_send(Ok(api_key_update(&format!("key-{i}"))))
            .unwrap();
        last_event = Instant::now();
        tokio::time::advance(DEBOUNCE / 4).await;
    }
    // Wait (in paused time) for the quiet period to pass, then end the stream.
    tokio::time::sleep_until(last_event + DEBOUNCE * 2).await;
    drop(tx);
    task.await.unwrap();
    drop(config);
    let seen = publishes.await.unwrap();
    assert_eq!(seen.len(), 1, "one publish for the burst");
    let (at, snapshot) = &seen[0];
    assert_eq!(snapshot["auth"]["api_key"], json!("key-19"));
    assert!(
        *at >= last_event + DEBOUNCE,
        "published after the quiet period"
    );
}

#[tokio::test(start_paused = true)]
async fn run_flushes_a_never_ending_burst_at_the_cap() {
    let config = local_config();
    let publishes = record_publishes(&config);
    let (tx, rx) = mpsc::unbounded();
    let start = Instant::now();
    let task = tokio::spawn(run(rx, Reloader::new(config.clone(), "go-micro"), DEBOUNCE));
    for i in 0..50 {
        tx.unbounded_send(Ok(api_key_update(&format!("key-{i}"))))
            .unwrap();
        tokio::time::advance(DEBOUNCE / 2).await;
    }
    drop(tx);
    task.await.unwrap();
    drop(config);
    let seen = publishes.await.unwrap();
    assert!(
        seen.len() >= 2,
        "the cap split the burst: {} publishes",
        seen.len()
    );
    let (first_at, _) = &seen[0];
    assert!(
        *first_at <= start + DEBOUNCE * (MAX_DELAY_FACTOR + 1),
        "first publish waited too long"
    );
    assert_eq!(seen.last().unwrap().1["auth"]["api_key"], json!("key-49"));
}

#[tokio::test(start_paused = true)]
async fn run_survives_stream_errors_and_drops_stop_the_watch() {
    let config = local_config();
    let (tx, rx) = mpsc::unbounded();
    let task = tokio::spawn(run(rx, Reloader::new(config.clone(), "go-micro"), DEBOUNCE));
    let handle = WatchHandle { task: Some(task) };
    let mut updates = config.subscribe();
    tx.unbounded_send(Err(watcher::Error::NoResourceVersion))
        .unwrap();
    tx.unbounded_send(Ok(api_key_update("after-error")))
        .unwrap();
    updates.changed().await.unwrap();
    assert_eq!(api_key(&config), json!("after-error"));
    assert!(!handle.is_finished());
    handle.stop().await;
    assert!(
        tx.unbounded_send(Ok(api_key_update("late"))).is_err(),
        "the stream was dropped"
    );
}
