//! Compiles the proto/ tree into Rust (messages, servers, clients) plus an encoded
//! file descriptor set for server reflection. Uses the vendored protoc binary.

use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "proto/common/authn/authn.proto",
    "proto/token_srv/v1/token.proto",
    "proto/user_srv/v1/user.proto",
    "proto/admin_srv/v1/admin.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("gomicro_descriptor.bin"))
        .include_file("gomicro_packages.rs")
        .compile_with_config(config, PROTOS, &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
