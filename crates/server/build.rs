//! Compiles proto/inference.proto and proto/aggregate.proto with the protoc shipped inside the
//! `protoc-bin-vendored` crate: build machines have no system protoc.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto/inference.proto");
    println!("cargo:rerun-if-changed=proto/aggregate.proto");
    // The client is for our tests; without transport it needs no tonic "channel" feature.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        // zero-copy tensor payloads
        .bytes(".inference")
        .compile_protos(&["proto/inference.proto"], &["proto"])?;
    // The aggregation API: its payloads are containers, already bytes.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .bytes(".heinfer.aggregate.v1")
        .compile_protos(&["proto/aggregate.proto"], &["proto"])?;
    Ok(())
}
