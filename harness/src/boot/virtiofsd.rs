//! virtiofsd: shares the host's root file system into the guest, read-only, so that a server
//! binary of the host (and the libraries it loads) runs there (`cargo xtask validate` on a VM
//! kernel). The real virtiofsd: Debian trixie's package (signed by the archive, fetched with
//! the harness's private apt configuration in about a second) run through trixie's own
//! dynamic loader and libraries, since its binary needs a newer glibc than Debian 12's; where
//! that cannot be had, built from crates.io into the cache (a minute or two). Started and
//! stopped by the harness like QEMU, and dead with it whatever ends the harness
//! (PR_SET_PDEATHSIG).

use proto::layout::HOST_ROOT;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The virtio-fs tag the guest mounts.
pub const TAG: &str = "hostroot";

/// Debian's virtiofsd and what it runs with, from trixie: the binary needs glibc 2.39.
const DEBIAN_PACKAGES: [&str; 5] = [
    "virtiofsd/trixie",
    "libc6/trixie",
    "libseccomp2/trixie",
    "libcap-ng0/trixie",
    "libgcc-s1/trixie",
];

/// The virtiofsd to start, fetched or built on first use: Debian's (see the module), else
/// one built from crates.io.
pub fn ensure(cache: &Path) -> Result<PathBuf> {
    match debian(cache) {
        Ok(launcher) => Ok(launcher),
        Err(e) => {
            eprintln!("Debian's virtiofsd cannot be used here ({e}): building it instead");
            built(cache)
        }
    }
}

