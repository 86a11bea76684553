//! `linkwise sim` machinery: trace CSV readers, replay runs on worker threads, the
//! paper's resampled metrics, the topology map, and the chart renderers (SVG, PNG).

pub mod csv;
pub mod metrics;
pub mod plot;
pub mod raster;
pub mod run;
pub mod topomap;
