//! Generates the bindings of the kubelet's gRPC protocols with protox (no `protoc`): the
//! device plugin API v1beta1, PodResources v1, the DRA plugin API v1 and v1beta1, the
//! plugin watcher's registration, and DRA device health v1alpha1 and v1.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    // One run per set of distinct proto packages: prost writes one file per package
    // (v1beta1.rs, v1.rs, k8s.io.kubelet.pkg.apis.dra.v1.rs, pluginregistration.rs, ...).
    let fds = protox::compile(
        [
            "deviceplugin/v1beta1/api.proto",
            "podresources/v1/api.proto",
            "dra/v1/api.proto",
            "dra/v1beta1/api.proto",
            "pluginregistration/v1/api.proto",
            "dra-health/v1alpha1/api.proto",
        ],
        ["proto"],
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    // DRA health v1 is `package v1`, as PodResources is: its own folder.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("dra-health");
    std::fs::create_dir_all(&out)?;
    let fds = protox::compile(["dra-health/v1/api.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .out_dir(&out)
        .compile_fds(fds)?;
    Ok(())
}
