//! Who may register backing files.

use crate::framework::{Case, Ctx, Stop};
use crate::sys::{outcome, without_cap_sys_admin};

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "privilege.no_cap_sys_admin",
            rule: "BACKING_OPEN and BACKING_CLOSE need CAP_SYS_ADMIN in the initial user namespace",
            verdict_rule:
                "pass when both give EPERM with CAP_SYS_ADMIN dropped from the effective \
                       set, and BACKING_OPEN works again once it is back",
            run: no_cap_sys_admin,
            ..Case::DEFAULT
        },
        Case {
            name: "privilege.user_namespace_root",
            rule:
                "root inside a new user namespace, serving a FUSE mount that namespace owns, has \
               no CAP_SYS_ADMIN in the initial namespace: BACKING_OPEN gives EPERM",
            verdict_rule: "pass when the mount works and BACKING_OPEN gives EPERM",
            run: user_namespace_root,
            ..Case::DEFAULT
        },
    ]
}

fn no_cap_sys_admin(ctx: &mut Ctx) -> Result<(), Stop> {
    // The file on a tmpfs of the case's own, mounted first so the audit takes it off last:
    // a refused BACKING_OPEN must keep nothing of it.
    let objects = ctx.own_tmpfs("objects")?;
    let fs = ctx.mount_passthrough(1)?;
    let backing = objects.join("f");
    std::fs::write(&backing, b"x")?;
    let registered = fs.backing_open_path(&backing)?;
    let (open, close) =
        without_cap_sys_admin(|| (fs.backing_open_path(&backing), fs.backing_close(registered)))?;
    ctx.expect("backing_open_without_cap", outcome(&open), "EPERM");
    ctx.expect("backing_close_without_cap", outcome(&close), "EPERM");
    ctx.expect(
        "backing_open_with_cap",
        outcome(&fs.backing_open_path(&backing)),
        "ok",
    );
    Ok(())
}

fn user_namespace_root(ctx: &mut Ctx) -> Result<(), Stop> {
    // Learn whether passthrough exists before leaving the initial namespace (skip if not).
    drop(ctx.mount_passthrough(1)?);
    // unshare(CLONE_NEWUSER) needs a single-threaded process: the servers above are gone
    // with their mounts, but their threads may linger, so do it in a child.
    let work = ctx.scratch("userns")?;
    let child = std::process::Command::new(std::env::current_exe()?)
        .args(["userns-probe", &work.to_string_lossy()])
        .output()?;
    let text = String::from_utf8_lossy(&child.stdout);
    let mut lines = text.lines();
    let mount = lines.next().unwrap_or("no answer").to_string();
    let open = lines.next().unwrap_or("no answer").to_string();
    ctx.expect("mount_in_user_namespace", mount, "ok");
    ctx.expect("backing_open", open, "EPERM");
    Ok(())
}

/// The child side of privilege.user_namespace_root (`fpt-agent userns-probe DIR`): become
/// root of a new user namespace, mount FUSE there, try BACKING_OPEN; print both outcomes.
pub fn userns_probe(dir: &str) -> ! {
    let result = (|| -> Result<(String, String), rustix::io::Errno> {
        // SAFETY: this process is single-threaded here; no fd table is unshared.
        unsafe {
            rustix::thread::unshare_unsafe(
                rustix::thread::UnshareFlags::NEWUSER | rustix::thread::UnshareFlags::NEWNS,
            )?
        };
        let uid = 0;
        std::fs::write("/proc/self/setgroups", "deny").map_err(|e| crate::fuse::errno(&e))?;
        std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))
            .map_err(|e| crate::fuse::errno(&e))?;
        std::fs::write("/proc/self/gid_map", "0 0 1").map_err(|e| crate::fuse::errno(&e))?;
        let fs = match crate::fuse::FuseFs::mount(
            std::path::Path::new(dir),
            crate::fuse::InitReply::passthrough(1),
        ) {
            Ok(fs) => fs,
            Err(e) => {
                return Ok((
                    outcome::<()>(&Err(crate::fuse::errno(&e))),
                    "not tried".into(),
                ))
            }
        };
        let _ = fs.wait_for_init();
        let backing = fs
            .add_file("f", b"x", Default::default())
            .map_err(|e| crate::fuse::errno(&e))?;
        Ok(("ok".into(), outcome(&fs.backing_open_path(&backing))))
    })();
    match result {
        Ok((mount, open)) => println!("{mount}\n{open}"),
        Err(e) => println!("setup {}\nnot tried", crate::sys::errno_name(e)),
    }
    std::process::exit(0)
}
