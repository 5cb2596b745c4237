//! `LD_PRELOAD` witness of a FUSE server's backing ids. It wraps libc's `ioctl` and, for
//! `FUSE_DEV_IOC_BACKING_OPEN` and `FUSE_DEV_IOC_BACKING_CLOSE`, appends what was asked and
//! what the kernel answered to the file `$FPT_BACKING_LOG`, one line each:
//!
//! ```text
//! loaded PID
//! open RET ERRNO        (RET: the id, or -1)
//! close ID RET ERRNO
//! ```
//!
//! A server that makes its system calls without libc (Go's) never loads it: the log then
//! holds no `loaded` line, and the harness says the witness saw nothing.
//!
//! With `$FPT_REFUSE_BACKING` set to a file name, a BACKING_OPEN of a file of that name is
//! made by the calling thread without CAP_SYS_ADMIN in its effective set, so the kernel
//! itself refuses it (EPERM) and the server meets a real refusal for that one file: the
//! way `validate.fallback_scope` provokes one in a server that serves no file across a
//! mount point (where a stacked file would be refused for its depth). The log says
//! `refuse NAME` before such an open.

use std::ffi::{c_int, c_ulong, c_void, CStr};

/// `_IOW(229, 1, struct fuse_backing_map)`.
const BACKING_OPEN: c_ulong = 0x4010_e501;
/// `_IOW(229, 2, uint32_t)`.
const BACKING_CLOSE: c_ulong = 0x4004_e502;

type Ioctl = unsafe extern "C" fn(c_int, c_ulong, *mut c_void) -> c_int;

/// Append `line` to the log; errors are ignored (the witness must never break the server).
fn log(line: &str) {
    let Some(path) = std::env::var_os("FPT_BACKING_LOG") else {
        return;
    };
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// libc's own `ioctl`, the next definition after this library's.
fn real() -> Option<Ioctl> {
    const NAME: &CStr = c"ioctl";
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name; the symbol, when found, is
    // libc's ioctl, whose first three arguments are those of `Ioctl`.
    unsafe {
        let sym = libc::dlsym(libc::RTLD_NEXT, NAME.as_ptr());
        (!sym.is_null()).then(|| std::mem::transmute::<*mut c_void, Ioctl>(sym))
    }
}

/// The wrapper. libc declares `ioctl(int, unsigned long, ...)`; every request we care about
/// passes one pointer, which the x86-64 calling convention puts where a third fixed argument
/// goes, so this definition serves variadic callers too.
///
/// # Safety
/// As libc's `ioctl`: `arg` is what `request` expects.
#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    let Some(real) = real() else {
        // SAFETY: errno is this thread's.
        unsafe { *libc::__errno_location() = libc::ENOSYS };
        return -1;
    };
    let refuse = request == BACKING_OPEN && !arg.is_null() && {
        // SAFETY: BACKING_OPEN's argument points to struct fuse_backing_map, whose first
        // field is the backing file's fd.
        let backing = unsafe { *(arg as *const i32) };
        refused(backing)
    };
    let saved = if refuse { drop_sys_admin() } else { None };
    // SAFETY: forwarded as given.
    let ret = unsafe { real(fd, request, arg) };
    if let Some(caps) = saved {
        restore(caps);
    }
    // SAFETY: errno is this thread's.
    let errno = if ret < 0 { unsafe { *libc::__errno_location() } } else { 0 };
    match request {
        BACKING_OPEN => log(&format!("open {ret} {errno}\n")),
        BACKING_CLOSE if !arg.is_null() => {
            // SAFETY: BACKING_CLOSE's argument points to the u32 id.
            let id = unsafe { *(arg as *const u32) };
            log(&format!("close {id} {ret} {errno}\n"));
        }
        _ => return ret,
    }
    if ret < 0 {
        // SAFETY: errno is this thread's; the log's own calls may have changed it.
        unsafe { *libc::__errno_location() = errno };
    }
    ret
}

/// Is `fd` a file whose name `$FPT_REFUSE_BACKING` names? Logs the refusal when it is.
fn refused(fd: c_int) -> bool {
    let Some(name) = std::env::var_os("FPT_REFUSE_BACKING") else {
        return false;
    };
    let Ok(target) = std::fs::read_link(format!("/proc/self/fd/{fd}")) else {
        return false;
    };
    let hit = target.file_name() == Some(name.as_os_str());
    if hit {
        log(&format!("refuse {}\n", name.to_string_lossy()));
    }
    hit
}

/// `struct __user_cap_header_struct` and two `struct __user_cap_data_struct` (version 3).
#[repr(C)]
#[derive(Clone, Copy)]
struct Caps {
    version: u32,
    pid: c_int,
    data: [[u32; 3]; 2],
}

const CAP_VERSION_3: u32 = 0x2008_0522;
const CAP_SYS_ADMIN: u32 = 21;

/// Clears CAP_SYS_ADMIN from this thread's effective set (kept in its permitted set, so it
/// can be raised again); the caps before, or None where that failed.
fn drop_sys_admin() -> Option<Caps> {
    let mut caps = Caps {
        version: CAP_VERSION_3,
        pid: 0,
        data: [[0; 3]; 2],
    };
    // SAFETY: capget(header, data) with the header followed by the data it fills; pid 0 is
    // this thread.
    let got = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut caps as *mut Caps as *mut c_void,
            caps.data.as_mut_ptr() as *mut c_void,
        )
    };
    if got != 0 {
        return None;
    }
    let saved = caps;
    caps.data[0][0] &= !(1 << CAP_SYS_ADMIN);
    set(&mut caps).then_some(saved)
}

fn restore(mut caps: Caps) {
    set(&mut caps);
}

fn set(caps: &mut Caps) -> bool {
    caps.version = CAP_VERSION_3;
    caps.pid = 0;
    // SAFETY: capset with the header and data capget filled; pid 0 is this thread only.
    unsafe {
        libc::syscall(
            libc::SYS_capset,
            caps as *mut Caps as *mut c_void,
            caps.data.as_mut_ptr() as *mut c_void,
        ) == 0
    }
}

/// Says the witness is there, once per process, as the library loads.
extern "C" fn loaded() {
    log(&format!("loaded {}\n", std::process::id()));
}

#[used]
#[link_section = ".init_array"]
static LOADED: extern "C" fn() = loaded;
