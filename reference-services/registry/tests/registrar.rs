//! The registrar's requests against an in-process fake API server.

use std::sync::{Arc, Mutex};

use gomicro_registry::{PodIdentity, Registrar, RegistryError, ServiceInstance};
use http::{Request, Response, StatusCode};
use kube::client::Body;

/// One request as the fake API server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    content_type: String,
    body: serde_json::Value,
}

/// A kube client whose every request is recorded and answered with `status` and `reply`.
fn fake_client(
    status: StatusCode,
    reply: serde_json::Value,
) -> (kube::Client, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let service = tower::service_fn(move |request: Request<Body>| {
        let (log, reply) = (log.clone(), reply.clone());
        async move {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await?;
            log.lock().unwrap().push(Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default(),
                body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
            });
            let response = Response::builder()
                .status(status)
                .header("content-type", "application/json");
            Ok::<_, kube::Error>(
                response
                    .body(Body::from(reply.to_string().into_bytes()))
                    .unwrap(),
            )
        }
    });
    (kube::Client::new(service, "default"), seen)
}

fn pod_identity() -> PodIdentity {
    PodIdentity {
        name: "user-srv-5fc4d67dd5-sm9g4".into(),
        namespace: "go-micro".into(),
    }
}

fn user_instance() -> ServiceInstance {
    ServiceInstance {
        id: "user-srv-5fc4d67dd5-sm9g4.go-micro.user-srv".into(),
        name: "go-micro.user-srv".into(),
        version: "0.1.0".into(),
        metadata: Default::default(),
        endpoints: vec!["grpc://10.244.0.9:9090".into()],
    }
}

fn pod_reply() -> serde_json::Value {
    serde_json::json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "user-srv-5fc4d67dd5-sm9g4", "namespace": "go-micro" } })
}

#[tokio::test]
async fn register_sends_one_strategic_merge_patch_of_the_own_pod() {
    let (client, seen) = fake_client(StatusCode::OK, pod_reply());
    Registrar::new(client, pod_identity())
        .register(&user_instance())
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "PATCH");
    assert_eq!(
        seen[0].path,
        "/api/v1/namespaces/go-micro/pods/user-srv-5fc4d67dd5-sm9g4"
    );
    assert_eq!(
        seen[0].content_type,
        "application/strategic-merge-patch+json"
    );
    assert_eq!(
        seen[0].body.to_string(),
        r#"{"metadata":{"labels":{"gomicro-service-id":"user-srv-5fc4d67dd5-sm9g4.go-micro.user-srv","gomicro-service-app":"go-micro.user-srv","gomicro-service-version":"0.1.0"},"annotations":{"gomicro-service-metadata":"{}","gomicro-service-protocols":"{\"9090\":\"grpc\"}"}}}"#
    );
}

#[tokio::test]
async fn deregister_clears_the_keys() {
    let (client, seen) = fake_client(StatusCode::OK, pod_reply());
    Registrar::new(client, pod_identity())
        .deregister()
        .await
        .unwrap();
    let body = &seen.lock().unwrap()[0].body;
    assert_eq!(body["metadata"]["labels"]["gomicro-service-app"], "");
    assert_eq!(
        body["metadata"]["annotations"]["gomicro-service-protocols"],
        "{}"
    );
}

#[tokio::test]
async fn forbidden_names_the_missing_permission() {
    let message = "pods \"user-srv-5fc4d67dd5-sm9g4\" is forbidden: User \"system:serviceaccount:go-micro:default\" cannot patch resource \"pods\" in API group \"\" in the namespace \"go-micro\"";
    let status = serde_json::json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": "Forbidden", "code": 403 });
    let (client, _) = fake_client(StatusCode::FORBIDDEN, status);
    let error = Registrar::new(client, pod_identity())
        .register(&user_instance())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RegistryError::Forbidden {
                verb: "patch",
                resource: "pods",
                ..
            }
        ),
        "{error:?}"
    );
    insta::assert_snapshot!(error.to_string());
}
