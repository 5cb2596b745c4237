//! Small system helpers the cases share: errno names and thread capabilities.

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
    fn errno_names_are_symbolic() {
        assert_eq!(errno_name(Errno::NOENT), "ENOENT");
        assert_eq!(errno_name(Errno::LOOP), "ELOOP");
        assert_eq!(errno_name(Errno::from_raw_os_error(4000)), "E#4000");
        assert_eq!(outcome::<()>(&Err(Errno::PERM)), "EPERM");
        assert_eq!(outcome(&Ok(3)), "ok");
    }
}
