//! Throughput, for `cargo xtask bench --io`: the same workloads on the same data through three
//! paths, side by side: the backing file itself (native), a passthrough FUSE file, and a
//! plain FUSE file of the same server (its READs and WRITEs served by the server). Each
//! repetition runs every path in turn, so a noisy machine moves all three alike and the
//! ratio to native can be paired run by run.
//!
//! A measurement, not a rule: the numbers are observations of the `bench` group, which no
//! snapshot keeps ([`proto::catalog::MEASUREMENTS`]); the verdict only says every workload
//! ran. The catalog's rule on speed is `io.passthrough_is_not_slower`.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proto::catalog::THROUGHPUT_WORKLOADS as WORKLOADS;
use serde_json::{json, Map, Value};

use crate::framework::{pattern, Case, Ctx, Stop};
use crate::fuse::{FuseFs, InitReply, OpenReply};

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "bench.throughput",
            rule: "sequential 1 MiB reads and writes, random 4 KiB reads and writes, an mmap read \
               and a small-file open-read-close loop, on tmpfs and on ext4, through the \
               backing file, a passthrough FUSE file and a plain FUSE file of the same server \
               (a measurement for `cargo xtask bench --io`)",
            verdict_rule: "pass when every workload ran on every path; the figures are \
                       observations no snapshot keeps",
            timeout: Duration::from_secs(240),
            slow: true,
            run: throughput,
            ..Case::DEFAULT
        },
        Case {
            name: "bench.throughput_server",
            rule: "the workloads of bench.throughput through the server under test's mount \
                   with its passthrough on and, where it has a switch for it, off",
            verdict_rule: "pass when every workload ran on every path; the figures are \
                           observations no snapshot keeps",
            timeout: Duration::from_secs(300),
            slow: true,
            external_server: true,
            run: throughput_server,
            ..Case::DEFAULT
        },
    ]
}

/// Repetitions counted, after one warm-up.
const REPS: usize = 3;
/// The data file's size where the file system has room (tmpfs always does).
const DATA_MIB: u64 = 8;
const SMALL_FILES: usize = 64;
const SMALL_SIZE: usize = 4096;
const RANDOM_OPS: usize = 512;

/// The files one path reaches: the data file and the small ones.
#[derive(Clone)]
struct Files {
    data: PathBuf,
    small: Vec<PathBuf>,
    /// The data file's size.
    size: usize,
}

fn throughput(ctx: &mut Ctx) -> Result<(), Stop> {
    each_file_system(ctx, |ctx, native| {
        // The same server serves both FUSE paths, over the same backing files.
        let (fs, init) = ctx.mount(InitReply::passthrough(1))?;
        let offered = init.kernel_offers_passthrough();
        let plain = serve(&fs, native, "plain", false)?;
        let passthrough = if offered {
            Some(serve(&fs, native, "pt", true)?)
        } else {
            None
        };
        let mut paths = vec![("native", native.clone())];
        if let Some(p) = passthrough {
            paths.push(("passthrough", p));
        }
        paths.push(("plain", plain));
        let (record, failures) = measure(&paths, native.size);
        drop(fs);
        let mut record = record;
        record["passthrough"] = json!(if offered { "offered" } else { "not offered" });
        Ok((record, failures))
    })
}

/// The same with the server under test (`bench --io --server`): its mount of `{source}` with
/// its passthrough on, and where it has a switch for it, a second mount with it off (the
/// plain FUSE path). Whether it does pass through is its business: the figures show it.
fn throughput_server(ctx: &mut Ctx) -> Result<(), Stop> {
    let Some(spec) = ctx.server.clone() else {
        return Err(Stop::Skip(
            "no server under test: `cargo xtask bench --io --server` runs it".into(),
        ));
    };
    if spec.fixed_file.is_some() {
        return Err(Stop::Skip(format!(
            "{} serves one file of its own, not {{source}}",
            spec.target
        )));
    }
    ctx.observe("server", &spec.version);
    let mut n = 0;
    each_file_system(ctx, |ctx, native| {
        n += 1;
        let source = native
            .data
            .parent()
            .expect("data has a directory")
            .to_path_buf();
        let on = crate::framework::subject::External::start(
            &spec,
            &source,
            &ctx.scratch(&format!("server-on-{n}"))?,
            ctx.teardown.clone(),
        )?;
        let off = match &spec.passthrough_off_args {
            Some(args) => Some(crate::framework::subject::External::start(
                &proto::validate::Spec {
                    args: args.clone(),
                    ..spec.clone()
                },
                &source,
                &ctx.scratch(&format!("server-off-{n}"))?,
                // Its end is not the case's to judge: {source} stays busy while the other
                // server runs. The second server's end (dropped last) is judged.
                Default::default(),
            )?),
            None => None,
        };
        let through = |s: &dyn crate::framework::subject::Subject| Files {
            data: s.path("data"),
            small: (0..SMALL_FILES)
                .map(|i| s.path(&format!("s{i:02}")))
                .collect(),
            size: native.size,
        };
        let mut paths = vec![("native", native.clone()), ("passthrough", through(&on))];
        if let Some(off) = &off {
            paths.push(("plain", through(off)));
        }
        let (mut record, failures) = measure(&paths, native.size);
        record["passthrough"] = json!("the server's own (switched on)");
        if off.is_none() {
            record["plain"] = json!(format!(
                "{} has no switch to turn passthrough off",
                spec.target
            ));
        }
        drop(off);
        drop(on);
        Ok((record, failures))
    })
}

