//! `cargo xtask bench --io` end to end: real workloads on real kernels, the figures read back
//! from throughput.json, the plots rendered by headless Chromium. Never a timing assert: only
//! that every figure is there, positive, and labelled as the run was.

use std::path::{Path, PathBuf};

use e2e::xtask;

/// The directory `bench --io` wrote, and throughput.json read.
fn bench_io(args: &[&str]) -> (PathBuf, serde_json::Value, String) {
    let mut all = vec!["bench", "--io"];
    all.extend(args);
    let out = xtask(&all);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let line = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("throughput: "))
        .expect("the output directory is named");
    let dir = PathBuf::from(line.split(" (").next().unwrap());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("throughput.json")).unwrap())
            .unwrap();
    (dir, json, out.stdout)
}

/// Every workload of every file system has three positive figures for each path measured.
fn assert_complete(kernel: &serde_json::Value, paths: &[&str]) {
    let fss = kernel["file_systems"].as_array().unwrap();
    assert_eq!(fss.len(), 2, "tmpfs and ext4: {kernel}");
    for fs in fss {
        let workloads = fs["workloads"].as_array().unwrap();
        assert_eq!(workloads.len(), 6, "{fs}");
        for w in workloads {
            for p in w["paths"].as_array().unwrap() {
                let values = p["values"].as_array().unwrap();
                if paths.contains(&p["path"].as_str().unwrap()) {
                    assert_eq!(values.len(), 3, "{w}");
                    assert!(values.iter().all(|v| v.as_f64().unwrap() > 0.0), "{w}");
                } else {
                    assert!(values.is_empty(), "{w}");
                }
            }
        }
    }
}

#[test]
fn the_host_and_a_kernel_without_passthrough_side_by_side() {
    let (dir, json, stdout) = bench_io(&["--kernel", "host", "--kernel", "debian-6.1"]);
    let kernels = json.as_array().unwrap();
    assert_eq!(kernels.len(), 2);
    assert_complete(&kernels[0], &["native", "passthrough", "plain"]);
    // 6.1 has no passthrough: that column says so, the rest ran.
    assert_complete(&kernels[1], &["native", "plain"]);
    assert_eq!(kernels[1]["file_systems"][0]["passthrough"], "not offered");
    assert!(stdout.contains("passthrough not offered"), "{stdout}");
    assert!(stdout.contains("not offered"), "{stdout}");
    // The ext4 image is 8 MiB: the data is sized to it, and the table says so.
    assert!(
        stdout.contains("the file system has") && stdout.contains("MiB free"),
        "{stdout}"
    );
    for fs in ["tmpfs", "ext4"] {
        check_plot(
            &dir.join(format!("throughput-{fs}.svg")),
            &["host", "debian-6.1"],
        );
    }
}

#[test]
fn a_server_under_test_with_its_passthrough_on_and_off() {
    let (_, json, stdout) = bench_io(&["--kernel", "host", "--server", "libfuse"]);
    let k = &json[0];
    assert!(
        k["server"].as_str().unwrap().starts_with("libfuse 3.18"),
        "{k}"
    );
    assert_complete(k, &["native", "passthrough", "plain"]);
    assert!(stdout.contains("server libfuse 3.18"), "{stdout}");
}

/// What headless Chromium makes of a plot: an SVG document with a panel per workload and
/// each kernel's label; a screenshot kept beside it.
fn check_plot(svg: &Path, kernels: &[&str]) {
    let dom = e2e::chromium(svg, "1200,700", &svg.with_extension("png"));
    assert!(dom.contains("<svg"), "{dom}");
    for (w, _) in proto::catalog::THROUGHPUT_WORKLOADS {
        assert!(dom.contains(w), "no panel for {w}");
    }
    for k in kernels {
        assert!(dom.contains(k), "no label for {k}");
    }
}
