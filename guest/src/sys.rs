//! Small system helpers the cases share: errno names, thread capabilities, the mount table.

use rustix::io::Errno;
use rustix::thread::{CapabilitySet, CapabilitySets};

/// The symbolic name of an errno, as observations record it ("ENOENT").
pub fn errno_name(e: Errno) -> String {
    let raw = e.raw_os_error();
    let name = match raw {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::EROFS => "EROFS",
        libc::EPIPE => "EPIPE",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ELOOP => "ELOOP",
        libc::ENODATA => "ENODATA",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ENOTCONN => "ENOTCONN",
        libc::ESTALE => "ESTALE",
        libc::ETIMEDOUT => "ETIMEDOUT",
        _ => return format!("E#{raw}"),
    };
    name.to_string()
}

/// "ok" or the errno name: the usual observation of one syscall.
pub fn outcome<T>(r: &Result<T, Errno>) -> String {
    match r {
        Ok(_) => "ok".to_string(),
        Err(e) => errno_name(*e),
    }
}

/// The running kernel's version, from uname: what version-gated verdicts compare against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl KernelVersion {
    pub fn running() -> KernelVersion {
        Self::parse(&rustix::system::uname().release().to_string_lossy())
    }

    /// "6.12.117+deb12-cloud-amd64" -> 6.12.117; missing parts are 0.
    pub fn parse(release: &str) -> KernelVersion {
        let mut nums = release
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map(|p| p.parse().unwrap_or(0));
        KernelVersion {
            major: nums.next().unwrap_or(0),
            minor: nums.next().unwrap_or(0),
            patch: nums.next().unwrap_or(0),
        }
    }

    /// Whether a fix is in this kernel. `fixed_in` lists the first fixed release of each
    /// stable series it was backported to, and last the mainline release it landed in:
    /// `&[(6, 12, 48), (6, 17, 0)]`.
    pub fn has_fix(&self, fixed_in: &[(u32, u32, u32)]) -> bool {
        let Some(&(maj, min, _)) = fixed_in.last() else {
            return true;
        };
        if (self.major, self.minor) >= (maj, min) {
            return true;
        }
        fixed_in
            .iter()
            .any(|&(ma, mi, p)| (self.major, self.minor) == (ma, mi) && self.patch >= p)
    }

    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

/// One Linux AIO read or write (io_setup, io_submit, io_getevents, io_destroy), by raw
/// syscalls: the result field of its completion (bytes, or the errno).
pub fn aio_rw(fd: i32, write: bool, buf: *mut u8, len: usize, offset: i64) -> Result<i64, Errno> {
    #[repr(C)]
    #[derive(Default)]
    struct Iocb {
        data: u64,
        key: u32,
        rw_flags: u32,
        opcode: u16,
        reqprio: i16,
        fildes: u32,
        buf: u64,
        nbytes: u64,
        offset: i64,
        reserved2: u64,
        flags: u32,
        resfd: u32,
    }
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct IoEvent {
        data: u64,
        obj: u64,
        res: i64,
        res2: i64,
    }
    let check = |r: libc::c_long| {
        if r < 0 {
            Err(Errno::from_raw_os_error(last_errno()))
        } else {
            Ok(r)
        }
    };
    let mut ctx: libc::c_ulong = 0;
    // SAFETY: raw AIO syscalls with a context, control block and event of the kernel's layout,
    // all alive until io_destroy; `buf` is valid for `len` bytes (the caller's buffer).
    unsafe {
        check(libc::syscall(libc::SYS_io_setup, 1, &mut ctx))?;
        let mut cb = Iocb {
            opcode: if write { 1 } else { 0 }, // IOCB_CMD_PWRITE / IOCB_CMD_PREAD
            fildes: fd as u32,
            buf: buf as u64,
            nbytes: len as u64,
            offset,
            ..Default::default()
        };
        let mut list = [&mut cb as *mut Iocb];
        let submitted = check(libc::syscall(
            libc::SYS_io_submit,
            ctx,
            1,
            list.as_mut_ptr(),
        ));
        let mut event = IoEvent::default();
        let got = submitted.and_then(|_| {
            check(libc::syscall(
                libc::SYS_io_getevents,
                ctx,
                1,
                1,
                &mut event,
                std::ptr::null::<libc::timespec>(),
            ))
        });
        libc::syscall(libc::SYS_io_destroy, ctx);
        got?;
        if event.res < 0 {
            Err(Errno::from_raw_os_error(-event.res as i32))
        } else {
            Ok(event.res)
        }
    }
}