/// On a tmpfs and on ext4: the files written, then `with` measures them; the figures go to
/// the `throughput` observation, each failure to the verdict.
fn each_file_system(
    ctx: &mut Ctx,
    mut with: impl FnMut(&mut Ctx, &Files) -> Result<(Value, Vec<String>), Stop>,
) -> Result<(), Stop> {
    let mut out = Map::new();
    let mut failures = Vec::new();
    for kind in ["tmpfs", "ext4"] {
        let dir = match kind {
            "tmpfs" => ctx.own_tmpfs("bench-tmpfs")?,
            _ => crate::framework::fixtures::ext4(ctx)?,
        };
        let (native, mib, note) = match prepare(&dir)? {
            Ok(p) => p,
            Err(why) => {
                out.insert(kind.into(), json!({ "note": why }));
                continue;
            }
        };
        let (mut record, failed) = with(ctx, &native)?;
        record["size_mib"] = json!(mib);
        record["note"] = json!(note);
        failures.extend(failed.into_iter().map(|f| format!("{kind}: {f}")));
        out.insert(kind.into(), record);
    }
    ctx.observe(proto::observation::THROUGHPUT, Value::Object(out));
    ctx.check(failures.is_empty(), failures.join("; "));
    Ok(())
}

/// The files, the data size in MiB, and why it is smaller than usual.
type Prepared = (Files, u64, Option<String>);

/// The data file and the small files on `dir`, sized to its free space (the 8 MiB ext4
/// image has about 6 MiB free, and a write workload that filled it would measure ENOSPC):
/// the files, the data size in MiB and why it is smaller than usual; or why nothing fits.
fn prepare(dir: &Path) -> Result<Result<Prepared, String>, Stop> {
    let st = rustix::fs::statvfs(dir)?;
    let free = st.f_bavail * st.f_frsize;
    let small_total = (SMALL_FILES * SMALL_SIZE) as u64;
    let mib = (free.saturating_sub(small_total) / 2 / (1 << 20)).min(DATA_MIB);
    if mib == 0 {
        return Ok(Err(format!(
            "{} KiB free: too small for the workloads",
            free >> 10
        )));
    }
    let note = (mib < DATA_MIB).then(|| {
        format!(
            "a {mib} MiB file: the file system has {} MiB free",
            free >> 20
        )
    });
    let size = (mib << 20) as usize;
    std::fs::write(dir.join("data"), pattern(500, size))?;
    let mut files = Files {
        data: dir.join("data"),
        small: Vec::new(),
        size,
    };
    for i in 0..SMALL_FILES {
        let p = dir.join(format!("s{i:02}"));
        std::fs::write(&p, pattern(600 + i as u64, SMALL_SIZE))?;
        files.small.push(p);
    }
    Ok(Ok((files, mib, note)))
}

/// Every workload on every path, one warm-up round and [`REPS`] counted, the paths in turn
/// within each: the record (`workloads`) and the failures.
fn measure(paths: &[(&str, Files)], size: usize) -> (Value, Vec<String>) {
    let mut values: Map<String, Value> = Map::new();
    let mut failures = Vec::new();
    for rep in 0..=REPS {
        for (workload, _) in WORKLOADS {
            for (path, files) in paths {
                let got = run(workload, files, size, *path != "native");
                let entry = values
                    .entry(workload.to_string())
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .expect("an object")
                    .entry(path.to_string())
                    .or_insert_with(|| json!([]));
                match got {
                    // The first round warms up: not counted.
                    Ok(v) if rep > 0 => entry.as_array_mut().expect("an array").push(json!(v)),
                    Ok(_) => {}
                    Err(e) => {
                        let what = format!("{workload} through {path}: {e}");
                        if !failures.contains(&what) {
                            failures.push(what);
                        }
                    }
                }
            }
        }
    }
    let mut workloads = Map::new();
    for (name, unit) in WORKLOADS {
        let mut w = values.remove(name).unwrap_or_else(|| json!({}));
        w["unit"] = json!(unit);
        workloads.insert(name.into(), w);
    }
    (json!({ "workloads": workloads }), failures)
}

/// Serve `native`'s files on `fs` under names with `prefix`, in passthrough mode or not.
fn serve(fs: &FuseFs, native: &Files, prefix: &str, passthrough: bool) -> Result<Files, Stop> {
    let add = |name: &str, path: &Path| -> Result<PathBuf, Stop> {
        if passthrough {
            fs.add_passthrough_file_at(name, path)?;
        } else {
            fs.add_file_at(name, path, OpenReply::CACHED)?;
        }
        Ok(fs.path(name))
    };
    let data = add(&format!("{prefix}-data"), &native.data)?;
    let small = native
        .small
        .iter()
        .enumerate()
        .map(|(i, p)| add(&format!("{prefix}-s{i:02}"), p))
        .collect::<Result<_, _>>()?;
    Ok(Files {
        data,
        small,
        size: native.size,
    })
}

