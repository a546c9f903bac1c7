//! Normalisation of observations so that snapshots and reports are stable across runs:
//! pod-name hashes, IPs, tokens and times are replaced by placeholders.

use serde_json::{Map, Value, json};

/// `user-srv-5fc4d67dd5-sm9g4` → `user-srv-[hash]`; other names stay.
pub(crate) fn pod_name(name: &str, deployment: &str) -> String {
    match name
        .strip_prefix(deployment)
        .and_then(|rest| rest.strip_prefix('-'))
    {
        Some(_) => format!("{deployment}-[hash]"),
        None => name.to_string(),
    }
}

/// An instance id `<pod>.<service>` with the pod part normalised.
pub(crate) fn instance_id(id: &str, deployment: &str) -> String {
    match id.split_once('.') {
        Some((pod, service)) => format!("{}.{service}", pod_name(pod, deployment)),
        None => pod_name(id, deployment),
    }
}

/// `grpc://10.244.0.7:9090` → `grpc://[ip]:9090`.
pub(crate) fn endpoint(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let port = rest.rsplit_once(':').map(|(_, p)| p).unwrap_or("");
    format!("{scheme}://[ip]:{port}")
}

/// A log line without what differs from run to run: a leading timestamp (RFC 3339 or
/// logfmt `ts=`/`time=`), then the level and target words as written.
pub(crate) fn log_message(line: &str) -> String {
    let mut rest = line.trim();
    loop {
        let (word, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        let timestamp = word.starts_with(|c: char| c.is_ascii_digit()) && word.contains(':');
        let logfmt_time = word.starts_with("ts=") || word.starts_with("time=");
        if !(timestamp || logfmt_time) || tail.is_empty() {
            return rest.to_string();
        }
        rest = tail.trim_start();
    }
}

/// A resolver instance object with id, endpoints and version normalised.
pub(crate) fn resolver_instance(instance: &Value, deployment: &str) -> Value {
    let mut out = Map::new();
    for (key, value) in instance.as_object().into_iter().flatten() {
        let normalised = match key.as_str() {
            "id" => json!(instance_id(value.as_str().unwrap_or_default(), deployment)),
            "version" => json!("[version]"),
            "endpoints" => Value::Array(
                value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| json!(endpoint(e.as_str().unwrap_or_default())))
                    .collect(),
            ),
            _ => value.clone(),
        };
        out.insert(key.clone(), normalised);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_hashes_and_ips_are_hidden() {
        assert_eq!(
            pod_name("user-srv-5fc4d67dd5-sm9g4", "user-srv"),
            "user-srv-[hash]"
        );
        assert_eq!(pod_name("other", "user-srv"), "other");
        assert_eq!(
            instance_id("user-srv-5fc4d67dd5-sm9g4.go-micro.user-srv", "user-srv"),
            "user-srv-[hash].go-micro.user-srv"
        );
        assert_eq!(endpoint("grpc://10.244.0.9:9090"), "grpc://[ip]:9090");
        assert_eq!(endpoint("grpc://[fd00::9]:9090"), "grpc://[ip]:9090");
    }

    #[test]
    fn log_messages_lose_their_timestamps() {
        assert_eq!(
            log_message("2026-11-25T10:00:00.123Z  WARN admin_srv: skipping pod x"),
            "WARN admin_srv: skipping pod x"
        );
        assert_eq!(
            log_message("INFO ts=2026-11-25T10:00:00Z msg=hello"),
            "INFO ts=2026-11-25T10:00:00Z msg=hello"
        );
        assert_eq!(
            log_message("ts=1 caller=a.go:3 msg=x"),
            "caller=a.go:3 msg=x"
        );
    }

    #[test]
    fn resolver_instances_keep_key_order() {
        let raw: Value = serde_json::from_str(
            r#"{"id":"user-srv-5fc4d67dd5-sm9g4.go-micro.user-srv","name":"go-micro.user-srv","version":"0723caf","metadata":{},"endpoints":["grpc://10.244.0.9:9090"]}"#,
        )
        .unwrap();
        let text = serde_json::to_string(&resolver_instance(&raw, "user-srv")).unwrap();
        assert_eq!(
            text,
            r#"{"id":"user-srv-[hash].go-micro.user-srv","name":"go-micro.user-srv","version":"[version]","metadata":{},"endpoints":["grpc://[ip]:9090"]}"#
        );
    }
}
