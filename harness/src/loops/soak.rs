//! `cargo xtask soak`: the same run N times; every case whose verdict or observations were
//! not the same each time is flaky. Also counts QEMU processes left running and runs with
//! incomplete artifacts, both of which must be zero.

use std::collections::BTreeMap;
use std::path::PathBuf;

use proto::Verdict;

use crate::error::Result;
use crate::results::record::Run;
use crate::run::Request;

/// What N runs of the same request showed.
#[derive(Debug, Default)]
pub struct Soak {
    /// Runs asked for.
    pub runs: u32,
    /// case -> each distinct outcome (verdict and observations) with how often it came.
    pub outcomes: BTreeMap<String, BTreeMap<String, u32>>,
    /// Each run's guest time.
    pub guest_secs: Vec<f64>,
    /// Runs that reported every case.
    pub complete: u32,
    /// Cases that took the guest down: the longest time from their start to the report,
    /// and their own timeout.
    pub downs: BTreeMap<String, (f64, u64)>,
    /// QEMU processes still alive after the runs (must be 0).
    pub qemu_left: usize,
    artifacts: Vec<PathBuf>,
}

impl Soak {
    /// The cases whose outcome was not the same every time, with each outcome's count.
    pub fn flaky(&self) -> Vec<(&String, &BTreeMap<String, u32>)> {
        self.outcomes.iter().filter(|(_, o)| o.len() > 1).collect()
    }

    /// No flaky case, no QEMU left, every run complete.
    pub fn ok(&self) -> bool {
        self.flaky().is_empty() && self.qemu_left == 0 && self.complete == self.runs
    }
}

/// Run `req` `runs` times; `each` sees every run as it ends.
pub fn soak(req: &Request, runs: u32, each: &mut dyn FnMut(u32, &Run)) -> Result<Soak> {
    let catalog = crate::boot::agent::build_with_catalog()?.1;
    let mut soak = Soak {
        runs,
        ..Default::default()
    };
    for i in 1..=runs {
        let run = crate::run::run(req, &mut |_| {})?;
        let has = |f: &str| run.artifacts.join(f).is_file();
        let vm = run.mode.is_qemu();
        if has("results.json") && has("summary.txt") && (!vm || has("findings.json")) {
            soak.complete += 1;
        }
        soak.artifacts.push(run.artifacts.clone());
        soak.guest_secs.push(run.timings.guest_wall.as_secs_f64());
        for r in run
            .results
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Hang | Verdict::Crash))
        {
            let timeout = catalog
                .iter()
                .find(|c| c.name == r.case)
                .map_or(0, |c| c.timeout_secs);
            let worst = soak.downs.entry(r.case.clone()).or_insert((0.0, timeout));
            worst.0 = worst.0.max(r.duration_ms as f64 / 1000.0);
        }
        for r in &run.results {
            let rendered = crate::results::snapshot::render(std::slice::from_ref(r));
            let outcome = format!(
                "{} {}",
                crate::results::table::verdict_name(r.verdict),
                rendered.trim_end()
            );
            *soak
                .outcomes
                .entry(r.case.clone())
                .or_default()
                .entry(outcome)
                .or_default() += 1;
        }
        each(i, &run);
    }
    soak.qemu_left = qemu_left(&soak.artifacts);
    soak.guest_secs.sort_by(f64::total_cmp);
    Ok(soak)
}

/// QEMU processes still running one of these runs' images: they outlived the harness.
pub fn qemu_left(artifacts: &[PathBuf]) -> usize {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| {
            c.contains("qemu-system") && artifacts.iter().any(|d| c.contains(&*d.to_string_lossy()))
        })
        .count()
}
