//! The plots of `cargo xtask bench --io`, drawn with plotters' SVG backend: one file per file
//! system, one panel per workload (each in its own unit), in each panel a group of bars per
//! kernel and a bar per path (its median), with an error bar from the slowest to the fastest
//! repetition. One kernel: grouped bars per workload; several: a regression between two
//! kernels shows side by side.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::loops::throughput::figures::{KernelFigures, PATHS};

/// Colours of native, passthrough, plain FUSE.
const COLOURS: [RGBColor; 3] = [
    RGBColor(0x55, 0x55, 0x55),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
];

/// `throughput-<fs>.svg` for every file system measured; the files written.
pub fn write(figs: &[KernelFigures], dir: &Path) -> Result<Vec<PathBuf>> {
    let mut file_systems: Vec<String> = Vec::new();
    for k in figs {
        for fs in &k.file_systems {
            if !file_systems.contains(&fs.fs) {
                file_systems.push(fs.fs.clone());
            }
        }
    }
    let mut written = Vec::new();
    for fs in &file_systems {
        let path = dir.join(format!("throughput-{fs}.svg"));
        draw(figs, fs, &path).map_err(|e| Error::Throughput {
            kernel: "(plot)".into(),
            why: format!("drawing {}: {e}", path.display()),
        })?;
        written.push(path);
    }
    Ok(written)
}

fn draw(
    figs: &[KernelFigures],
    fs: &str,
    path: &Path,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let workloads: Vec<(String, String)> = figs
        .iter()
        .flat_map(|k| k.file_systems.iter().filter(|f| f.fs == fs))
        .flat_map(|f| f.workloads.iter().map(|w| (w.name.clone(), w.unit.clone())))
        .fold(Vec::new(), |mut acc, w| {
            if !acc.contains(&w) {
                acc.push(w);
            }
            acc
        });
    let cols = 3;
    let rows = workloads.len().div_ceil(cols).max(1);
    let width = 360 * cols as u32 + 20 * figs.len().max(1) as u32 * cols as u32;
    let root = SVGBackend::new(path, (width, 300 * rows as u32 + 60)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(60);
    title.titled(
        &format!("{fs}: native (grey), passthrough (blue), plain FUSE (red); median, min to max"),
        ("sans-serif", 18),
    )?;
    let panels = body.split_evenly((rows, cols));
    for ((name, unit), panel) in workloads.iter().zip(panels.iter()) {
        // (kernel index, path index, median, min, max)
        let mut bars: Vec<(usize, usize, f64, f64, f64)> = Vec::new();
        for (ki, k) in figs.iter().enumerate() {
            let Some(w) = k
                .file_systems
                .iter()
                .find(|f| f.fs == fs)
                .and_then(|f| f.workloads.iter().find(|w| &w.name == name))
            else {
                continue;
            };
            for (pi, p) in w.paths.iter().enumerate() {
                if !p.values.is_empty() {
                    bars.push((ki, pi, p.median, p.min, p.max));
                }
            }
        }
        let top = bars.iter().map(|b| b.4).fold(0.0, f64::max).max(1e-9) * 1.15;
        let groups = figs.len().max(1);
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{name} ({unit})"), ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..groups as f64, 0f64..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        // Each group's kernel, written over it (axis labels fall where the scale puts them).
        for (ki, k) in figs.iter().enumerate() {
            chart.draw_series(std::iter::once(Text::new(
                k.kernel.clone(),
                (ki as f64 + 0.1, top * 0.97),
                ("sans-serif", 12).into_font(),
            )))?;
        }
        let slot = 0.8 / PATHS.len() as f64;
        for (ki, pi, median, min, max) in &bars {
            let x0 = *ki as f64 + 0.1 + *pi as f64 * slot;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x0, 0.0), (x0 + slot * 0.9, *median)],
                COLOURS[*pi].filled(),
            )))?;
            chart.draw_series(std::iter::once(ErrorBar::new_vertical(
                x0 + slot * 0.45,
                *min,
                *median,
                *max,
                BLACK.filled(),
                6,
            )))?;
        }
    }
    root.present()?;
    Ok(())
}
