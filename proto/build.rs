//! Compiles proto/rampart/v1/rampart.proto with protox (pure Rust; no system protoc).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/rampart/v1/rampart.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_transport(false)
        // Small starting buffers per stream: see src/codec.rs.
        .codec_path("crate::codec::LeanCodec")
        .compile_fds(fds)?;
    Ok(())
}
