//! Device plugin RPC latency over a real unix socket: GetPreferredAllocation against the
//! floor of the transport (an empty GetDevicePluginOptions round trip), on the same
//! connection in the same run. Run: `cargo bench -p linkwise-deviceplugin --bench rpc`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use linkwise_deviceplugin::api::device_plugin_client::DevicePluginClient;
use linkwise_deviceplugin::api::device_plugin_server::DevicePluginServer;
use linkwise_deviceplugin::{Config, GpuPlugin, api};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut g = c.benchmark_group("rpc");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for name in ["dgx1-v100", "dgx2-v100"] {
        let topo = linkwise_core::profiles::get(name).expect("profile");
        let ids: Vec<String> = topo.gpus.iter().map(|g| g.id.0.clone()).collect();
        let sock = dir.path().join(format!("{name}.sock"));
        let plugin = GpuPlugin::new(topo, Config::default());
        let listener = rt
            .block_on(async { UnixListener::bind(&sock) })
            .expect("bind");
        rt.spawn(
            Server::builder()
                .add_service(DevicePluginServer::new(plugin))
                .serve_with_incoming(UnixListenerStream::new(listener)),
        );
        let mut client = rt
            .block_on(linkwise_deviceplugin::uds::connect(&sock))
            .map(DevicePluginClient::new)
            .expect("connect");
        g.bench_function(format!("options/{name}"), |b| {
            b.iter(|| {
                rt.block_on(client.get_device_plugin_options(api::Empty {}))
                    .expect("rpc")
            })
        });
        for k in [2, 4, 8] {
            let req = api::PreferredAllocationRequest {
                container_requests: vec![api::ContainerPreferredAllocationRequest {
                    available_device_i_ds: ids.clone(),
                    must_include_device_i_ds: vec![],
                    allocation_size: k,
                }],
            };
            g.bench_function(format!("preferred/{name}/{k}"), |b| {
                b.iter(|| {
                    rt.block_on(client.get_preferred_allocation(black_box(req.clone())))
                        .expect("rpc")
                })
            });
        }
    }
    g.finish();
}

criterion_group!(rpc, benches);
criterion_main!(rpc);
