//! An ext4 filesystem for backing files: the harness makes one small image with mkfs.ext4
//! (the guest has no mkfs) and ships its non-zero blocks ([`Sparse`]); a case expands a
//! private copy and mounts it on a loop device.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use rustix::mount::MountFlags;

use proto::layout::{EXT4_IMAGE_ENV, GUEST_EXT4_IMAGE};
use proto::sparse::Sparse;

/// Why ext4 cannot be had here; cases turn it into a skip.
#[derive(Debug)]
pub enum Unavailable {
    NoImage,
    NoExt4,
    NoLoop,
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unavailable::NoImage => {
                "no ext4 image (the harness makes it with mkfs.ext4 from e2fsprogs)"
            }
            Unavailable::NoExt4 => "this kernel has no ext4",
            Unavailable::NoLoop => "this kernel has no loop devices",
        })
    }
}

/// The image the harness provided, if any.
pub fn image() -> Option<PathBuf> {
    let path = std::env::var_os(EXT4_IMAGE_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| GUEST_EXT4_IMAGE.into());
    path.is_file().then_some(path)
}

/// Copy the image into `scratch` and mount it at `at` through a loop device that frees
/// itself when unmounted (the case's mount namespace ends with the case).
pub fn mount_ext4(scratch: &Path, at: &Path) -> io::Result<Result<(), Unavailable>> {
    let Some(image) = image() else {
        return Ok(Err(Unavailable::NoImage));
    };
    if !std::fs::read_to_string("/proc/filesystems")?
        .lines()
        .any(|l| l.trim_end().ends_with("\text4"))
    {
        return Ok(Err(Unavailable::NoExt4));
    }
    let Ok(control) = File::open("/dev/loop-control") else {
        return Ok(Err(Unavailable::NoLoop));
    };
    let copy = scratch.join("ext4.img");
    Sparse::expand(&std::fs::read(&image)?, &copy)?;
    let backing = File::options().read(true).write(true).open(&copy)?;
    let (path, device) = attach(&control, &backing)?;
    rustix::mount::mount(&path, at, "ext4", MountFlags::empty(), None)?;
    // Only now: an autoclear device closed by its last opener before the mount detaches.
    drop(device);
    Ok(Ok(()))
}

const LOOP_CTL_GET_FREE: libc::Ioctl = 0x4C82;
const LOOP_CONFIGURE: libc::Ioctl = 0x4C0A;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// struct loop_info64 of <linux/loop.h>.
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// struct loop_config of <linux/loop.h> (LOOP_CONFIGURE, Linux 5.8).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Bind `backing` to a free loop device; retry when another process takes the one offered.
fn attach(control: &File, backing: &File) -> io::Result<(PathBuf, File)> {
    let mut last = io::Error::from_raw_os_error(libc::EBUSY);
    for _ in 0..20 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument.
        let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let device = File::options().read(true).write(true).open(&path)?;
        // SAFETY: an all-zero loop_config is valid; the fields that matter are set below.
        let mut config: LoopConfig = unsafe { std::mem::zeroed() };
        config.fd = backing.as_raw_fd() as u32;
        config.info.flags = LO_FLAGS_AUTOCLEAR;
        // SAFETY: the ioctl reads a loop_config that lives for the call.
        if unsafe {
            libc::ioctl(
                device.as_raw_fd(),
                LOOP_CONFIGURE,
                &config as *const LoopConfig,
            )
        } == 0
        {
            return Ok((path, device));
        }
        last = io::Error::last_os_error();
        if last.raw_os_error() != Some(libc::EBUSY) {
            break;
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    #[test]
    fn loop_config_has_the_uapi_size() {
        assert_eq!(std::mem::size_of::<super::LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<super::LoopConfig>(), 304);
    }
}
