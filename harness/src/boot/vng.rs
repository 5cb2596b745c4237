//! `--backend vng`: the kernel booted by virtme-ng (`vng --run <bzImage> --exec ...`, from
//! PyPI into the harness's virtualenv) instead of our own QEMU set-up, for kernel developers
//! whose loop is already vng. The guest sees the host's root (virtio-fs, or 9p), so the agent
//! runs there in host mode, as on this machine: each case in its own process and mount
//! namespace, its events as JSON lines on stdout, which vng hands back as they come.
//!
//! vng needs what `virtme-configkernel --defconfig` sets (the `vng` profile has it): Debian's
//! cloud kernels build virtio-pci, virtio-fs and 9p as modules and panic under vng ("Unable
//! to mount root fs").

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use proto::Event;

use crate::error::{Error, Result};
use crate::kernel::Kernel;
use crate::results::assemble::RunLog;

/// vng from the harness's virtualenv (installed on first use).
pub fn ensure(cache: &Path) -> Result<std::path::PathBuf> {
    let bin = crate::env::pytools::with(cache, &["virtme-ng"])?;
    Ok(bin)
}

/// The vng process and everything it started (virtme-run, QEMU, virtiofsd): one process
/// group, killed on drop. QEMU is vng's grandchild, so PR_SET_PDEATHSIG on vng alone would
/// leave it running if we were killed outright: a reaper (a shell that gets SIGTERM when we
/// die) kills the whole group then.
struct Vng {
    child: Child,
    reaper: Option<Child>,
}

