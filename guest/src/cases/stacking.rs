//! Stacking limits. A backing file's superblock must have s_stack_depth below the FUSE
//! mount's max_stack_depth (else ELOOP); tmpfs is 0, overlayfs is its deepest layer + 1, a
//! passthrough FUSE mount is its max_stack_depth; nothing may stack beyond 2.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::framework::fixtures::{ext4, overlay};
use crate::framework::{Case, Ctx, Stop};
use crate::fuse::{FuseFs, OpenReply};
use crate::sys::outcome;

/// What the cases of this group share.
const DEFAULTS: Case = Case {
    timeout: Duration::from_secs(15),
    ..Case::DEFAULT
};

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "stacking.tmpfs_depth_1",
            rule: "a backing file on tmpfs (depth 0) with max_stack_depth 1",
            verdict_rule: "pass on ok",
            run: tmpfs_depth_1,
            ..DEFAULTS
        },
        Case {
            name: "stacking.tmpfs_depth_2",
            rule: "a backing file on tmpfs (depth 0) with max_stack_depth 2",
            verdict_rule: "pass on ok",
            run: tmpfs_depth_2,
            ..DEFAULTS
        },
        Case {
            name: "stacking.ext4_depth_1",
            rule: "a backing file on ext4 (depth 0, on a loop device) with \
              max_stack_depth 1",
            verdict_rule: "pass on ok",
            run: ext4_depth_1,
            ..DEFAULTS
        },
        Case {
            name: "stacking.ext4_depth_2",
            rule: "a backing file on ext4 (depth 0, on a loop device) with \
              max_stack_depth 2",
            verdict_rule: "pass on ok",
            run: ext4_depth_2,
            ..DEFAULTS
        },
        Case {
            name: "stacking.overlay_depth_1",
            rule: "a backing file on overlayfs (depth 1) with max_stack_depth 1",
            verdict_rule: "pass on ELOOP",
            run: overlay_depth_1,
            ..DEFAULTS
        },
        Case {
            name: "stacking.overlay_depth_2",
            rule: "a backing file on overlayfs (depth 1) with max_stack_depth 2",
            verdict_rule: "pass on ok",
            run: overlay_depth_2,
            ..DEFAULTS
        },
        Case {
            name: "stacking.fuse_depth_1",
            rule: "a backing file on another passthrough FUSE mount (depth 1) with \
              max_stack_depth 1",
            verdict_rule: "pass on ELOOP",
            run: fuse_depth_1,
            ..DEFAULTS
        },
        Case {
            name: "stacking.fuse_depth_2",
            rule: "a backing file on another passthrough FUSE mount (depth 1) with \
              max_stack_depth 2",
            verdict_rule: "pass on ok",
            run: fuse_depth_2,
            ..DEFAULTS
        },
        Case {
            name: "stacking.virtiofs_depth_1",
            rule: "a backing file on virtio-fs (the host's root shared into the guest: a \
              FUSE connection, but not a passthrough one, so depth 0) with max_stack_depth 1",
            verdict_rule: "pass on ok",
            run: virtiofs_depth_1,
            uses_host_share: true,
            ..DEFAULTS
        },
        Case {
            name: "stacking.same_mount",
            rule: "a backing file on the same FUSE mount (its depth equals \
              max_stack_depth)",
            verdict_rule: "pass on ELOOP with depth 1 and with depth 2",
            run: same_mount,
            ..DEFAULTS
        },
        Case {
            name: "stacking.overlay_over_fuse_depth_1",
            rule: "overlayfs over a passthrough FUSE mount of depth 1 \
              (overlay depth 2) mounts",
            verdict_rule: "pass when the overlay mounts and reads through",
            run: overlay_over_fuse_depth_1,
            ..DEFAULTS
        },
        Case {
            name: "stacking.overlay_over_fuse_depth_2",
            rule: "overlayfs over a passthrough FUSE mount of depth 2 \
              would be depth 3: refused",
            verdict_rule: "pass when the overlay mount fails",
            run: overlay_over_fuse_depth_2,
            ..DEFAULTS
        },
        Case {
            name: "stacking.fuse_over_overlay_over_fuse",
            rule: "a three-level chain: FUSE (depth 2) with a backing \
              file on overlayfs over FUSE (depth 1): the overlay is at depth 2",
            verdict_rule: "pass on ELOOP",
            run: fuse_over_overlay_over_fuse,
            ..DEFAULTS
        },
    ]
}

