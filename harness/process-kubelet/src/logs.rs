//! Container logs: one file per run (`<restartCount>.log`) with one line per output line,
//! `<RFC3339 nanos> <stdout|stderr> <text>`, plus the pure query logic behind
//! `/containerLogs` (tail, since, timestamps, byte limits).

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::{Mutex, watch};

/// Query parameters the API server forwards from `pods/log`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogQuery {
    #[serde(default)]
    pub follow: bool,
    pub tail_lines: Option<i64>,
    #[serde(default)]
    pub timestamps: bool,
    #[serde(default)]
    pub previous: bool,
    pub since_seconds: Option<i64>,
    pub since_time: Option<String>,
    pub limit_bytes: Option<i64>,
}

impl LogQuery {
    /// The earliest timestamp to show, if any (`sinceSeconds` wins over `sinceTime`).
    pub fn since(&self, now: Timestamp) -> Result<Option<Timestamp>, String> {
        if let Some(secs) = self.since_seconds {
            let span = k8s_openapi::jiff::SignedDuration::from_secs(secs.max(0));
            return now.checked_sub(span).map(Some).map_err(|e| e.to_string());
        }
        match &self.since_time {
            Some(text) => text
                .parse::<Timestamp>()
                .map(Some)
                .map_err(|e| format!("invalid sinceTime {text:?}: {e}")),
            None => Ok(None),
        }
    }
}

/// One stored line, borrowed from the file's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLine<'a> {
    pub time: &'a str,
    pub stream: &'a str,
    pub text: &'a str,
}

/// Splits a stored line (without its newline).
pub fn parse_line(line: &str) -> Option<LogLine<'_>> {
    let (time, rest) = line.split_once(' ')?;
    let (stream, text) = rest.split_once(' ').unwrap_or((rest, ""));
    Some(LogLine { time, stream, text })
}

/// Formats a line for storage (with its trailing newline).
pub fn store_line(time: Timestamp, stream: &str, text: &[u8]) -> Vec<u8> {
    let mut out = format!("{time:.9} {stream} ").into_bytes();
    out.extend_from_slice(text.strip_suffix(b"\n").unwrap_or(text));
    out.push(b'\n');
    out
}

/// Renders stored lines as `kubectl logs` prints them.
pub fn render<'a>(
    lines: impl Iterator<Item = &'a str>,
    timestamps: bool,
    since: Option<Timestamp>,
) -> String {
    let mut out = String::new();
    for raw in lines {
        let Some(line) = parse_line(raw) else {
            continue;
        };
        if let Some(since) = since
            && line.time.parse::<Timestamp>().is_ok_and(|t| t < since)
        {
            continue;
        }
        if timestamps {
            out.push_str(line.time);
            out.push(' ');
        }
        out.push_str(line.text);
        out.push('\n');
    }
    out
}

/// The initial answer for a query over the complete lines of `content`.
pub fn select(content: &str, query: &LogQuery, since: Option<Timestamp>) -> String {
    let lines: Vec<&str> = content.lines().collect();
    let skip = match query.tail_lines {
        Some(n) if n >= 0 => lines
            .len()
            .saturating_sub(usize::try_from(n).unwrap_or(usize::MAX)),
        _ => 0,
    };
    render(lines[skip..].iter().copied(), query.timestamps, since)
}

/// Remaining byte budget after `limitBytes`; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteBudget(Option<u64>);

impl ByteBudget {
    /// From the query's `limitBytes`.
    pub fn new(limit: Option<i64>) -> Self {
        Self(limit.map(|l| u64::try_from(l).unwrap_or(0)))
    }

    /// Cuts `chunk` to the remaining budget and charges it.
    pub fn take(&mut self, mut chunk: Vec<u8>) -> Vec<u8> {
        if let Some(left) = &mut self.0 {
            let keep = usize::try_from(*left)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            chunk.truncate(keep);
            *left -= keep as u64;
        }
        chunk
    }

    /// Whether nothing more may be sent.
    pub fn exhausted(&self) -> bool {
        self.0 == Some(0)
    }
}

/// Where a container's runs are logged and what the newest run is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogState {
    /// Log index (restart count) of the newest run; `None` before the first start.
    pub current: Option<u32>,
    /// Whether the newest run is still alive.
    pub running: bool,
    /// Bytes written to the newest run's file (grows while running).
    pub written: u64,
    /// Why the container is not started yet (shown instead of logs).
    pub waiting_reason: Option<String>,
}

/// The file holding run `index` of a container whose logs live in `dir`.
pub fn log_path(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("{index}.log"))
}

/// Appends a run's output to its log file, timestamping each line, and publishes progress.
pub struct LogWriter {
    file: Mutex<tokio::fs::File>,
    state: watch::Sender<LogState>,
}

