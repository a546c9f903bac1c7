//! Fault-injection requests to a running cluster daemon over `<state_dir>/control.sock`.
//!
//! One request per connection, one line each way: the client writes
//! `restart <binary name>` (e.g. `restart kube-apiserver`), the daemon restarts that component
//! with [`LocalCluster::restart`] and answers `ok` or `error <message>`. The socket is
//! readable and writable by root only.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::cluster::LocalCluster;
use crate::component::Component;

/// How long a client may take to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client waits for a restart to finish (the slowest component needs 90 s).
const RESTART_TIMEOUT: Duration = Duration::from_secs(150);
/// Longest accepted request line.
const MAX_REQUEST: u64 = 256;

/// A parsed control request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    /// SIGKILL a component and start it again.
    Restart(Component),
}

impl Request {
    /// Parses one request line (without its newline).
    pub(crate) fn parse(line: &str) -> anyhow::Result<Request> {
        match line.trim().split_once(' ') {
            Some(("restart", name)) => Component::from_binary_name(name.trim())
                .map(Request::Restart)
                .with_context(|| format!("unknown component {:?}", name.trim())),
            _ => bail!(
                "unknown request {:?} (expected `restart <component>`)",
                line.trim()
            ),
        }
    }

    fn render(self) -> String {
        match self {
            Request::Restart(component) => format!("restart {}\n", component.binary_name()),
        }
    }
}

/// Binds the control socket (replacing a stale one) with mode 0600.
pub(crate) fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    Ok(listener)
}

/// Serves one connection: reads the request, carries it out on `cluster`, answers.
pub(crate) async fn handle(stream: UnixStream, cluster: &LocalCluster) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_REQUEST));
    let answer = match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await {
        Err(_) => "error no request within 5 s".to_string(),
        Ok(Err(err)) => format!("error reading the request: {err}"),
        Ok(Ok(_)) => match Request::parse(&line) {
            Err(err) => format!("error {err:#}"),
            Ok(Request::Restart(component)) => {
                eprintln!("[local] control: restarting {component}");
                match cluster.restart(component).await {
                    Ok(()) => "ok".to_string(),
                    Err(err) => format!("error {}", one_line(&format!("{err:#}"))),
                }
            }
        },
    };
    let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Asks the daemon listening on `path` to carry out `request` and waits for its answer.
pub(crate) async fn send(path: &Path, request: Request) -> anyhow::Result<()> {
    let mut stream = UnixStream::connect(path).await.with_context(|| {
        format!(
            "cannot reach the cluster daemon's control socket {}",
            path.display()
        )
    })?;
    stream.write_all(request.render().as_bytes()).await?;
    let mut answer = String::new();
    tokio::time::timeout(
        RESTART_TIMEOUT,
        BufReader::new(stream).read_line(&mut answer),
    )
    .await
    .with_context(|| format!("the cluster daemon did not answer within {RESTART_TIMEOUT:?}"))??;
    match answer.trim() {
        "ok" => Ok(()),
        "" => bail!("the cluster daemon closed the control connection without an answer"),
        other => bail!(
            "the cluster daemon refused {:?}: {}",
            request.render().trim(),
            other.strip_prefix("error ").unwrap_or(other)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_bad_ones_are_named() {
        for component in Component::ALL {
            let request = Request::Restart(component);
            assert_eq!(Request::parse(&request.render()).unwrap(), request);
        }
        let err = Request::parse("restart kubectl").unwrap_err().to_string();
        assert!(err.contains("kubectl"), "{err}");
        let err = Request::parse("reboot").unwrap_err().to_string();
        assert!(err.contains("reboot"), "{err}");
    }

    #[tokio::test]
    async fn a_refusal_reaches_the_client_with_its_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let listener = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            BufReader::new(read).read_line(&mut line).await.unwrap();
            assert_eq!(line, "restart etcd\n");
            write.write_all(b"error etcd is busy\n").await.unwrap();
        });
        let err = send(&path, Request::Restart(Component::Etcd))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("etcd is busy"), "{err}");
        server.await.unwrap();
    }
}
