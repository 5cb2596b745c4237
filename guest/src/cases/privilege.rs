//! Who may register backing files.

use std::time::Duration;

use super::{Case, Ctx, Stop};
use crate::sys::{outcome, without_cap_sys_admin};

pub fn cases() -> Vec<Case> {
    vec![Case {
        name: "privilege.no_cap_sys_admin",
        group: "privilege",
        rule: "BACKING_OPEN and BACKING_CLOSE need CAP_SYS_ADMIN in the initial user namespace",
        verdict_rule: "pass when both give EPERM with CAP_SYS_ADMIN dropped from the effective \
                       set, and BACKING_OPEN works again once it is back",
        timeout: Duration::from_secs(10),
        kills_kernel: false,
        run: no_cap_sys_admin,
    }]
}

fn no_cap_sys_admin(ctx: &mut Ctx) -> Result<(), Stop> {
    let fs = ctx.mount_passthrough(1)?;
    let backing = fs.add_file("f", b"x", Default::default())?;
    let registered = fs.backing_open_path(&backing)?;
    let (open, close) = without_cap_sys_admin(|| {
        (fs.backing_open_path(&backing), fs.backing_close(registered))
    })?;
    ctx.expect("backing_open_without_cap", outcome(&open), "EPERM");
    ctx.expect("backing_close_without_cap", outcome(&close), "EPERM");
    ctx.expect("backing_open_with_cap", outcome(&fs.backing_open_path(&backing)), "ok");
    Ok(())
}
