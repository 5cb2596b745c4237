//! Cases that test the harness itself against a real kernel failure. They take the guest
//! down on purpose, so they run only when named, and only in a VM.

use std::time::Duration;

use super::{Case, Ctx, Stop};

pub fn cases() -> Vec<Case> {
    vec![Case {
        name: "selftest.panic",
        group: "selftest",
        rule: "a kernel panic in the middle of a case is reported as that case's crash, with \
               the console, and every earlier result is kept",
        verdict_rule: "never reports: the harness marks it crash (sysrq-trigger 'c')",
        timeout: Duration::from_secs(10),
        kills_kernel: true,
        run: panic,
    }]
}

fn panic(_ctx: &mut Ctx) -> Result<(), Stop> {
    std::fs::write("/proc/sysrq-trigger", "c")?;
    Err(Stop::Broken("the kernel survived sysrq-trigger 'c'".into()))
}
