//! The format the ext4 image travels in: the harness makes one small image with mkfs.ext4
//! and ships only its non-zero blocks; a case in the guest expands a private copy.

use std::fs::File;
use std::io;
use std::path::Path;

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
        let rest = sparse
            .strip_prefix(Self::MAGIC.as_slice())
            .ok_or_else(bad)?;
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

#[cfg(test)]
mod tests {
    #[test]
    fn sparse_images_expand_to_the_same_bytes() {
        let mut image = vec![0u8; 5 * 4096 + 100];
        image[10] = 1;
        image[3 * 4096 + 7] = 2;
        image[5 * 4096 + 99] = 3;
        let sparse = super::Sparse::encode(&image);
        assert_eq!(
            sparse.len(),
            16 + 3 * (8 + 4096),
            "only the non-zero blocks are kept"
        );
        let dir = std::env::temp_dir().join(format!("fpt-sparse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("img");
        super::Sparse::expand(&sparse, &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), image);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