impl LogWriter {
    /// Creates `<dir>/<index>.log` and marks the run as current and running.
    pub async fn create(
        dir: &Path,
        index: u32,
        state: watch::Sender<LogState>,
    ) -> std::io::Result<Self> {
        tokio::fs::create_dir_all(dir).await?;
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path(dir, index))
            .await?;
        state.send_modify(|s| {
            *s = LogState {
                current: Some(index),
                running: true,
                written: 0,
                waiting_reason: None,
            };
        });
        Ok(Self {
            file: Mutex::new(file),
            state,
        })
    }

    /// Copies lines from `source` until it closes.
    pub async fn pump(&self, source: impl AsyncRead + Unpin, stream: &str) {
        let mut reader = BufReader::with_capacity(64 * 1024, source);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) => return,
                Ok(_) => {
                    let line = store_line(Timestamp::now(), stream, &buf);
                    let mut file = self.file.lock().await;
                    if let Err(err) = file.write_all(&line).await {
                        tracing::warn!(%err, "cannot write container log");
                        return;
                    }
                    drop(file);
                    self.state.send_modify(|s| s.written += line.len() as u64);
                }
                Err(err) => {
                    tracing::debug!(%err, "container output closed");
                    return;
                }
            }
        }
    }

    /// Marks the run as finished (after both streams closed).
    pub async fn finish(&self) {
        let _ = self.file.lock().await.flush().await;
        self.state.send_modify(|s| s.running = false);
    }
}

/// How long a follower waits between checks when no progress notification arrives.
pub const FOLLOW_POLL: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "2026-01-01T00:00:01.000000000Z stdout one\n\
                        2026-01-01T00:00:02.000000000Z stderr two\n\
                        2026-01-01T00:00:03.000000000Z stdout three words\n";

    #[test]
    fn parses_query_from_urlencoded_names() {
        let q: LogQuery = serde_json::from_value(serde_json::json!({
            "follow": true, "tailLines": 5, "timestamps": true, "previous": false,
            "sinceSeconds": 10, "limitBytes": 100
        }))
        .unwrap();
        assert!(q.follow && q.timestamps && !q.previous);
        assert_eq!(
            (q.tail_lines, q.since_seconds, q.limit_bytes),
            (Some(5), Some(10), Some(100))
        );
    }

    #[test]
    fn stores_and_parses_lines() {
        let time: Timestamp = "2026-01-01T00:00:01Z".parse().unwrap();
        let stored = store_line(time, "stdout", b"hello world\n");
        assert_eq!(
            stored,
            b"2026-01-01T00:00:01.000000000Z stdout hello world\n"
        );
        let text = std::str::from_utf8(&stored).unwrap().trim_end();
        assert_eq!(
            parse_line(text),
            Some(LogLine {
                time: "2026-01-01T00:00:01.000000000Z",
                stream: "stdout",
                text: "hello world"
            })
        );
        let empty = store_line(time, "stderr", b"\n");
        assert_eq!(
            parse_line(std::str::from_utf8(&empty).unwrap().trim_end_matches('\n'))
                .unwrap()
                .text,
            ""
        );
    }

    #[test]
    fn select_plain_and_timestamps() {
        assert_eq!(
            select(FILE, &LogQuery::default(), None),
            "one\ntwo\nthree words\n"
        );
        let q = LogQuery {
            timestamps: true,
            tail_lines: Some(1),
            ..Default::default()
        };
        assert_eq!(
            select(FILE, &q, None),
            "2026-01-01T00:00:03.000000000Z three words\n"
        );
    }

    #[test]
    fn tail_zero_and_oversized() {
        let zero = LogQuery {
            tail_lines: Some(0),
            ..Default::default()
        };
        assert_eq!(select(FILE, &zero, None), "");
        let big = LogQuery {
            tail_lines: Some(100),
            ..Default::default()
        };
        assert_eq!(select(FILE, &big, None), "one\ntwo\nthree words\n");
    }

    #[test]
    fn since_filters_old_lines() {
        let q = LogQuery {
            since_time: Some("2026-01-01T00:00:02Z".into()),
            ..Default::default()
        };
        let since = q.since(Timestamp::now()).unwrap();
        assert_eq!(select(FILE, &q, since), "two\nthree words\n");
        let now: Timestamp = "2026-01-01T00:00:04Z".parse().unwrap();
        let q = LogQuery {
            since_seconds: Some(1),
            ..Default::default()
        };
        assert_eq!(select(FILE, &q, q.since(now).unwrap()), "three words\n");
        let bad = LogQuery {
            since_time: Some("yesterday".into()),
            ..Default::default()
        };
        assert!(bad.since(now).is_err());
    }

    #[test]
    fn byte_budget_truncates_and_exhausts() {
        let mut budget = ByteBudget::new(Some(5));
        assert_eq!(budget.take(b"abc".to_vec()), b"abc");
        assert_eq!(budget.take(b"defg".to_vec()), b"de");
        assert!(budget.exhausted());
        assert_eq!(budget.take(b"x".to_vec()), b"");
        let mut unlimited = ByteBudget::new(None);
        assert_eq!(unlimited.take(b"abc".to_vec()), b"abc");
        assert!(!unlimited.exhausted());
    }

    #[tokio::test]
    async fn writer_timestamps_lines_and_tracks_progress() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = watch::channel(LogState::default());
        let writer = LogWriter::create(dir.path(), 3, tx).await.unwrap();
        assert_eq!(rx.borrow().current, Some(3));
        assert!(rx.borrow().running);
        writer
            .pump(&b"first\nsecond without newline"[..], "stdout")
            .await;
        writer.finish().await;
        let content = std::fs::read_to_string(log_path(dir.path(), 3)).unwrap();
        assert_eq!(
            select(&content, &LogQuery::default(), None),
            "first\nsecond without newline\n"
        );
        let state = rx.borrow().clone();
        assert!(!state.running);
        assert_eq!(state.written, content.len() as u64);
    }
}
