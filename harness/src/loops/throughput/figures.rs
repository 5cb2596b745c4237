//! The figures of `bench --io`, per kernel, file system, workload and path: what the table,
//! throughput.json and the plots are made from.

use serde::Serialize;

/// The paths, in the order of every table and plot.
pub const PATHS: [&str; 3] = ["native", "passthrough", "plain"];

/// One kernel's figures.
#[derive(Debug, Clone, Serialize)]
pub struct KernelFigures {
    /// What `--kernel` said.
    pub kernel: String,
    /// The server measured: "the agent's own", or the target's library and version.
    pub server: String,
    /// The kernel's release.
    pub release: String,
    /// tmpfs, then ext4.
    pub file_systems: Vec<FsFigures>,
    /// The run's artifacts directory.
    pub artifacts: String,
}

/// One file system's figures.
#[derive(Debug, Clone, Serialize)]
pub struct FsFigures {
    /// "tmpfs" or "ext4".
    pub fs: String,
    /// The data size each workload moved.
    pub size_mib: u64,
    /// Why the data is smaller than usual, when it is.
    pub note: Option<String>,
    /// "offered" or "not offered".
    pub passthrough: String,
    /// Each workload, in catalog order.
    pub workloads: Vec<Workload>,
}

/// One workload on one file system.
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    /// Its name (`proto::catalog::THROUGHPUT_WORKLOADS`).
    pub name: String,
    /// "MiB/s" or "ops/s".
    pub unit: String,
    /// native, passthrough, plain.
    pub paths: Vec<PathFigures>,
}

/// One path of one workload.
#[derive(Debug, Clone, Serialize)]
pub struct PathFigures {
    /// "native", "passthrough" or "plain".
    pub path: String,
    /// One per repetition, in order; empty when the path was not measured.
    pub values: Vec<f64>,
    /// The median of `values`.
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// Median over repetitions of this path's value divided by native's of the same
    /// repetition.
    pub ratio_to_native: Option<f64>,
    /// The smallest per-round ratio to native.
    pub ratio_min: Option<f64>,
    /// The largest per-round ratio to native.
    pub ratio_max: Option<f64>,
}
