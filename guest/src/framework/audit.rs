//! The release audit, a step of every case rather than of each case's care: once the case
//! has ended (its FUSE connections unmounted and aborted, its servers gone), every file
//! system it mounted, backing ones included (tmpfs, ext4 on a loop device, overlayfs, a
//! lower FUSE mount), must unmount without MNT_DETACH. A kernel that kept a reference (a
//! backing file never put, after a refused BACKING_OPEN say) leaves one busy: EBUSY.

use std::path::Path;
use std::time::Duration;

use crate::sys::Mount;

/// What the audit found.
#[derive(Debug, Default, PartialEq)]
pub struct Audit {
    /// "mountpoint (fstype)" of each mount still busy after the grace period.
    pub busy: Vec<String>,
    /// How many of the case's mounts came off.
    pub released: usize,
    /// "connection N: ids" of each FUSE connection whose fusectl `backing_files` (where the
    /// kernel has that file) still lists backing files after the case.
    pub backing_files: Vec<String>,
}

/// How long a mount may stay busy after the case: references the kernel drops from a
/// workqueue (a deferred fput) land within it.
const GRACE: Duration = Duration::from_millis(500);

/// The mounts of this namespace now, by id: taken before the case, so that only what the
/// case mounted is audited.
pub fn before() -> Vec<u32> {
    crate::sys::mounts()
        .map(|m| m.iter().map(|m| m.id).collect())
        .unwrap_or_default()
}

/// Unmount every mount made since `before`, the last made first (so a mount comes off
/// before the one it sits on), each without MNT_DETACH; one still busy after `GRACE` is
/// recorded and then detached, so the namespace still goes away cleanly.
pub fn release_since(before: &[u32]) -> Audit {
    let Ok(now) = crate::sys::mounts() else {
        return Audit::default();
    };
    let made: Vec<Mount> = now
        .into_iter()
        .filter(|m| !before.contains(&m.id))
        .collect();
    let mut audit = Audit::default();
    // Before anything comes off: a FUSE connection the case left mounted must hold no
    // backing file any more (its ids closed, its files released).
    for m in made.iter().filter(|m| m.fstype.starts_with("fuse")) {
        let listing = Path::new("/sys/fs/fuse/connections")
            .join(m.minor.to_string())
            .join("backing_files");
        if let Ok(text) = std::fs::read_to_string(&listing) {
            if !text.trim().is_empty() {
                audit.backing_files.push(format!(
                    "connection {}: {}",
                    m.minor,
                    text.split_whitespace().collect::<Vec<_>>().join(" ")
                ));
            }
        }
    }
    for m in made.iter().rev() {
        let path = Path::new(&m.mountpoint);
        match unmount_within(path, GRACE) {
            Ok(()) => audit.released += 1,
            Err(rustix::io::Errno::BUSY) => {
                audit.busy.push(format!("{} ({})", m.mountpoint, m.fstype));
                let _ = rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH);
            }
            // Gone already: a mount beneath it was unmounted with it, or the case detached it.
            Err(_) => {}
        }
    }
    audit
}

fn unmount_within(path: &Path, grace: Duration) -> Result<(), rustix::io::Errno> {
    let deadline = std::time::Instant::now() + grace;
    loop {
        match rustix::mount::unmount(path, rustix::mount::UnmountFlags::empty()) {
            Err(rustix::io::Errno::BUSY) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            r => return r,
        }
    }
}
