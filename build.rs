//! Generates the gRPC code and the descriptor set (for server reflection)
//! from `proto/spoc/v1/*.proto`, with a vendored `protoc` so that a fresh
//! machine needs nothing installed by hand.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing reads the environment concurrently.
    unsafe { env::set_var("PROTOC", protoc) };

    let mut protos: Vec<PathBuf> = std::fs::read_dir("proto/spoc/v1")?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    protos.sort();

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        // Our codec: a request that does not decode is INVALID_ARGUMENT
        // (the client's mistake), not prost's INTERNAL. See src/api/codec.rs.
        .codec_path("crate::api::codec::ProtoCodec")
        .file_descriptor_set_path(out_dir.join("spoc_v1_descriptor.bin"))
        .compile_protos(&protos, &[PathBuf::from("proto")])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
