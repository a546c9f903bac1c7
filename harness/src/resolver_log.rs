//! Reading admin-srv's `[resolver] update instances: <JSON>` lines (CONTRACT.md §3) wherever
//! the message stands in a line: the reference's plain lines, or Go-Micro's logfmt, where the
//! message may be a quoted value (`msg="[resolver] update instances: [{\"id\":...}]"`).

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Marker of an applied resolver update.
pub(crate) const UPDATE_MARKER: &str = "[resolver] update instances: ";
/// Marker of a refused empty update.
pub(crate) const ZERO_MARKER: &str = "[resolver] Zero endpoint found,refused to write";

/// Key order every instance object must have.
pub(crate) const KEY_ORDER: [&str; 5] = ["id", "name", "version", "metadata", "endpoints"];

/// Every applied update in the log, oldest first, as JSON arrays of instances.
pub(crate) fn updates(log: &str) -> Result<Vec<Vec<Value>>> {
    let mut out = Vec::new();
    for (number, line) in log.lines().enumerate() {
        let Some(start) = line.find(UPDATE_MARKER) else {
            continue;
        };
        let after = &line[start + UPDATE_MARKER.len()..];
        let (json, value) = first_json(after)
            .with_context(|| format!("log line {}: update is not JSON: {after}", number + 1))?;
        let json = json.as_str();
        let Value::Array(instances) = value else {
            bail!("log line {}: update is not a JSON array", number + 1)
        };
        for instance in &instances {
            let keys: Vec<&str> = instance
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k.as_str())
                .collect();
            if keys != KEY_ORDER {
                bail!(
                    "log line {}: instance keys are {keys:?}, expected {KEY_ORDER:?} in that order",
                    number + 1
                );
            }
            if json.contains(": ") || json.contains(", ") {
                bail!("log line {}: update JSON has whitespace", number + 1);
            }
        }
        out.push(instances);
    }
    Ok(out)
}

/// The first JSON value of `text` and its source, read as written or, inside a quoted logfmt
/// value, after undoing the quoting (`\"` → `"`, `\\` → `\`, up to the closing quote).
fn first_json(text: &str) -> Result<(String, Value)> {
    let parse = |source: &str| -> Result<(String, Value)> {
        let mut values = serde_json::Deserializer::from_str(source).into_iter::<Value>();
        let value = values.next().context("no JSON value")??;
        Ok((source[..values.byte_offset()].trim().to_string(), value))
    };
    parse(text).or_else(|plain| {
        let mut unquoted = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => unquoted.extend(chars.next()),
                '"' => break,
                other => unquoted.push(other),
            }
        }
        parse(&unquoted).map_err(|_| plain)
    })
}

/// The latest applied update whose instances all have service name `name`.
pub(crate) fn latest_for<'a>(updates: &'a [Vec<Value>], name: &str) -> Option<&'a Vec<Value>> {
    updates
        .iter()
        .rev()
        .find(|update| !update.is_empty() && update.iter().all(|i| i["name"] == name))
}

/// Sorted instance ids of an update.
pub(crate) fn ids(update: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = update
        .iter()
        .filter_map(|i| i["id"].as_str().map(String::from))
        .collect();
    ids.sort();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = concat!(
        "2026-11-25T10:00:00Z  INFO admin_srv: [resolver] update instances: [{\"id\":\"u-1.go-micro.user-srv\",\"name\":\"go-micro.user-srv\",\"version\":\"v\",\"metadata\":{},\"endpoints\":[\"grpc://10.244.0.9:9090\"]}]\n",
        "2026-11-25T10:00:01Z  WARN admin_srv: [resolver] Zero endpoint found,refused to write, instances: []\n",
        "2026-11-25T10:00:02Z  INFO admin_srv: [resolver] update instances: [{\"id\":\"t-1.go-micro.token-srv\",\"name\":\"go-micro.token-srv\",\"version\":\"v\",\"metadata\":{},\"endpoints\":[\"grpc://10.244.0.8:9090\"]}]\n",
    );

    #[test]
    fn parses_updates_per_service() {
        let updates = updates(LOG).unwrap();
        assert_eq!(updates.len(), 2);
        assert_eq!(
            ids(latest_for(&updates, "go-micro.user-srv").unwrap()),
            ["u-1.go-micro.user-srv"]
        );
        assert!(latest_for(&updates, "go-micro.other").is_none());
    }

    #[test]
    fn logfmt_lines_are_read_quoted_or_bare() {
        let quoted = r#"INFO ts=2026-11-25T10:00:00Z service.id=a msg="[resolver] update instances: [{\"id\":\"u-1.go-micro.user-srv\",\"name\":\"go-micro.user-srv\",\"version\":\"v\",\"metadata\":{},\"endpoints\":[\"grpc://10.244.0.9:9090\"]}]" caller=resolver.go:80"#;
        let bare = r#"INFO service.id=a msg=[resolver] update instances: [{"id":"t-1.go-micro.token-srv","name":"go-micro.token-srv","version":"v","metadata":{},"endpoints":[]}] caller=x"#;
        let updates = updates(&format!("{quoted}\n{bare}\n")).unwrap();
        assert_eq!(ids(&updates[0]), ["u-1.go-micro.user-srv"]);
        assert_eq!(ids(&updates[1]), ["t-1.go-micro.token-srv"]);
    }

    #[test]
    fn wrong_key_order_is_reported() {
        let log = "[resolver] update instances: [{\"name\":\"n\",\"id\":\"i\",\"version\":\"v\",\"metadata\":{},\"endpoints\":[]}]";
        let err = updates(log).unwrap_err().to_string();
        assert!(err.contains("expected"), "{err}");
    }
}
