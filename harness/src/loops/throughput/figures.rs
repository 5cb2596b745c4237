//! The figures of `bench --io`, per kernel, file system, workload and path: what the table,
//! throughput.json and the plots are made from.

use serde::Serialize;

/// The paths, in the order of every table and plot.
pub const PATHS: [&str; 3] = ["native", "passthrough", "plain"];

#[derive(Debug, Clone, Serialize)]
pub struct KernelFigures {
    /// What `--kernel` said.
    pub kernel: String,
    /// The server measured: "the agent's own", or the target's library and version.
    pub server: String,
    pub release: String,
    pub file_systems: Vec<FsFigures>,
    pub artifacts: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FsFigures {
    /// "tmpfs" or "ext4".
    pub fs: String,
    pub size_mib: u64,
    /// Why the data is smaller than usual, when it is.
    pub note: Option<String>,
    /// "offered" or "not offered".
    pub passthrough: String,
    pub workloads: Vec<Workload>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    pub name: String,
    pub unit: String,
    pub paths: Vec<PathFigures>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PathFigures {
    pub path: String,
    /// One per repetition, in order; empty when the path was not measured.
    pub values: Vec<f64>,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Median over repetitions of this path's value divided by native's of the same
    /// repetition.
    pub ratio_to_native: Option<f64>,
    pub ratio_min: Option<f64>,
    pub ratio_max: Option<f64>,
}
