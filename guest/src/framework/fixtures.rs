//! What cases of several groups set up or check the same way: an ext4 or overlay file
//! system of the case's own, the round trip through a FUSE file and its backing file,
//! splicing, data patterns, and waiting for the kernel to let go of a mount.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::io::Errno;
use rustix::mount::MountFlags;

use super::subject::Subject;
use super::{Ctx, Stop};

/// Unmount `dir` (not lazily), retrying for up to 2 s: the kernel drops its last reference
/// to a backing file asynchronously after the final release. "ok" or the last errno.
pub fn unmount_when_released(dir: &Path) -> String {
    unmount_within(dir, Duration::from_secs(2))
}

/// [`unmount_when_released`], retrying for up to `patience`: where a hold is expected to
/// last (a server's own fds), waiting longer only costs time.
pub fn unmount_within(dir: &Path, patience: Duration) -> String {
    let mut last = String::new();
    for _ in 0..patience.as_millis().div_ceil(10).max(1) {
        last = crate::sys::outcome(&rustix::mount::unmount(
            dir,
            rustix::mount::UnmountFlags::empty(),
        ));
        // EINVAL: nothing is mounted there (any more); waiting will not change that.
        if last == "ok" || last == "EINVAL" {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    last
}

/// Drop the clean page cache of `file` (so a plain FUSE file's next read goes to its
/// server): fadvise(DONTNEED), or where the kernel has no fadvise (tinyconfig leaves
/// CONFIG_ADVISE_SYSCALLS off) every clean page cache through /proc/sys/vm/drop_caches.
pub fn drop_page_cache(file: &std::fs::File) -> std::io::Result<()> {
    match rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed) {
        Err(Errno::NOSYS) => std::fs::write("/proc/sys/vm/drop_caches", "1"),
        other => other.map_err(Into::into),
    }
}

/// Deterministic bytes that differ at every offset and between seeds, so a misplaced or
/// stale block never compares equal by accident.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    // Eight bytes per xorshift step: the I/O cases make tens of MiB of it under TCG.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// (offset, length) pairs written through the FUSE file: unaligned, page-sized, and one over
/// 1 MiB that also straddles the 1 MiB max_write. No two ranges (of either list) overlap.
const FUSE_WRITES: &[(u64, usize)] = &[
    (0, 1),
    (4093, 2),
    (4096, 4096),
    (12345, 100_000),
    (1_048_577, 1_572_864),
];

/// Ranges written to the backing file and read back through the FUSE file.
const BACKING_WRITES: &[(u64, usize)] = &[(200_001, 7), (2_700_000, 1_258_291)];

/// Write through the FUSE file and compare the backing file, then the other way round.
/// Each direction uses its own open, so no page cache survives from one to the other.
pub fn round_trip(ctx: &mut Ctx, fs: &dyn Subject, backing: &std::path::Path) -> Result<(), Stop> {
    let fuse_path = fs.path("data");
    let mut mismatched = Vec::new();

    let fuse = File::options().read(true).write(true).open(&fuse_path)?;
    let mut written = 0;
    for &(off, len) in FUSE_WRITES {
        fuse.write_all_at(&pattern(off, len), off)?;
        written += len;
    }
    drop(fuse);
    let direct = File::open(backing)?;
    for &(off, len) in FUSE_WRITES {
        if read_exact_at(&direct, off, len)? != pattern(off, len) {
            mismatched.push(format!("fuse->backing {off}+{len}"));
        }
    }

    let direct = File::options().write(true).open(backing)?;
    for &(off, len) in BACKING_WRITES {
        direct.write_all_at(&pattern(off ^ 0xff, len), off)?;
    }
    drop(direct);
    let fuse = File::open(&fuse_path)?;
    let mut read = 0;
    for &(off, len) in BACKING_WRITES.iter().chain(FUSE_WRITES) {
        let seed = if BACKING_WRITES.contains(&(off, len)) {
            off ^ 0xff
        } else {
            off
        };
        let got = read_exact_at(&fuse, off, len)?;
        read += got.len();
        if got != pattern(seed, len) {
            mismatched.push(format!("backing->fuse {off}+{len}"));
        }
    }
    let size = fuse.metadata()?.len();

    ctx.observe("bytes_written_through_fuse", written);
    ctx.observe("bytes_read_through_fuse", read);
    ctx.observe("size_seen_through_fuse", size);
    ctx.check(
        mismatched.is_empty(),
        format!("data differs: {}", mismatched.join(", ")),
    );
    ctx.observe("mismatched_ranges", mismatched);
    Ok(())
}

/// Put `data` in a pipe and splice it into `file` at `off`; the bytes moved, or the errno of
/// the first call that failed.
pub fn splice_into(file: &File, data: &[u8], mut off: u64) -> rustix::io::Result<usize> {
    let (r, w) = rustix::pipe::pipe()?;
    rustix::pipe::fcntl_setpipe_size(&w, 1 << 20)?;
    rustix::io::write(&w, data)?;
    let mut moved = 0;
    while moved < data.len() {
        let n = rustix::pipe::splice(
            &r,
            None,
            file,
            Some(&mut off),
            data.len() - moved,
            rustix::pipe::SpliceFlags::empty(),
        )?;
        if n == 0 {
            break;
        }
        moved += n;
    }
    Ok(moved)
}

/// Mount an overlay of `lower` at a fresh directory; Skip if the kernel has no overlayfs.
pub fn overlay(ctx: &mut Ctx, name: &str, lower: &Path) -> Result<Result<PathBuf, Errno>, Stop> {
    let base = ctx.scratch(name)?;
    let (upper, work, merged) = (base.join("upper"), base.join("work"), base.join("merged"));
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d)?;
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let opts = std::ffi::CString::new(opts).expect("no NUL in paths");
    match rustix::mount::mount(
        "overlay",
        &merged,
        "overlay",
        MountFlags::empty(),
        Some(opts.as_c_str()),
    ) {
        Ok(()) => Ok(Ok(merged)),
        Err(Errno::NODEV) => Err(Stop::Skip("this kernel has no overlayfs".into())),
        Err(e) => Ok(Err(e)),
    }
}

/// A fresh ext4 filesystem of the case's own (the harness's image on a loop device);
/// Skip where the image, ext4 or loop devices are missing.
pub fn ext4(ctx: &mut Ctx) -> Result<PathBuf, Stop> {
    let (image_dir, at) = (ctx.scratch("ext4-image")?, ctx.scratch("ext4")?);
    crate::disk::mount_ext4(&image_dir, &at)?.map_err(|why| Stop::Skip(why.to_string()))?;
    Ok(at)
}

/// `len` bytes of `f` at `off`.
pub fn read_exact_at(f: &File, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, off)?;
    Ok(buf)
}
