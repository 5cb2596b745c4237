//! An ext4 filesystem for backing files: the harness makes one small image with mkfs.ext4
//! (the guest has no mkfs) and ships its non-zero blocks ([`Sparse`]); a case expands a
//! private copy and mounts it on a loop device.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use rustix::mount::MountFlags;

/// Where the image is in the guest's initramfs.
pub const GUEST_IMAGE: &str = "/fpt/ext4.sparse";
/// In host mode the harness names the image in this variable instead.
pub const IMAGE_ENV: &str = "FPT_EXT4_IMAGE";

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
            Unavailable::NoImage => "no ext4 image (the harness makes it with mkfs.ext4 from e2fsprogs)",
            Unavailable::NoExt4 => "this kernel has no ext4",
            Unavailable::NoLoop => "this kernel has no loop devices",
        })
    }
}

/// The image the harness provided, if any.
pub fn image() -> Option<PathBuf> {
    let path = std::env::var_os(IMAGE_ENV).map(PathBuf::from).unwrap_or_else(|| GUEST_IMAGE.into());
    path.is_file().then_some(path)
}

/// Copy the image into `scratch` and mount it at `at` through a loop device that frees
/// itself when unmounted (the case's mount namespace ends with the case).
pub fn mount_ext4(scratch: &Path, at: &Path) -> io::Result<Result<(), Unavailable>> {
    let Some(image) = image() else { return Ok(Err(Unavailable::NoImage)) };
    if !std::fs::read_to_string("/proc/filesystems")?.lines().any(|l| l.trim_end().ends_with("\text4")) {
        return Ok(Err(Unavailable::NoExt4));
    }
    let Ok(control) = File::open("/dev/loop-control") else { return Ok(Err(Unavailable::NoLoop)) };
    let copy = scratch.join("ext4.img");
    Sparse::expand(&std::fs::read(&image)?, &copy)?;
    let backing = File::options().read(true).write(true).open(&copy)?;
    let (path, device) = attach(&control, &backing)?;
    rustix::mount::mount(&path, at, "ext4", MountFlags::empty(), None)?;
    // Only now: an autoclear device closed by its last opener before the mount detaches.
    drop(device);
    Ok(Ok(()))
}

/// An image as its size and its non-zero blocks: `MAGIC`, the size (u64 LE), then for each
/// non-zero block its offset (u64 LE) and its `BLOCK` bytes.
pub struct Sparse;

impl Sparse {
    const MAGIC: &'static [u8; 8] = b"FPTSPRS1";
    const BLOCK: usize = 4096;

    pub fn encode(image: &[u8]) -> Vec<u8> {
        let mut out = Self::MAGIC.to_vec();
        out.extend_from_slice(&(image.len() as u64).to_le_bytes());
        for (i, block) in image.chunks(Self::BLOCK).enumerate() {
            if block.iter().any(|&b| b != 0) {
                out.extend_from_slice(&((i * Self::BLOCK) as u64).to_le_bytes());
                out.extend_from_slice(block);
                out.resize(out.len() + Self::BLOCK - block.len(), 0);
            }
        }
        out
    }

    /// Write the image `sparse` describes to a new (sparse) file at `to`.
    pub fn expand(sparse: &[u8], to: &Path) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "not an fpt sparse image");
        let rest = sparse.strip_prefix(Self::MAGIC.as_slice()).ok_or_else(bad)?;
        let (size, mut records) = rest.split_at_checked(8).ok_or_else(bad)?;
        let size = u64::from_le_bytes(size.try_into().expect("8 bytes"));
        let file = File::create(to)?;
        file.set_len(size)?;
        while !records.is_empty() {
            let (offset, rest) = records.split_at_checked(8).ok_or_else(bad)?;
            let (block, rest) = rest.split_at_checked(Self::BLOCK).ok_or_else(bad)?;
            let offset = u64::from_le_bytes(offset.try_into().expect("8 bytes"));
            // The last block was padded to a whole one: keep the image's size.
            let len = size.saturating_sub(offset).min(Self::BLOCK as u64) as usize;
            file.write_all_at(&block[..len], offset)?;
            records = rest;
        }
        Ok(())
    }
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
        if unsafe { libc::ioctl(device.as_raw_fd(), LOOP_CONFIGURE, &config as *const LoopConfig) } == 0 {
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
    fn sparse_images_expand_to_the_same_bytes() {
        let mut image = vec![0u8; 5 * 4096 + 100];
        image[10] = 1;
        image[3 * 4096 + 7] = 2;
        image[5 * 4096 + 99] = 3;
        let sparse = super::Sparse::encode(&image);
        assert_eq!(sparse.len(), 16 + 3 * (8 + 4096), "only the non-zero blocks are kept");
        let dir = std::env::temp_dir().join(format!("fpt-sparse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("img");
        super::Sparse::expand(&sparse, &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), image);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn loop_config_has_the_uapi_size() {
        assert_eq!(std::mem::size_of::<super::LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<super::LoopConfig>(), 304);
    }
}
