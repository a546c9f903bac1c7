//! The pod's service-account files: a TokenRequest bound to the pod, the cluster CA and the
//! namespace, written atomically into the directory bound at
//! `/var/run/secrets/kubernetes.io/serviceaccount`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;

use crate::records::write_atomic;

/// Lifetime asked for (the ServiceAccount admission plugin uses 3607 s for projected tokens).
pub const TOKEN_TTL_SECONDS: i64 = 3607;

/// Whether the pod gets service-account files.
pub fn wants_token(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .is_some_and(|s| s.automount_service_account_token != Some(false))
}

/// When to refresh a token issued at `issued` that expires at `expires`: at 80 % of its life.
pub fn refresh_after(issued: Timestamp, expires: Timestamp) -> Duration {
    let life = expires.duration_since(issued).as_secs_f64().max(0.0);
    Duration::from_secs_f64(life * 0.8)
}

/// Requests a token for the pod's service account, bound to the pod.
pub async fn request_token(
    client: &kube::Client,
    pod: &Pod,
) -> anyhow::Result<(String, Timestamp)> {
    let namespace = pod
        .metadata
        .namespace
        .as_deref()
        .context("pod has no namespace")?;
    let name = pod.metadata.name.clone().context("pod has no name")?;
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(TOKEN_TTL_SECONDS),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(name),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let response = api
        .create_token_request(&account, &PostParams::default(), &request)
        .await
        .with_context(|| format!("TokenRequest for serviceaccount {namespace}/{account}"))?;
    let status = response.status.context("TokenRequest returned no status")?;
    Ok((status.token, status.expiration_timestamp.0))
}

/// Writes `token`, `ca.crt` and `namespace` into `dir` (each atomically).
pub fn write_files(dir: &Path, token: &str, ca_pem: &str, namespace: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {dir:?}"))?;
    write_atomic(&dir.join("ca.crt"), ca_pem.as_bytes(), 0o644)?;
    write_atomic(&dir.join("namespace"), namespace.as_bytes(), 0o644)?;
    write_atomic(&dir.join("token"), token.as_bytes(), 0o644)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodSpec;

    use super::*;

    #[test]
    fn refreshes_at_eighty_percent() {
        let issued = Timestamp::from_second(1_000).unwrap();
        let expires = Timestamp::from_second(4_600).unwrap();
        assert_eq!(refresh_after(issued, expires), Duration::from_secs(2_880));
        assert_eq!(refresh_after(expires, issued), Duration::ZERO);
    }

    #[test]
    fn automount_false_disables_token() {
        let pod = |automount| Pod {
            spec: Some(PodSpec {
                automount_service_account_token: automount,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(wants_token(&pod(None)));
        assert!(wants_token(&pod(Some(true))));
        assert!(!wants_token(&pod(Some(false))));
    }

    #[test]
    fn writes_three_files() {
        let dir = tempfile::tempdir().unwrap();
        write_files(dir.path(), "tok", "PEM", "shop").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("token")).unwrap(),
            "tok"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ca.crt")).unwrap(),
            "PEM"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("namespace")).unwrap(),
            "shop"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers.len(), 3);
    }
}
