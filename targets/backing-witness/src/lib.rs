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
    // SAFETY: forwarded as given.
    let ret = unsafe { real(fd, request, arg) };
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

/// Says the witness is there, once per process, as the library loads.
extern "C" fn loaded() {
    log(&format!("loaded {}\n", std::process::id()));
}

#[used]
#[link_section = ".init_array"]
static LOADED: extern "C" fn() = loaded;
