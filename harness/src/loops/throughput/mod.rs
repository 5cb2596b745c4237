//! `cargo xtask bench --io`: what passthrough buys, measured. Each kernel runs the agent's
//! `bench.throughput` case (six workloads on tmpfs and ext4, through the backing file,
//! a passthrough FUSE file and a plain FUSE file of the same server, the three alternating
//! within each repetition); this module turns its figures into medians, spreads and ratios
//! to native paired repetition by repetition, a table, `throughput.json` and SVG plots
//! ([`crate::loops::throughput::plot`]).

use crate::error::{Error, Result};
use crate::kernel::KernelChoice;
use crate::run::Request;

pub mod figures;
pub mod plot;

pub use figures::{FsFigures, KernelFigures, PathFigures, Workload, PATHS};

/// The case that measures with the agent's own server, and with a server under test.
pub const CASE: &str = "bench.throughput";
/// The case that measures through a server under test's mount.
pub const SERVER_CASE: &str = "bench.throughput_server";
/// Measure on each kernel in turn, with the agent's own server or `server`; `each` sees each
/// kernel's figures as they come.
pub fn run(
    kernels: &[String],
    template: &Request,
    server: Option<&proto::validate::Spec>,
    each: &mut dyn FnMut(&KernelFigures),
) -> Result<Vec<KernelFigures>> {
    let case = if server.is_some() { SERVER_CASE } else { CASE };
    let mut out = Vec::new();
    for k in kernels {
        let run = crate::run::run(
            &Request {
                kernel: KernelChoice::parse(k),
                cases: vec![case.into()],
                validate: server.cloned(),
                ..template.clone()
            },
            &mut |_| {},
        )?;
        let result =
            run.results
                .iter()
                .find(|r| r.case == case)
                .ok_or_else(|| Error::Throughput {
                    kernel: k.clone(),
                    why: format!("the guest gave no {case} result"),
                })?;
        let Some(figures) = result.observations.get(proto::observation::THROUGHPUT) else {
            return Err(Error::Throughput {
                kernel: k.clone(),
                why: format!(
                    "{} ({}; artifacts {})",
                    crate::results::table::verdict_name(result.verdict),
                    result.reason,
                    run.artifacts.display()
                ),
            });
        };
        let figs = KernelFigures {
            kernel: k.clone(),
            server: server.map_or_else(|| "the agent's own".to_string(), |s| s.version.clone()),
            release: run.kernel_release.clone(),
            file_systems: parse(figures),
            artifacts: run.artifacts.display().to_string(),
        };
        if !result.verdict.is_ok() {
            eprintln!(
                "{k}: some workloads failed: {} (the others are below)",
                result.reason
            );
        }
        each(&figs);
        out.push(figs);
    }
    Ok(out)
}

/// The guest's `throughput` observation, read into figures.
pub fn parse(v: &serde_json::Value) -> Vec<FsFigures> {
    let mut out = Vec::new();
    let Some(fss) = v.as_object() else {
        return out;
    };
    for (fs, rec) in fss {
        let mut workloads = Vec::new();
        if let Some(ws) = rec["workloads"].as_object() {
            for (name, w) in ws {
                let values = |p: &str| -> Vec<f64> {
                    w[p].as_array()
                        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
                        .unwrap_or_default()
                };
                let native = values("native");
                let paths = PATHS
                    .iter()
                    .map(|p| figures(p, values(p), &native))
                    .collect();
                workloads.push(Workload {
                    name: name.clone(),
                    unit: w["unit"].as_str().unwrap_or("").to_string(),
                    paths,
                });
            }
        }
        // The guest's order of workloads, not JSON's.
        workloads.sort_by_key(|w| {
            proto::catalog::THROUGHPUT_WORKLOADS
                .iter()
                .position(|(o, _)| *o == w.name)
                .unwrap_or(99)
        });
        let notes: Vec<&str> = [&rec["note"], &rec["plain"]]
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        out.push(FsFigures {
            fs: fs.clone(),
            size_mib: rec["size_mib"].as_u64().unwrap_or(0),
            note: (!notes.is_empty()).then(|| notes.join("; ")),
            passthrough: rec["passthrough"].as_str().unwrap_or("").to_string(),
            workloads,
        });
    }
    out.sort_by_key(|f| if f.fs == "tmpfs" { 0 } else { 1 });
    out
}

