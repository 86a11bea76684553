//! Generates the kubelet device plugin v1beta1 and PodResources v1 bindings with protox
//! (no `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    // Different packages (`v1beta1`, `v1`), one run: prost writes v1beta1.rs and v1.rs.
    let fds = protox::compile(
        [
            "deviceplugin/v1beta1/api.proto",
            "podresources/v1/api.proto",
        ],
        ["proto"],
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
