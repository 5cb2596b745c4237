//! PID 1 of the test VM: bring the minimum of a system up, run the cases the kernel command
//! line names, stream results over their own virtio-console port, power off.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::mount::MountFlags;

use proto::layout::{
    CASES_PARAM, COVERAGE_PARAM, DEAL_PARAM, HOST_ROOT, MODULE_DIR, MODULE_ORDER, RESULT_PORT,
    SHARE_PARAM,
};
use proto::Event;

use crate::cases;
use crate::runner::{self, Markers};

pub fn main() -> ! {
    if let Err(e) = set_up_and_run() {
        eprintln!("fpt-agent: {e}");
    }
    // Nothing is left to flush but the page cache; then end the VM. A restart, not a power
    // off: with -no-reboot it ends QEMU, with ACPI or without (microvm acpi=off cannot power
    // off).
    rustix::fs::sync();
    let _ = rustix::system::reboot(rustix::system::RebootCommand::Restart);
    // reboot(2) does not return on success; if it did, PID 1 must not exit (that panics).
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn set_up_and_run() -> Result<(), String> {
    mount("proc", "/proc", "proc")?;
    mount("sysfs", "/sys", "sysfs")?;
    mount("devtmpfs", "/dev", "devtmpfs")?;
    mount("tmpfs", "/tmp", "tmpfs")?;
    let modules = load_modules();
    // fusectl exists only once fuse is there (built in, or loaded just now).
    let _ = mount("fusectl", "/sys/fs/fuse/connections", "fusectl");

    let cmdline =
        std::fs::read_to_string("/proc/cmdline").map_err(|e| format!("/proc/cmdline: {e}"))?;
    let mut selected = cases::select(param(&cmdline, CASES_PARAM).unwrap_or("all"))?;
    // This boot's share, dealt as the host dealt it (a CI shard, then one VM of several).
    for deal in param(&cmdline, DEAL_PARAM)
        .into_iter()
        .flat_map(|d| d.split(','))
    {
        selected = proto::catalog::Deal::parse(deal)?.take(selected);
    }
    // Case markers go to the kernel log: unthrottled, or a full run loses most of them.
    let _ = std::fs::write("/proc/sys/kernel/printk_devkmsg", "on");

    let port = find_port(RESULT_PORT, Duration::from_secs(10))?;
    let mut out = File::options()
        .write(true)
        .open(&port)
        .map_err(|e| format!("{}: {e}", port.display()))?;
    let uname = rustix::system::uname();
    // The host's root, for a server under test that lives there (`cargo xtask validate`).
    let share = param(&cmdline, SHARE_PARAM).map(|tag| {
        let _ = std::fs::create_dir_all(HOST_ROOT);
        match rustix::mount::mount(tag, HOST_ROOT, "virtiofs", MountFlags::RDONLY, None) {
            Ok(()) => "mounted".to_string(),
            Err(e) => format!("mount -t virtiofs {tag} {HOST_ROOT}: {e}"),
        }
    });
    let hello = Event::Hello {
        kernel_release: uname.release().to_string_lossy().into_owned(),
        cases: selected.iter().map(|c| c.name.to_string()).collect(),
        modules,
        share,
    };
    runner::emit(&mut out, &hello).map_err(|e| format!("result port: {e}"))?;
    // A coverage run: each case's own counters (the host asked only of a gcov build).
    let gcov = match param(&cmdline, COVERAGE_PARAM) {
        Some(_) => Some(crate::coverage::enable()?),
        None => None,
    };
    runner::run_all(&selected, &mut out, Markers::KernelLog, gcov.as_ref())
        .map_err(|e| format!("result port: {e}"))?;
    Ok(())
}

fn mount(source: &str, target: &str, fstype: &str) -> Result<(), String> {
    let _ = std::fs::create_dir_all(target);
    rustix::mount::mount(source, target, fstype, MountFlags::empty(), None)
        .map_err(|e| format!("mount {fstype} on {target}: {e}"))
}

/// Load the modules the harness packed, in the order it wrote down (dependencies first).
fn load_modules() -> Vec<String> {
    let order =
        std::fs::read_to_string(Path::new(MODULE_DIR).join(MODULE_ORDER)).unwrap_or_default();
    let mut loaded = Vec::new();
    for name in order.lines().filter(|l| !l.is_empty()) {
        let path = Path::new(MODULE_DIR).join(name);
        let result = rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .and_then(|fd| rustix::system::finit_module(&fd, c"", 0));
        match result {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {
                loaded.push(name.trim_end_matches(".ko").to_string())
            }
            Err(e) => eprintln!("fpt-agent: loading {name}: {e}"),
        }
    }
    loaded
}

/// `key=value` from the kernel command line.
pub fn param<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// The /dev node of the virtio-console port called `name`; it appears once virtio_console
/// has probed, which may be just after its module loaded.
fn find_port(name: &str, wait: Duration) -> Result<PathBuf, String> {
    let deadline = Instant::now() + wait;
    loop {
        if let Ok(dir) = std::fs::read_dir("/sys/class/virtio-ports") {
            for entry in dir.flatten() {
                let port_name =
                    std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
                let dev = Path::new("/dev").join(entry.file_name());
                if port_name.trim() == name && dev.exists() {
                    return Ok(dev);
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no virtio-console port named {name} after {} s",
                wait.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_params_from_the_command_line() {
        let cmdline = "console=ttyS0 fpt.cases=init.offer,ids.close_unknown panic=-1\n";
        assert_eq!(
            param(cmdline, "fpt.cases"),
            Some("init.offer,ids.close_unknown")
        );
        assert_eq!(param(cmdline, "fpt.case"), None);
        assert_eq!(param(cmdline, "panic"), Some("-1"));
    }
}