fn figures(path: &str, values: Vec<f64>, native: &[f64]) -> PathFigures {
    let (median, min, max) = crate::loops::stats::spread(&values);
    let ratios: Vec<f64> = values
        .iter()
        .zip(native)
        .filter(|(_, n)| **n > 0.0)
        .map(|(v, n)| v / n)
        .collect();
    let (r, rmin, rmax) = crate::loops::stats::spread(&ratios);
    let has = !ratios.is_empty();
    PathFigures {
        path: path.into(),
        values,
        median,
        min,
        max,
        ratio_to_native: has.then_some(r),
        ratio_min: has.then_some(rmin),
        ratio_max: has.then_some(rmax),
    }
}

/// The table: per kernel and file system, a row per workload, a column per path (median,
/// and its ratio to native).
pub fn table(figs: &[KernelFigures]) -> String {
    let mut out = String::new();
    for k in figs {
        for fs in &k.file_systems {
            out.push_str(&format!(
                "\n{} ({}), server {}, {}, {} MiB{}{}\n",
                k.kernel,
                k.release,
                k.server,
                fs.fs,
                fs.size_mib,
                fs.note
                    .as_deref()
                    .map_or_else(String::new, |n| format!(" ({n})")),
                if fs.passthrough != "not offered" {
                    String::new()
                } else {
                    ": passthrough not offered".to_string()
                }
            ));
            out.push_str(&format!(
                "  {:<12} {:>22} {:>22} {:>22}\n",
                "workload", PATHS[0], PATHS[1], PATHS[2]
            ));
            for w in &fs.workloads {
                let cells: Vec<String> = w.paths.iter().map(|p| cell(p, &w.unit)).collect();
                out.push_str(&format!(
                    "  {:<12} {:>22} {:>22} {:>22}\n",
                    w.name, cells[0], cells[1], cells[2]
                ));
            }
        }
    }
    out
}

fn cell(p: &PathFigures, unit: &str) -> String {
    if p.values.is_empty() {
        // No passthrough in the kernel; or a server under test without an off switch.
        return if p.path == "passthrough" {
            "not offered"
        } else {
            "not measured"
        }
        .into();
    }
    match p.ratio_to_native {
        Some(r) if p.path != "native" => format!("{:.0} {unit} ({r:.2}x)", p.median),
        _ => format!("{:.0} {unit}", p.median),
    }
}

/// throughput.json and the plots into a directory of their own under target/fpt-runs; the
/// directory.
pub fn write(figs: &[KernelFigures]) -> Result<std::path::PathBuf> {
    let dir = crate::env::cache::artifacts_dir("throughput")?;
    let json = dir.join("throughput.json");
    std::fs::write(
        &json,
        serde_json::to_string_pretty(figs).expect("figures serialise"),
    )
    .map_err(|e| Error::io(json.display(), e))?;
    crate::loops::throughput::plot::write(figs, &dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_paired_by_repetition() {
        let obs = serde_json::json!({
            "ext4": {"size_mib": 3, "note": "small", "passthrough": "offered", "workloads": {
                "seq_read": {"unit": "MiB/s", "native": [100.0, 200.0, 50.0],
                             "passthrough": [90.0, 200.0, 40.0], "plain": [10.0, 20.0, 5.0]}}},
            "tmpfs": {"size_mib": 8, "note": null, "passthrough": "not offered", "workloads": {
                "small_files": {"unit": "ops/s", "native": [1.0], "plain": [0.5]},
                "seq_read": {"unit": "MiB/s", "native": [1.0], "plain": [0.5]}}}
        });
        let figs = parse(&obs);
        assert_eq!(figs[0].fs, "tmpfs");
        assert_eq!(figs[0].workloads[0].name, "seq_read");
        assert!(figs[0].workloads[0].paths[1].values.is_empty());
        let pt = &figs[1].workloads[0].paths[1];
        // 0.9, 1.0, 0.8 paired: median 0.9, though the medians alone give 90/100.
        assert_eq!(pt.ratio_to_native, Some(0.9));
        assert_eq!((pt.ratio_min, pt.ratio_max), (Some(0.8), Some(1.0)));
        let text = table(&[KernelFigures {
            kernel: "k".into(),
            server: "s".into(),
            release: "r".into(),
            file_systems: figs,
            artifacts: String::new(),
        }]);
        assert!(text.contains("passthrough not offered"), "{text}");
        assert!(text.contains("90 MiB/s (0.90x)"), "{text}");
        assert!(text.contains("(small)"), "{text}");
    }
}
