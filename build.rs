//! Compiles the gRPC API with protox (pure Rust; no system `protoc` needed) and keeps the file
//! descriptor set for server reflection.

use std::path::PathBuf;

use protox::prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=migrations");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(
        [
            "brevdue/v1/gateway.proto",
            "brevdue/v1/operations.proto",
            "brevdue/v1/registry.proto",
        ],
        ["proto"],
    )?;
    std::fs::write(out_dir.join("brevdue_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
