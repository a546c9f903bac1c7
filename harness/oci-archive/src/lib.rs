//! OCI image layout archives written without Docker: one or more layers built from host files,
//! directories or bytes, an image config (entrypoint, cmd, working directory, env), a manifest
//! and `index.json`, all in one tar that `ctr images import` (and k3s' containerd) accept.
//!
//! Archives are deterministic: the same inputs give the same digests (modes are kept, owners
//! are root, times are zero).

mod archive;
mod layer;
mod reference;
mod shared_libraries;

pub use archive::{ArchiveSummary, ImageConfig, write_archive};
pub use layer::Layer;
pub use reference::normalize_reference;
pub use shared_libraries::shared_libraries;