/// One measurement of a workload: MiB/s or ops/s. A FUSE file's own page cache is dropped before a read
/// workload (a plain FUSE file then goes to its server); the backing file's pages stay
/// warm for every path, so the paths differ only in what FUSE adds.
fn run(workload: &str, files: &Files, size: usize, fuse: bool) -> std::io::Result<f64> {
    // Passes until the measurement is long enough to time well (the host is 50 times
    // faster than a TCG guest): the rate is all the work over all the time.
    let (mut work, mut took, mut passes) = (0.0, Duration::ZERO, 0);
    while took < MIN_TIME && passes < MAX_PASSES {
        let (w, t) = pass(workload, files, size, fuse)?;
        work += w;
        took += t;
        passes += 1;
    }
    Ok(work / took.as_secs_f64().max(1e-9))
}

/// A measurement lasts at least this long, in up to [`MAX_PASSES`] passes.
const MIN_TIME: Duration = Duration::from_millis(20);
const MAX_PASSES: u32 = 200;

/// One pass of a workload: (MiB or operations done, the time it took).
fn pass(
    workload: &str,
    files: &Files,
    size: usize,
    fuse: bool,
) -> std::io::Result<(f64, Duration)> {
    let cold = |p: &Path| if fuse { cold(p) } else { File::open(p) };
    let mib = size as f64 / (1 << 20) as f64;
    match workload {
        "seq_read" => {
            let f = cold(&files.data)?;
            let mut buf = vec![0u8; 1 << 20];
            let t = Instant::now();
            let mut off = 0;
            while off < size {
                let n = f.read_at(&mut buf, off as u64)?;
                if n == 0 {
                    return Err(short(off, size));
                }
                off += n;
            }
            Ok((mib, t.elapsed()))
        }
        "seq_write" => {
            let f = File::options().write(true).open(&files.data)?;
            let buf = pattern(700, 1 << 20);
            let t = Instant::now();
            let mut off = 0;
            while off < size {
                let n = buf.len().min(size - off);
                f.write_all_at(&buf[..n], off as u64)?;
                off += n;
            }
            Ok((mib, t.elapsed()))
        }
        "rand_read" | "rand_write" => {
            let f = if workload == "rand_read" {
                cold(&files.data)?
            } else {
                File::options().write(true).open(&files.data)?
            };
            let pages = (size / 4096) as u64;
            let mut buf = vec![0u8; 4096];
            let mut x: u64 = 0x2545_F491_4F6C_DD1D;
            let t = Instant::now();
            for _ in 0..RANDOM_OPS {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let off = (x % pages) * 4096;
                if workload == "rand_read" {
                    f.read_exact_at(&mut buf, off)?;
                } else {
                    f.write_all_at(&buf, off)?;
                }
            }
            Ok((RANDOM_OPS as f64, t.elapsed()))
        }
        "mmap_read" => {
            use rustix::mm::{MapFlags, ProtFlags};
            let f = cold(&files.data)?;
            let t = Instant::now();
            // SAFETY: a private read-only mapping of `size` bytes of an open file, unmapped
            // below; only read through.
            let map = unsafe {
                rustix::mm::mmap(
                    std::ptr::null_mut(),
                    size,
                    ProtFlags::READ,
                    MapFlags::SHARED,
                    f.as_fd(),
                    0,
                )?
            };
            let mut sum = 0u64;
            for page in (0..size).step_by(4096) {
                // SAFETY: `page` is inside the mapping.
                sum = sum.wrapping_add(unsafe { *(map as *const u8).add(page) } as u64);
            }
            std::hint::black_box(sum);
            // SAFETY: unmapping what was mapped above.
            unsafe { rustix::mm::munmap(map, size)? };
            Ok((mib, t.elapsed()))
        }
        "small_files" => {
            let mut buf = vec![0u8; SMALL_SIZE];
            let t = Instant::now();
            for _ in 0..2 {
                for p in &files.small {
                    let f = File::open(p)?;
                    f.read_exact_at(&mut buf, 0)?;
                }
            }
            Ok(((2 * files.small.len()) as f64, t.elapsed()))
        }
        other => Err(std::io::Error::other(format!("no workload {other}"))),
    }
}

/// Open `path` for reading with its page cache dropped: a plain FUSE file then goes to the
/// server; the backing file's own pages (tmpfs is memory; ext4's stay cached) are the same
/// for every path.
fn cold(path: &Path) -> std::io::Result<File> {
    let f = File::open(path)?;
    crate::framework::fixtures::drop_page_cache(&f)?;
    Ok(f)
}

fn short(off: usize, size: usize) -> std::io::Error {
    std::io::Error::other(format!("end of file at {off} of {size} bytes"))
}
