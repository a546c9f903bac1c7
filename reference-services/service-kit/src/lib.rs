//! What the three reference services share, so each binary only wires its handlers:
//!
//! ```no_run
//! # use gomicro_service_kit::{ServiceSpec, Servers};
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     let spec = ServiceSpec { name: "go-micro.demo-srv", api_packages: &[], validator: None };
//!     gomicro_service_kit::run(spec, |_ctx| async move {
//!         Ok(Servers { grpc: tonic::service::RoutesBuilder::default(), http: None })
//!     })
//!     .await
//! }
//! ```
//!
//! [`run`] parses `-conf <dir>`, initialises logging, loads the configuration (local
//! directory, then the ConfigMaps named by `remote.yaml`, watched live), creates the
//! Kubernetes client, lets the service build its servers, binds them (`server.grpc.addr`,
//! `server.http.addr`), adds grpc.health.v1 and reflection v1/v1alpha, registers the
//! instance on the own pod and serves until SIGTERM/SIGINT/SIGQUIT; then it deregisters
//! (≤ 10 s), reports NOT_SERVING and stops the servers gracefully.

mod address;
mod cli;
mod grpc;
mod instance;
pub mod kratos_error;
mod logging;
mod service;
mod settings;
mod shutdown;

pub use address::host_ip;
pub use cli::{Cli, DEFAULT_CONF_DIR};
pub use instance::{VERSION, service_instance};
pub use logging::init_tracing;
pub use service::{Context, Servers, ServiceSpec, Validator, run};
pub use settings::{ConfigExt, listen_addr, parse_duration};

#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