/// BACKING_OPEN of `path` on a new passthrough mount of `depth`.
fn register(ctx: &mut Ctx, depth: u32, path: &Path) -> Result<String, Stop> {
    let fs = ctx.mount_passthrough(depth)?;
    Ok(outcome(&fs.backing_open_path(path)))
}

fn on_tmpfs(ctx: &mut Ctx, depth: u32) -> Result<(), Stop> {
    let path = ctx.scratch("plain")?.join("f");
    std::fs::write(&path, b"x")?;
    let got = register(ctx, depth, &path)?;
    ctx.expect("backing_open", got, "ok");
    Ok(())
}

fn virtiofs_depth_1(ctx: &mut Ctx) -> Result<(), Stop> {
    let fs = ctx.mount_passthrough(1)?;
    // The host's root shared into the guest: at /host under our own QEMU, or the root
    // itself under virtme-ng. The first virtio-fs mount either way.
    let Some(share) = crate::sys::mounts()?
        .into_iter()
        .find(|m| m.fstype == "virtiofs")
    else {
        return Err(Stop::Skip(
            "no virtio-fs mount: host mode, or a kernel without CONFIG_VIRTIO_FS".into(),
        ));
    };
    // A regular file on the share itself (it is read-only), not on something stacked over
    // it: vng lays overlayfs over /etc, /usr, /tmp and others (a file there is at depth 1
    // and rightly ELOOP).
    let on_share = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).is_ok_and(|m| {
            m.is_file()
                && rustix::fs::major(m.dev()) == 0
                && rustix::fs::minor(m.dev()) == share.minor
        })
    };
    let root = Path::new(&share.mountpoint);
    let Some(path) = file_on(root, &on_share) else {
        return Err(Stop::Skip(format!(
            "no regular file found directly on the virtio-fs mount at {}",
            share.mountpoint
        )));
    };
    let file = std::fs::File::open(path)?;
    let got = fs.backing_open(std::os::fd::AsFd::as_fd(&file));
    ctx.expect("backing_open", outcome(&got), "ok");
    Ok(())
}

/// The first file `wanted` accepts under `root`, breadth first, a few levels down, in name
/// order (the same file every run): etc/passwd under our QEMU's /host; under vng, whose
/// /etc, /usr, /tmp and others are overlays, a file of /boot or /root.
fn file_on(root: &Path, wanted: &dyn Fn(&Path) -> bool) -> Option<PathBuf> {
    let preferred = root.join("etc/passwd");
    if wanted(&preferred) {
        return Some(preferred);
    }
    let mut level = vec![root.to_path_buf()];
    for _ in 0..3 {
        let mut next = Vec::new();
        for dir in &level {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for p in paths.into_iter().take(64) {
                if wanted(&p) {
                    return Some(p);
                }
                if p.is_dir() && !p.is_symlink() {
                    next.push(p);
                }
            }
        }
        level = next;
    }
    None
}

fn tmpfs_depth_1(ctx: &mut Ctx) -> Result<(), Stop> {
    on_tmpfs(ctx, 1)
}

fn tmpfs_depth_2(ctx: &mut Ctx) -> Result<(), Stop> {
    on_tmpfs(ctx, 2)
}

fn on_ext4(ctx: &mut Ctx, depth: u32) -> Result<(), Stop> {
    // Mount first to skip cleanly on kernels without passthrough.
    let fs = ctx.mount_passthrough(depth)?;
    let path = ext4(ctx)?.join("f");
    std::fs::write(&path, b"x")?;
    ctx.expect("backing_open", outcome(&fs.backing_open_path(&path)), "ok");
    Ok(())
}