/// errno of the last failed libc call (EIO if there is none).
pub fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Run `f` with CAP_SYS_ADMIN dropped from this thread's effective set, then put it back.
/// Capabilities are per thread, so the FUSE server thread keeps its own.
pub fn without_cap_sys_admin<T>(f: impl FnOnce() -> T) -> Result<T, Errno> {
    let before: CapabilitySets = rustix::thread::capabilities(None)?;
    let mut dropped = before;
    dropped.effective.remove(CapabilitySet::SYS_ADMIN);
    rustix::thread::set_capabilities(None, dropped)?;
    let out = f();
    rustix::thread::set_capabilities(None, before)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_and_fixes() {
        let v = KernelVersion::parse("6.12.117+deb12-cloud-amd64");
        assert_eq!((v.major, v.minor, v.patch), (6, 12, 117));
        let fix = [(6, 12, 48), (6, 17, 0)];
        assert!(v.has_fix(&fix));
        assert!(!KernelVersion::parse("6.12.30").has_fix(&fix));
        assert!(!KernelVersion::parse("6.14.2").has_fix(&fix));
        assert!(KernelVersion::parse("6.18.44-fc-v657").has_fix(&fix));
        assert!(KernelVersion::parse("6.1.0-56-cloud-amd64").at_least(6, 1));
    }

    #[test]
    fn errno_names_are_symbolic() {
        assert_eq!(errno_name(Errno::NOENT), "ENOENT");
        assert_eq!(errno_name(Errno::LOOP), "ELOOP");
        assert_eq!(errno_name(Errno::from_raw_os_error(4000)), "E#4000");
        assert_eq!(outcome::<()>(&Err(Errno::PERM)), "EPERM");
        assert_eq!(outcome(&Ok(3)), "ok");
    }
}

/// One line of /proc/self/mountinfo: what the cases ask of it.
#[derive(Debug, PartialEq)]
pub struct Mount {
    /// The mount's id (unique while it is mounted).
    pub id: u32,
    /// The minor of the superblock's device: for FUSE (anonymous, major 0), its connection.
    pub minor: u32,
    pub mountpoint: String,
    pub fstype: String,
}

/// The calling process's mount table, in mount order. Read from mountinfo rather than by
/// stat(): a stat of a FUSE mount waits on a server that may be stalled.
pub fn mounts() -> std::io::Result<Vec<Mount>> {
    Ok(parse_mountinfo(&std::fs::read_to_string(
        "/proc/self/mountinfo",
    )?))
}

/// The last (topmost) mount at `mountpoint`, if any.
pub fn mount_at(mountpoint: &std::path::Path) -> std::io::Result<Option<Mount>> {
    let want = mountpoint.to_string_lossy();
    Ok(mounts()?.into_iter().rev().find(|m| m.mountpoint == want))
}

fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Optional fields end at "-"; the file system type follows it.
            let dash = f.iter().position(|w| *w == "-")?;
            Some(Mount {
                id: f.first()?.parse().ok()?,
                minor: f.get(2)?.split_once(':')?.1.parse().ok()?,
                mountpoint: f.get(4)?.to_string(),
                fstype: f.get(dash + 1)?.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod mountinfo_tests {
    use super::*;

    #[test]
    fn reads_device_mountpoint_and_type() {
        let text = "36 35 0:45 / /mnt/fuse rw,nosuid shared:1 - fuse.fpt fpt rw,user_id=0\n\
                    37 35 254:1 / /host ro - virtiofs host ro\n";
        let got = parse_mountinfo(text);
        assert_eq!(
            got,
            [
                Mount {
                    id: 36,
                    minor: 45,
                    mountpoint: "/mnt/fuse".into(),
                    fstype: "fuse.fpt".into()
                },
                Mount {
                    id: 37,
                    minor: 1,
                    mountpoint: proto::layout::HOST_ROOT.into(),
                    fstype: "virtiofs".into()
                },
            ]
        );
    }
}