/// Debian trixie's virtiofsd under `<cache>/virtiofsd-debian`, and a launcher script that
/// runs it through trixie's loader with trixie's libraries; checked to run (`--version`).
fn debian(cache: &Path) -> Result<PathBuf> {
    let dir = cache.join("virtiofsd-debian");
    let launcher = dir.join("virtiofsd");
    if launcher.is_file() {
        return Ok(launcher);
    }
    let apt = crate::env::apt::Apt::new(cache)?;
    let root = apt.fetch_all(&DEBIAN_PACKAGES, &dir.join("packages"))?;
    let libs = root.join("usr/lib/x86_64-linux-gnu");
    let script = format!(
        "#!/bin/sh\n# Debian trixie's virtiofsd, with trixie's loader and libraries.\nexec {} --library-path {} {} \"$@\"\n",
        libs.join("ld-linux-x86-64.so.2").display(),
        libs.display(),
        root.join("usr/libexec/virtiofsd").display()
    );
    let partial = dir.join("virtiofsd.partial");
    std::fs::write(&partial, script).map_err(|e| Error::io(partial.display(), e))?;
    std::fs::set_permissions(
        &partial,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .map_err(|e| Error::io(partial.display(), e))?;
    crate::env::process::output(Command::new(&partial).arg("--version"))
        .map_err(|e| Error::fetch_from("running Debian's virtiofsd --version", e))?;
    std::fs::rename(&partial, &launcher).map_err(|e| Error::io(launcher.display(), e))?;
    Ok(launcher)
}

/// virtiofsd built from crates.io into `<cache>/virtiofsd`.
fn built(cache: &Path) -> Result<PathBuf> {
    let root = cache.join("virtiofsd");
    let binary = root.join("bin/virtiofsd");
    if binary.is_file() {
        return Ok(binary);
    }
    let fix = format!(
        "sudo apt-get install -y libseccomp-dev libcap-ng-dev && cargo install virtiofsd --locked --root {}",
        root.display()
    );
    for (package, file) in [
        ("libseccomp-dev", "/usr/include/seccomp.h"),
        ("libcap-ng-dev", "/usr/include/cap-ng.h"),
    ] {
        crate::env::provision::ensure_package(package, file).map_err(|_| Error::ToolMissing {
            tool: "virtiofsd".into(),
            fix: fix.clone(),
        })?;
    }
    eprintln!("installing virtiofsd into the cache (cargo install; once, about a minute)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["install", "--quiet", "--locked", "virtiofsd", "--root"])
        .arg(&root);
    crate::env::process::output(&mut cmd).map_err(|e| Error::ToolMissing {
        tool: "virtiofsd".into(),
        fix: format!("{fix} (cargo install said: {e})"),
    })?;
    Ok(binary)
}

/// A running virtiofsd; killed when dropped.
pub struct Virtiofsd {
    child: Child,
}

impl Virtiofsd {
    /// Share `dir` read-only on the vhost-user socket `socket`.
    pub fn start(binary: &Path, dir: &Path, socket: &Path, log: &Path) -> Result<Virtiofsd> {
        let mut cmd = Command::new(binary);
        cmd.arg(format!("--socket-path={}", socket.display()))
            .arg(format!("--shared-dir={}", dir.display()))
            .args([
                "--readonly",
                "--sandbox=none",
                "--cache=always",
                "--log-level=error",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).map_err(|e| Error::io(log.display(), e))?)
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            command: binary.display().to_string(),
            source,
        })?;
        let mut daemon = Virtiofsd { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if daemon.child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
                let said = std::fs::read_to_string(log).unwrap_or_default();
                return Err(Error::qemu(format!(
                    "virtiofsd did not start: {}",
                    said.trim()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(daemon)
    }
}

impl Drop for Virtiofsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a server binary of the host runs in the guest, where the host's root is at `/host`:
/// a static binary as it is, a dynamic one through the host's own dynamic loader with the
/// host's library directories (its rpath, relative to its own path, still works).
///
/// Paths are resolved on the host first: an absolute symbolic link (Debian's /lib64) would
/// point outside /host in the guest.
pub fn guest_command(binary: &Path, args: &[String]) -> Result<(String, Vec<String>)> {
    let binary = binary
        .canonicalize()
        .map_err(|e| Error::io(binary.display(), e))?;
    let bytes = std::fs::read(&binary).map_err(|e| Error::io(binary.display(), e))?;
    let in_guest = format!("{HOST_ROOT}{}", binary.display());
    match elf_interpreter(&bytes) {
        None => Ok((in_guest, args.to_vec())),
        Some(interp) => {
            let interp = Path::new(&interp)
                .canonicalize()
                .map_err(|e| Error::io(&interp, e))?;
            let libs = [
                "/lib/x86_64-linux-gnu",
                "/usr/lib/x86_64-linux-gnu",
                "/lib64",
                "/usr/lib64",
                "/lib",
                "/usr/lib",
            ];
            let mut path: Vec<String> = Vec::new();
            for dir in libs.iter().filter_map(|l| Path::new(l).canonicalize().ok()) {
                let dir = format!("{HOST_ROOT}{}", dir.display());
                if !path.contains(&dir) {
                    path.push(dir);
                }
            }
            let mut all = vec!["--library-path".to_string(), path.join(":"), in_guest];
            all.extend(args.iter().cloned());
            Ok((format!("{HOST_ROOT}{}", interp.display()), all))
        }
    }
}

/// The PT_INTERP of a 64-bit little-endian ELF file, if it has one (a dynamic executable).
pub fn elf_interpreter(elf: &[u8]) -> Option<String> {
    if elf.get(..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?) as usize);
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?) as usize);
    let (phoff, phentsize, phnum) = (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?);
    (0..phnum).find_map(|i| {
        let ph = phoff + i * phentsize;
        let kind = u32::from_le_bytes(elf.get(ph..ph + 4)?.try_into().ok()?);
        if kind != 3 {
            return None;
        }
        let (offset, size) = (u64_at(ph + 8)?, u64_at(ph + 32)?);
        let raw = elf.get(offset..offset + size)?;
        Some(
            String::from_utf8_lossy(raw)
                .trim_end_matches('\0')
                .to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_interpreter_of_a_dynamic_binary() {
        let dynamic = std::fs::read("/bin/sh").unwrap();
        assert!(
            elf_interpreter(&dynamic).unwrap().starts_with("/lib"),
            "{:?}",
            elf_interpreter(&dynamic)
        );
        assert_eq!(elf_interpreter(b"#!/bin/sh\n"), None);
        let (prog, args) = guest_command(Path::new("/bin/sh"), &["-c".into()]).unwrap();
        assert!(
            prog.starts_with("/host/") && prog.contains("ld-linux"),
            "{prog}"
        );
        assert!(
            args[2].starts_with("/host/") && args[2].ends_with("sh"),
            "{args:?}"
        );
        assert_eq!(args[3], "-c");
    }
}
