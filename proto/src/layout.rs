//! Names and paths both sides use: where things are in the guest, what they are called.

/// The virtio-console port the results stream over (`virtserialport,name=...`).
pub const RESULT_PORT: &str = "fpt.results";

/// Where the harness packs kernel modules in the initramfs, and the file there that lists
/// them in load order (dependencies first).
pub const MODULE_DIR: &str = "/lib/modules/fpt";
pub const MODULE_ORDER: &str = "order";

/// Where the ext4 image (in the [`crate::sparse`] format) is in the initramfs.
pub const GUEST_EXT4_IMAGE: &str = "/fpt/ext4.sparse";
/// In host mode the harness names the image in this environment variable instead.
pub const EXT4_IMAGE_ENV: &str = "FPT_EXT4_IMAGE";

/// The kernel command line parameter naming a virtio-fs tag to mount at [`HOST_ROOT`].
pub const SHARE_PARAM: &str = "fpt.share";
/// Where the host's root is in the guest when it is shared.
pub const HOST_ROOT: &str = "/host";

/// The kernel command line parameter naming the cases to run: `all` or `a.b,c.d`.
pub const CASES_PARAM: &str = "fpt.cases";

/// The kernel command line parameter that deals the cases of [`CASES_PARAM`]: `I/N[,I/N]`,
/// each [`crate::catalog::Deal`] applied in turn (a CI shard, then this boot's share).
pub const DEAL_PARAM: &str = "fpt.deal";

/// The kernel command line parameter that asks for coverage (`fpt.coverage=1`): the agent
/// resets the kernel's gcov counters before each case and sends them after it.
pub const COVERAGE_PARAM: &str = "fpt.coverage";
/// Where debugfs puts the gcov counters of a kernel built with CONFIG_GCOV_KERNEL.
pub const GCOV_DIR: &str = "/sys/kernel/debug/gcov";

/// What the agent writes to the kernel log (so to the console) as each case starts and
/// ends: the console then says by itself which case each kernel report belongs to, live
/// and when a saved console.log is replayed.
pub const CASE_START_MARKER: &str = "fpt-agent: start ";
pub const CASE_END_MARKER: &str = "fpt-agent: end ";

/// The case a console line marks the start or end of, if it is a marker.
pub fn marker(line: &str) -> Option<Marker<'_>> {
    if let Some(at) = line.find(CASE_START_MARKER) {
        return Some(Marker::Start(
            line[at + CASE_START_MARKER.len()..].trim_end(),
        ));
    }
    let at = line.find(CASE_END_MARKER)?;
    Some(Marker::End(line[at + CASE_END_MARKER.len()..].trim_end()))
}

#[derive(Debug, PartialEq, Eq)]
pub enum Marker<'a> {
    Start(&'a str),
    End(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_behind_the_timestamp() {
        assert_eq!(
            marker("[    3.10] fpt-agent: start init.offer"),
            Some(Marker::Start("init.offer"))
        );
        assert_eq!(
            marker("[    3.20] fpt-agent: end init.offer\r"),
            Some(Marker::End("init.offer"))
        );
        assert_eq!(marker("[    3.20] fuse: init (API version 7.41)"), None);
    }
}
