//! The ext4 image the guest mounts (on a loop device) for backing files on ext4. The guest
//! has no mkfs, so the host makes one small image with mkfs.ext4, once, into the cache, and
//! keeps only its non-zero blocks (`proto::sparse::Sparse`): a fresh filesystem is mostly
//! zeros, and the image goes into every initramfs.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Large enough for the I/O cases' ~4 MB files; small because it goes into every initramfs.
const SIZE: &str = "8M";

/// The cached image in sparse form, made now if it is missing.
pub fn ext4_image(cache: &Path) -> Result<PathBuf> {
    let path = cache.join("images").join(format!("ext4-{SIZE}.sparse"));
    if path.is_file() {
        return Ok(path);
    }
    let mkfs = mkfs_ext4()?;
    let dir = path.parent().expect("the image path has a parent");
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    let partial = dir.join(format!("ext4-{SIZE}.img.{}", std::process::id()));
    // No journal: the cases test stacking and data, and the image stays small.
    let made = crate::env::process::output(
        Command::new(&mkfs)
            .args([
                "-q",
                "-F",
                "-O",
                "^has_journal",
                "-E",
                "root_owner=0:0",
                "-L",
                "fpt",
            ])
            .arg(&partial)
            .arg(SIZE),
    );
    if let Err(e) = made {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let raw = std::fs::read(&partial).map_err(|e| Error::io(partial.display(), e));
    let _ = std::fs::remove_file(&partial);
    let sparse = proto::sparse::Sparse::encode(&raw?);
    let tmp = path.with_extension(format!("sparse.{}", std::process::id()));
    std::fs::write(&tmp, sparse).map_err(|e| Error::io(tmp.display(), e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(path.display(), e))?;
    Ok(path)
}

/// mkfs.ext4 lives in /usr/sbin, which a non-root PATH often lacks.
fn mkfs_ext4() -> Result<PathBuf> {
    let sbin = ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    if let Some(p) = sbin {
        return Ok(p);
    }
    crate::env::provision::ensure("mkfs.ext4", "e2fsprogs")?;
    Ok(PathBuf::from("mkfs.ext4"))
}
