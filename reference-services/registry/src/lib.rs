//! Go-Micro compatible service registry on Kubernetes (CONTRACT §1–§3).
//!
//! - [`Registrar`]: self-registration by strategic-merge PATCH of the own pod's labels and
//!   annotations, and deregistration on shutdown.
//! - [`Discovery`]: list and watch the instances of a service through a server-side label
//!   selector (`gomicro-service-app=<name>`), emitting the full list on every change.
//! - [`resolver`]: a load-balanced, health-checked tonic [`tonic::transport::Channel`] for
//!   `discovery:///<name>` targets, logging the Go-Micro `[resolver]` lines.

mod discovery;
mod endpoint;
mod error;
mod identity;
mod instance;
pub mod keys;
mod mapping;
mod patch;
mod registrar;
pub mod resolver;

pub use discovery::{Discovery, InstanceStore};
pub use endpoint::{Endpoint, format_host};
pub use error::RegistryError;
pub use identity::PodIdentity;
pub use instance::ServiceInstance;
pub use mapping::{MappingError, instance_from_pod, is_discoverable};
pub use patch::{deregister_patch, protocols_of, register_patch};
pub use registrar::{DEREGISTER_TIMEOUT, Registrar};