fn ext4_depth_1(ctx: &mut Ctx) -> Result<(), Stop> {
    on_ext4(ctx, 1)
}

fn ext4_depth_2(ctx: &mut Ctx) -> Result<(), Stop> {
    on_ext4(ctx, 2)
}

fn on_overlay(ctx: &mut Ctx, depth: u32, expected: &str) -> Result<(), Stop> {
    // Mount first to skip cleanly on kernels without passthrough.
    let fs = ctx.mount_passthrough(depth)?;
    let lower = ctx.scratch("lower")?;
    std::fs::write(lower.join("f"), b"x")?;
    let merged =
        overlay(ctx, "ovl", &lower)?.map_err(|e| Stop::Broken(format!("overlay mount: {e}")))?;
    ctx.expect(
        "backing_open",
        outcome(&fs.backing_open_path(&merged.join("f"))),
        expected,
    );
    Ok(())
}

fn overlay_depth_1(ctx: &mut Ctx) -> Result<(), Stop> {
    on_overlay(ctx, 1, "ELOOP")
}

fn overlay_depth_2(ctx: &mut Ctx) -> Result<(), Stop> {
    on_overlay(ctx, 2, "ok")
}

/// A passthrough FUSE mount of depth 1 serving "b" (cached), as a place for backing files.
fn lower_fuse(ctx: &mut Ctx, depth: u32) -> Result<FuseFs, Stop> {
    let lower = ctx.mount_passthrough(depth)?;
    lower.add_file("b", b"lower data", OpenReply::CACHED)?;
    Ok(lower)
}

fn fuse_depth_1(ctx: &mut Ctx) -> Result<(), Stop> {
    let lower = lower_fuse(ctx, 1)?;
    let got = register(ctx, 1, &lower.path("b"))?;
    ctx.expect("backing_open", got, "ELOOP");
    Ok(())
}

fn fuse_depth_2(ctx: &mut Ctx) -> Result<(), Stop> {
    let lower = lower_fuse(ctx, 1)?;
    let got = register(ctx, 2, &lower.path("b"))?;
    ctx.expect("backing_open", got, "ok");
    Ok(())
}

fn same_mount(ctx: &mut Ctx) -> Result<(), Stop> {
    for depth in [1, 2] {
        let fs = lower_fuse(ctx, depth)?;
        let got = outcome(&fs.backing_open_path(&fs.path("b")));
        ctx.expect(&format!("backing_open_depth_{depth}"), got, "ELOOP");
    }
    Ok(())
}

fn overlay_over_fuse_depth_1(ctx: &mut Ctx) -> Result<(), Stop> {
    let lower = lower_fuse(ctx, 1)?;
    let merged = overlay(ctx, "ovl", &lower.mnt)?;
    ctx.expect("overlay_mount", outcome(&merged), "ok");
    if let Ok(m) = merged {
        let data = std::fs::read(m.join("b")).map_err(|e| crate::fuse::errno(&e));
        ctx.check(
            data.as_deref() == Ok(b"lower data".as_slice()),
            "reading through the overlay failed",
        );
        let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
    }
    Ok(())
}

fn overlay_over_fuse_depth_2(ctx: &mut Ctx) -> Result<(), Stop> {
    let lower = lower_fuse(ctx, 2)?;
    let merged = overlay(ctx, "ovl", &lower.mnt)?;
    let got = outcome(&merged);
    ctx.check(got != "ok", "overlayfs mounted at depth 3");
    ctx.observe("overlay_mount", got);
    Ok(())
}

fn fuse_over_overlay_over_fuse(ctx: &mut Ctx) -> Result<(), Stop> {
    let bottom = lower_fuse(ctx, 1)?;
    let merged = overlay(ctx, "ovl", &bottom.mnt)?
        .map_err(|e| Stop::Broken(format!("overlay mount: {e}")))?;
    let got = register(ctx, 2, &merged.join("b"))?;
    ctx.expect("backing_open", got, "ELOOP");
    // The overlay holding the refused file stays for the release audit, which unmounts it
    // without MNT_DETACH: EBUSY if the kernel kept the file.
    Ok(())
}