impl Vng {
    fn spawn(cmd: &mut Command) -> std::io::Result<Vng> {
        let child = cmd.spawn()?;
        let pgid = child.id();
        let mut reaper = Command::new("sh");
        reaper
            .arg("-c")
            .arg(format!(
                "trap 'kill -9 -{pgid} 2>/dev/null; exit 0' TERM; while :; do sleep 1; done"
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            reaper.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        Ok(Vng {
            child,
            reaper: reaper.spawn().ok(),
        })
    }
}

impl Drop for Vng {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: kill(2) on our own child's process group.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
        if let Some(mut r) = self.reaper.take() {
            let _ = r.kill();
            let _ = r.wait();
        }
    }
}

/// Run `cases` with the agent in host mode inside `vng --run kernel`.
#[allow(clippy::too_many_arguments)]
pub fn run_cases(
    kernel: &Kernel,
    tcg: bool,
    run: &super::AgentRun,
    on_event: &mut dyn FnMut(&Event),
) -> Result<RunLog> {
    let super::AgentRun {
        agent,
        cases,
        ext4_image,
        validate_spec,
        artifacts,
    } = *run;
    let cache = crate::env::cache::dir();
    let bin = ensure(&cache)?;
    crate::boot::qemu::ensure_installed()?;
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    // The command vng runs in the guest, through its shell: paths are the host's own.
    let mut exec = format!(
        "{}={} ",
        proto::layout::EXT4_IMAGE_ENV,
        ext4_image.display()
    );
    if let Some(spec) = validate_spec {
        exec.push_str(&format!(
            "{}={} ",
            proto::validate::SPEC_ENV,
            spec.display()
        ));
    }
    // The case list goes in a file: the whole catalog would not fit on the kernel command
    // line, where vng puts the command (base64), and a truncated line loses root=.
    let list = artifacts.join("cases.txt");
    std::fs::write(&list, names.join(",")).map_err(|e| Error::io(list.display(), e))?;
    exec.push_str(&format!(
        "{} run \"$(cat {})\"",
        agent.display(),
        list.display()
    ));
    let mut cmd = Command::new(bin.join("vng"));
    cmd.arg("--run").arg(&kernel.bzimage);
    if tcg {
        cmd.arg("--disable-kvm");
    }
    // Verbose: vng's script ports need udev's /dev/virtio-ports links, which a host without
    // udevd (a container) does not make; vng then runs the script on the serial console,
    // which it shows only with -v. loglevel 5 keeps warnings and worse on the console (the
    // classifier's business) and the boot's chatter off it.
    cmd.args([
        "--verbose",
        "--append",
        "loglevel=5",
        "--memory",
        "1G",
        "--cpus",
        "1",
        "--exec",
        &exec,
    ]);
    // vng looks for virtiofsd on PATH (else it uses 9p) and for virtme-run beside itself.
    let mut path = vec![bin.clone()];
    if let Ok(v) = crate::boot::virtiofsd::ensure(&cache) {
        path.extend(v.parent().map(Path::to_path_buf));
    }
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    cmd.env("PATH", std::env::join_paths(path).expect("paths join"))
        .current_dir(artifacts)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    std::fs::write(
        artifacts.join("vng-command.txt"),
        format!("{}\n", crate::env::process::describe(&cmd)),
    )
    .map_err(|e| Error::io("artifacts", e))?;
    let mut vng = Vng::spawn(&mut cmd).map_err(|e| Error::io(bin.join("vng").display(), e))?;
    // vng's messages and the guest's console (on stderr with --verbose) and the script's
    // output: one stream of lines, as they come, whichever pipe they took.
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let readers: Vec<_> = [
        Box::new(vng.child.stdout.take().expect("piped")) as Box<dyn std::io::Read + Send>,
        Box::new(vng.child.stderr.take().expect("piped")),
    ]
    .into_iter()
    .map(|pipe| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(|l| l.ok()) {
                let _ = tx.send(line);
            }
        })
    })
    .collect();
    drop(tx);
    let console_path = artifacts.join("console.log");
    let mut console =
        std::fs::File::create(&console_path).map_err(|e| Error::io("console.log", e))?;
    // A whole-run deadline: every case's own timeout, plus a boot.
    let budget = Duration::from_secs(90)
        + cases
            .iter()
            .map(|c| c.timeout() + Duration::from_secs(8))
            .sum::<Duration>();
    let pid = vng.child.id() as i32;
    let watchdog = std::thread::spawn(move || {
        let started = Instant::now();
        while started.elapsed() < budget {
            std::thread::sleep(Duration::from_millis(200));
            // SAFETY: signal 0 only checks that the group still exists.
            if unsafe { libc::kill(-pid, 0) } != 0 {
                return false;
            }
        }
        // SAFETY: kill(2) on our own child's process group.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        true
    });

    let mut intake = crate::boot::host::Intake::new(artifacts)?;
    for line in lines {
        let line = line.trim_end_matches('\r');
        if !intake.take(line, on_event) {
            let _ = writeln!(console, "{line}");
            intake.log.console.push(line.to_string());
        }
    }
    let status = vng.child.wait().map_err(|e| Error::io("vng", e))?;
    for r in readers {
        let _ = r.join();
    }
    let timed_out = watchdog.join().unwrap_or(false);
    drop(vng);
    if !intake.said_hello() {
        let console_lines = &intake.log.console;
        if let Some(headline) = crate::results::assemble::fatal_headline(console_lines) {
            if headline.contains("Unable to mount root fs") {
                return Err(Error::vng(format!(
                    "kernel {} cannot mount the host's root under vng ({headline}): it needs virtio-pci and virtio-fs or 9p built in; build one with --profile vng (what `virtme-configkernel --defconfig` sets) (console: {})",
                    kernel.release,
                    console_path.display()
                )));
            }
            return Err(Error::BootPanic {
                headline,
                console: console_path,
                tail: crate::results::console::last(console_lines, 15),
            });
        }
        let said = console_lines
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .cloned()
            .unwrap_or_default();
        return Err(Error::vng(format!(
            "vng ended ({status}) before the agent said hello; its last words: {said} (console: {})",
            console_path.display()
        )));
    }
    if timed_out {
        intake.finish(
            artifacts,
            "vng was stopped".into(),
            "(the cases' time was up)",
        )
    } else {
        intake.finish(
            artifacts,
            format!("vng ended ({status})"),
            "before the agent finished",
        )
    }
}
