//! One module per scenario of the comparative benchmark (numbered as in
//! docs/benchmarks.md); each adds its rows to the [`Bench`](crate::Bench).

pub(crate) mod api;
pub(crate) mod blobs;
pub(crate) mod cluster;
pub(crate) mod encryption;
pub(crate) mod home;
pub(crate) mod idle;
pub(crate) mod large;
pub(crate) mod latency;
pub(crate) mod many;
pub(crate) mod throughput;
pub(crate) mod typists;
pub(crate) mod wasm;
