//! A FUSE server in a child process of its own, so that a case can make the server exit:
//! what the kernel sees when a real server crashes (its last /dev/fuse fd closes with it).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use rustix::process::{Pid, Signal};

use super::{FuseFs, InitReply};

pub struct ServerProcess {
    pid: Option<Pid>,
    /// Where the child mounted its filesystem (visible here: fork keeps the mount namespace).
    pub mnt: PathBuf,
}

/// What the child tells the parent once it is set up.
const READY: u8 = b'y';
const NO_PASSTHROUGH: u8 = b'n';

impl ServerProcess {
    /// Fork a server that mounts at `dir/mnt` with passthrough (max_stack_depth 1), serves
    /// `name` in passthrough mode from `backing` (its own fd of the file closed), and then
    /// only answers requests until it is killed. `Ok(None)`: the kernel offers no passthrough.
    ///
    /// Fork only from a case that has started no thread yet, so that the child inherits no
    /// lock another thread holds.
    pub fn spawn_passthrough(
        dir: &Path,
        name: &str,
        backing: &Path,
    ) -> io::Result<Option<ServerProcess>> {
        let (from_child, to_parent) = rustix::pipe::pipe()?;
        // SAFETY: this process is single-threaded (see above), so the child may run any code.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => {
                drop(from_child);
                let status = match serve(dir, name, backing) {
                    Ok(status) => status,
                    Err(e) => {
                        eprintln!("fpt-agent: server child: {e}");
                        b'e'
                    }
                };
                let mut pipe = std::fs::File::from(to_parent);
                let _ = pipe.write_all(&[status]);
                // Serve until killed; the server thread does the work.
                loop {
                    // SAFETY: pause has no arguments and only waits for a signal.
                    unsafe { libc::pause() };
                }
            }
            pid => {
                drop(to_parent);
                let child = ServerProcess {
                    pid: Pid::from_raw(pid),
                    mnt: dir.join("mnt"),
                };
                let mut status = [0u8];
                std::fs::File::from(from_child)
                    .read_exact(&mut status)
                    .map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("the server child ended before it was ready: {e}"),
                        )
                    })?;
                match status[0] {
                    READY => Ok(Some(child)),
                    NO_PASSTHROUGH => Ok(None),
                    _ => Err(io::Error::other(
                        "the server child could not set up (see its stderr)",
                    )),
                }
            }
        }
    }

    /// SIGKILL the server and reap it: how it ended, as "killed by SIGKILL" or an exit code.
    pub fn kill(&mut self) -> String {
        let Some(pid) = self.pid.take() else {
            return "already gone".into();
        };
        let _ = rustix::process::kill_process(pid, Signal::KILL);
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, status))) if status.terminating_signal() == Some(Signal::KILL.as_raw()) => {
                "killed by SIGKILL".into()
            }
            Ok(Some((_, status))) => format!("ended: {status:?}"),
            Ok(None) => "not reaped".into(),
            Err(e) => format!("waitpid: {}", crate::sys::errno_name(e)),
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The child's setup; its answer byte for the parent.
fn serve(dir: &Path, name: &str, backing: &Path) -> io::Result<u8> {
    // Die with the case: a server must never outlive the process that asked for it.
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
    let fs = FuseFs::mount(dir, InitReply::passthrough(1))?;
    if !fs.wait_for_init()?.kernel_offers_passthrough() {
        return Ok(NO_PASSTHROUGH);
    }
    fs.add_passthrough_file_at(name, backing)?;
    fs.drop_server_fd(name);
    // The mount must stay when this function returns: the process ends only by SIGKILL.
    std::mem::forget(fs);
    Ok(READY)
}
