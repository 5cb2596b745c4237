//! Builds the guest's initramfs: the agent as `/init`, the modules it must load, the ext4
//! image of the ext4 cases, and the few nodes the kernel needs before devtmpfs is mounted. Written as a newc cpio archive
//! directly (no cpio tool, no root needed for device nodes), uncompressed: the kernel
//! unpacks it faster than it would decompress it under TCG.

use std::path::Path;

use crate::error::{Error, Result};
use crate::kernel::modules::Module;

use proto::layout::{GUEST_EXT4_IMAGE, MODULE_DIR, MODULE_ORDER};

/// `validate`: the server under test's spec, for [`proto::validate::GUEST_SPEC`].
pub fn build(
    agent: &Path,
    modules: &[Module],
    ext4_image: &Path,
    validate: Option<&[u8]>,
    out: &Path,
) -> Result<()> {
    let mut w = Writer::default();
    for dir in [
        "dev",
        "proc",
        "sys",
        "tmp",
        "lib",
        "lib/modules",
        "lib/modules/fpt",
        "fpt",
    ] {
        w.dir(dir);
    }
    let image = std::fs::read(ext4_image).map_err(|e| Error::io(ext4_image.display(), e))?;
    w.file(GUEST_EXT4_IMAGE.trim_start_matches('/'), 0o644, &image);
    if let Some(spec) = validate {
        w.file(
            proto::validate::GUEST_SPEC.trim_start_matches('/'),
            0o644,
            spec,
        );
    }
    // /dev/console must exist before devtmpfs, or init starts with no stdout.
    w.char_dev("dev/console", 0o600, 5, 1);
    let agent_bytes = std::fs::read(agent).map_err(|e| Error::io(agent.display(), e))?;
    w.file("init", 0o755, &agent_bytes);
    let mut order = String::new();
    for m in modules {
        let file = format!("{}.ko", m.name);
        w.file(
            &format!("{}/{file}", MODULE_DIR.trim_start_matches('/')),
            0o644,
            &m.bytes,
        );
        order.push_str(&file);
        order.push('\n');
    }
    w.file(
        &format!("{}/{MODULE_ORDER}", MODULE_DIR.trim_start_matches('/')),
        0o644,
        order.as_bytes(),
    );
    std::fs::write(out, w.finish()).map_err(|e| Error::io(out.display(), e))
}

/// A newc ("070701") cpio writer: just what an initramfs needs.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
    ino: u32,
}

impl Writer {
    /// A directory entry.
    pub fn dir(&mut self, path: &str) {
        self.entry(path, libc::S_IFDIR | 0o755, 2, (0, 0), &[]);
    }

    /// A regular file with its mode and contents.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        self.entry(path, libc::S_IFREG | mode, 1, (0, 0), data);
    }

    /// A character device node.
    pub fn char_dev(&mut self, path: &str, mode: u32, major: u32, minor: u32) {
        self.entry(path, libc::S_IFCHR | mode, 1, (major, minor), &[]);
    }

    /// The archive, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[]);
        self.buf
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_entries_are_aligned_and_terminated() {
        let mut w = Writer::default();
        w.file("init", 0o755, b"abc");
        let out = w.finish();
        assert!(out.starts_with(b"070701"));
        assert_eq!(out.len() % 4, 0);
        // header (110) + "init\0" (5) padded to 116, data 3 padded to 4.
        assert_eq!(&out[110..114], b"init");
        assert_eq!(&out[116..119], b"abc");
        assert_eq!(&out[120..126], b"070701");
        let trailer = String::from_utf8_lossy(&out[120 + 110..120 + 120]);
        assert!(trailer.starts_with("TRAILER!!!"));
        // filesize field of the first entry
        assert_eq!(&out[54..62], b"00000003");
    }
}
