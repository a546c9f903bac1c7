//! The program of the harness's own pod image, which the harness supplies on every backend like
//! the implementation's images. The cases' pods run it, so no case depends on a tool inside the
//! implementation's image:
//!
//! - `harness-pod idle` runs until it is stopped (SIGTERM or SIGINT), listening nowhere (the
//!   foreign and never-Ready pods);
//! - `harness-pod intruder GRPC_PORT RECORD_PORT` serves `grpc.health.v1` SERVING on
//!   `GRPC_PORT` (and UNIMPLEMENTED for every other method) and records the path of every gRPC
//!   call it receives, never a body; `GET /calls` on `RECORD_PORT` answers the record as JSON
//!   (`{"calls":[{"method":"/pkg.Service/Method","probe":false}]}`, `probe` when the call
//!   carried the harness's [`PROBE_HEADER`]) and `GET /ready` answers 200 once both listen
//!   (SEC-003's intruder in another namespace).

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;

/// Metadata key the harness sets on its own calls to the intruder, so the record tells them
/// apart (the same name as SEC-003's).
const PROBE_HEADER: &str = "conformance-probe";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let outcome = match args[..] {
        ["idle"] => run(idle()),
        ["intruder", grpc, record] => match (grpc.parse(), record.parse()) {
            (Ok(grpc), Ok(record)) => run(intruder(grpc, record)),
            _ => Err(format!(
                "ports must be numbers, got {grpc:?} and {record:?}"
            )),
        },
        _ => Err("usage: harness-pod idle | harness-pod intruder GRPC_PORT RECORD_PORT".into()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("harness-pod: {error}");
            ExitCode::from(2)
        }
    }
}

/// Runs `mode` on a single-threaded runtime.
fn run(mode: impl Future<Output = std::io::Result<()>>) -> Result<(), String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start: {error}"))?
        .block_on(mode)
        .map_err(|error| error.to_string())
}

/// Resolves on SIGTERM or SIGINT.
async fn stopped() -> std::io::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}

/// Waits for SIGTERM or SIGINT.
async fn idle() -> std::io::Result<()> {
    eprintln!("harness-pod: idle until stopped");
    stopped().await
}

/// One gRPC call received: its method path, and whether the harness sent it.
#[derive(Clone, Serialize)]
struct Call {
    method: String,
    probe: bool,
}

/// Every call received so far.
#[derive(Clone, Default)]
struct Record {
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Record {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Records the path of a gRPC call (never its body), then lets the routes answer it.
async fn record_call(State(record): State<Record>, request: Request, next: Next) -> Response {
    let call = Call {
        method: request.uri().path().to_string(),
        probe: request.headers().contains_key(PROBE_HEADER),
    };
    eprintln!(
        "harness-pod: gRPC call {}{}",
        call.method,
        if call.probe { " (harness probe)" } else { "" }
    );
    record
        .calls
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(call);
    next.run(request).await
}

/// Serves health SERVING on `grpc_port` and the record on `record_port` until stopped.
async fn intruder(grpc_port: u16, record_port: u16) -> std::io::Result<()> {
    let any = |port| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let grpc_listener = TcpListener::bind(any(grpc_port)).await?;
    let record_listener = TcpListener::bind(any(record_port)).await?;
    let record = Record::default();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let routes =
        Routes::new(health)
            .into_axum_router()
            .layer(axum::middleware::from_fn_with_state(
                record.clone(),
                record_call,
            ));
    let grpc = tonic::transport::Server::builder()
        .add_routes(Routes::from(routes))
        .serve_with_incoming(TcpListenerStream::new(grpc_listener));
    let answers = axum::Router::new()
        .route("/ready", get(|| async { "ready" }))
        .route(
            "/calls",
            get(|State(record): State<Record>| async move {
                axum::Json(serde_json::json!({ "calls": record.calls() }))
            }),
        )
        .with_state(record);
    eprintln!(
        "harness-pod: intruder serving gRPC health on :{grpc_port}, its record on :{record_port}"
    );
    tokio::select! {
        served = grpc => served.map_err(std::io::Error::other),
        served = axum::serve(record_listener, answers) => served,
        stop = stopped() => stop,
    }
}
