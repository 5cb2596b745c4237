//! The QEMU command line, the process that runs it, and the KVM probe.
//!
//! The process is a guard: dropping it kills QEMU, and QEMU also dies with the harness
//! (PR_SET_PDEATHSIG), so no VM outlives us, whatever ends us.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::error::{Error, Result};

/// The QEMU binary: `$FPT_QEMU` if set (a QEMU of your own), else qemu-system-x86_64 on PATH.
pub fn binary() -> String {
    std::env::var("FPT_QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into())
}

/// Make sure the QEMU binary is there; install Debian's when we may.
pub fn ensure_installed() -> Result<()> {
    match std::env::var_os("FPT_QEMU") {
        Some(p) if Path::new(&p).is_file() => Ok(()),
        Some(p) => Err(Error::ToolMissing {
            tool: format!("QEMU (FPT_QEMU={})", p.to_string_lossy()),
            fix: "unset FPT_QEMU, or point it at a qemu-system-x86_64".into(),
        }),
        None => crate::env::provision::ensure("qemu-system-x86_64", "qemu-system-x86"),
    }
}

/// The accelerator QEMU runs the guest with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation: only where a probe boot under it reached the agent.
    Kvm,
    /// QEMU's own translation: slower, works everywhere.
    Tcg,
}

impl Accel {
    /// The name `-accel` takes.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// The machine type QEMU emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// No PCI, no firmware tables beyond ACPI: the fastest boot. Virtio over MMIO.
    Microvm,
    /// For kernels without virtio-mmio. Virtio over PCI.
    Q35,
}

impl Machine {
    /// The name QEMU's `-M` takes.
    pub fn name(self) -> &'static str {
        match self {
            Machine::Microvm => "microvm",
            Machine::Q35 => "q35",
        }
    }
}

/// Everything that decides one VM.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// The accelerator.
    pub accel: Accel,
    /// The machine type.
    pub machine: Machine,
    /// The kernel to boot.
    pub bzimage: PathBuf,
    /// The initramfs with the agent as /init.
    pub initramfs: PathBuf,
    /// The kernel command line.
    pub cmdline: String,
    /// Unix socket (we listen, QEMU connects) behind the result port.
    pub result_socket: PathBuf,
    /// QEMU's human monitor (QEMU listens): how we send a serial BREAK for sysrq.
    pub monitor_socket: PathBuf,
    /// Guest memory.
    pub memory_mib: u32,
    /// Guest vCPUs.
    pub cpus: u32,
    /// Firmware tables for the guest; off for kernels built without ACPI.
    pub acpi: bool,
    /// A virtiofsd's vhost-user socket: the host's root shared into the guest. Its memory is
    /// then a shared memfd, which vhost-user needs.
    pub share: Option<PathBuf>,
}

impl VmConfig {
    /// QEMU's command line for this VM.
    pub fn args(&self) -> Vec<String> {
        let machine = match (self.machine, self.acpi) {
            (Machine::Microvm, true) => "microvm",
            (Machine::Microvm, false) => "microvm,acpi=off",
            (Machine::Q35, _) => "q35",
        };
        let machine = match self.share {
            Some(_) => format!("{machine},memory-backend=mem"),
            None => machine.to_string(),
        };
        let serial_bus = match self.machine {
            Machine::Microvm => "virtio-serial-device",
            Machine::Q35 => "virtio-serial-pci",
        };
        let cpu = match self.accel {
            Accel::Kvm => "host",
            Accel::Tcg => "max",
        };
        let mut a: Vec<String> = [
            "-M",
            &machine,
            "-accel",
            self.accel.name(),
            "-cpu",
            cpu,
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend([
            "-m".into(),
            self.memory_mib.to_string(),
            "-smp".into(),
            self.cpus.to_string(),
        ]);
        a.extend([
            "-kernel".into(),
            path(&self.bzimage),
            "-initrd".into(),
            path(&self.initramfs),
        ]);
        a.extend(["-append".into(), self.cmdline.clone()]);
        a.extend([
            "-chardev".into(),
            format!(
                "socket,id=mon,path={},server=on,wait=off",
                path(&self.monitor_socket)
            ),
            "-mon".into(),
            "chardev=mon,mode=readline".into(),
        ]);
        // The console on the first serial port, on our stdin and stdout pipes.
        a.extend([
            "-chardev".into(),
            "stdio,id=con,signal=off".into(),
            "-serial".into(),
            "chardev:con".into(),
        ]);
        // Results on a virtio-console port of their own.
        a.extend([
            "-chardev".into(),
            format!("socket,id=res,path={}", path(&self.result_socket)),
            "-device".into(),
            serial_bus.into(),
            "-device".into(),
            format!(
                "virtserialport,chardev=res,name={}",
                proto::layout::RESULT_PORT
            ),
        ]);
        if let Some(socket) = &self.share {
            let fs_device = match self.machine {
                Machine::Microvm => "vhost-user-fs-device",
                Machine::Q35 => "vhost-user-fs-pci",
            };
            a.extend([
                "-object".into(),
                format!(
                    "memory-backend-memfd,id=mem,size={}M,share=on",
                    self.memory_mib
                ),
                "-chardev".into(),
                format!("socket,id=vfs,path={}", path(socket)),
                "-device".into(),
                format!(
                    "{fs_device},chardev=vfs,tag={}",
                    crate::boot::virtiofsd::TAG
                ),
            ]);
        }
        a
    }
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A running QEMU; killed when dropped.
pub struct Qemu {
    /// The QEMU process (its own process group, killed with the harness).
    pub child: Child,
}

impl Qemu {
    /// Start QEMU for `config`.
    pub fn spawn(config: &VmConfig) -> Result<Qemu> {
        let mut cmd = Command::new(binary());
        cmd.args(config.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Its own process group: Ctrl-C reaches us, and we end QEMU ourselves.
        cmd.process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| Error::qemu_from(format!("cannot start {}", binary()), e))?;
        Ok(Qemu { child })
    }

    /// The exit status, if QEMU has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Magic SysRq over the serial console: a BREAK (through the monitor), then the key.
    pub fn sysrq(&mut self, monitor: &Path, key: u8) -> std::io::Result<()> {
        use std::io::Write;
        let mut mon = std::os::unix::net::UnixStream::connect(monitor)?;
        mon.write_all(b"chardev-send-break con\n")?;
        std::thread::sleep(std::time::Duration::from_millis(200));
        let stdin = self
            .child
            .stdin
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no console input"))?;
        stdin.write_all(&[key])?;
        stdin.flush()
    }

    /// Kill QEMU's whole process group and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.kill();
        }
    }
}

/// The host's TSC frequency in kHz: a TCG guest told it skips calibration, which on a busy
/// host can fail and hang the boot (docs/kernel-facts.md).
pub fn host_tsc_khz() -> Option<u64> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = cpuinfo
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    Some((mhz * 1000.0) as u64)
}

/// /dev/kvm opens read-write: the precondition for trying KVM at all.
pub fn kvm_device_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}
