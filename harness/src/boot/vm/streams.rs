//! The process side of a boot: QEMU, and the threads that read its two streams. The kernel
//! console (the serial port, on QEMU's stdout) and the result port (a unix socket QEMU
//! connects to) each become messages on one channel, in the order they arrive; each line is
//! also written to the artifacts as it comes, so a harness that dies keeps them.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use proto::Event;

use crate::boot::qemu::{Qemu, VmConfig};
use crate::error::{Error, Result};

pub enum Msg {
    Console(String),
    Event(Event),
    /// A result-port line that is not an event.
    Garbled,
}

/// A running guest: QEMU, its messages, and its stderr (read to the end in a thread).
pub struct Guest {
    vm: Qemu,
    pub messages: Receiver<Msg>,
    stderr: Option<JoinHandle<String>>,
}

impl Guest {
    /// Start QEMU and wait (up to 20 s) for it to connect the result port.
    pub fn start(config: &VmConfig, artifacts: &Path) -> Result<Guest> {
        let socket = &config.result_socket;
        let listener = UnixListener::bind(socket).map_err(|e| Error::io(socket.display(), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("result socket", e))?;
        let start = Instant::now();
        let mut vm = Qemu::spawn(config)?;
        let (tx, rx) = mpsc::channel::<Msg>();

        let stdout = vm.child.stdout.take().expect("piped");
        let console_log = artifacts.join("console.log");
        let mut log =
            File::create(&console_log).map_err(|e| Error::io(console_log.display(), e))?;
        let console_tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n').map_while(|l| l.ok()) {
                let line = String::from_utf8_lossy(&line)
                    .trim_end_matches('\r')
                    .to_string();
                let _ = writeln!(log, "{line}");
                if console_tx.send(Msg::Console(line)).is_err() {
                    break;
                }
            }
        });
        let mut stderr = vm.child.stderr.take().expect("piped");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut guest = Guest {
            vm,
            messages: rx,
            stderr: Some(stderr),
        };

        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if guest.vm.exited().is_some() || start.elapsed() > Duration::from_secs(20) {
                        guest.kill();
                        let err = guest.stderr();
                        let line = err.lines().map(str::trim).find(|l| !l.is_empty());
                        return Err(Error::qemu(
                            line.unwrap_or("QEMU never connected the result port")
                                .to_string(),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(Error::io("result socket", e)),
            }
        };
        stream
            .set_nonblocking(false)
            .map_err(|e| Error::io("result socket", e))?;
        let mut events_log =
            File::create(artifacts.join("events.jsonl")).map_err(|e| Error::io("artifacts", e))?;
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(|l| l.ok()) {
                let _ = writeln!(events_log, "{line}");
                let msg = match serde_json::from_str::<Event>(&line) {
                    Ok(e) => Msg::Event(e),
                    Err(_) => Msg::Garbled,
                };
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        Ok(guest)
    }

    /// Magic SysRq over the serial console.
    pub fn sysrq(&mut self, monitor: &Path, key: u8) -> std::io::Result<()> {
        if self.vm.exited().is_some() {
            return Err(std::io::Error::other("QEMU has exited"));
        }
        self.vm.sysrq(monitor, key)
    }

    pub fn kill(&mut self) {
        self.vm.kill();
    }

    /// What QEMU wrote on stderr (once it has ended).
    pub fn stderr(&mut self) -> String {
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}
