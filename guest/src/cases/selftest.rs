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
    },
    Case {
        name: "selftest.hang",
        group: "selftest",
        rule: "a guest that stops making progress is stopped by the harness, which reports \
               the running case as crash and keeps every earlier result",
        verdict_rule: "never reports: the harness marks it crash after its timeout plus slack",
        timeout: Duration::from_secs(2),
        kills_kernel: true,
        run: hang,
    }]
}

fn panic(_ctx: &mut Ctx) -> Result<(), Stop> {
    std::fs::write("/proc/sysrq-trigger", "c")?;
    Err(Stop::Broken("the kernel survived sysrq-trigger 'c'".into()))
}

/// Stop the whole guest from making progress, as a kernel deadlock would: one SCHED_FIFO
/// spinner per CPU with RT throttling off starves everything else, the agent included.
fn hang(_ctx: &mut Ctx) -> Result<(), Stop> {
    std::fs::write("/proc/sys/kernel/sched_rt_runtime_us", "-1")?;
    // From 6.12 a deadline server still gives fair tasks a slice under RT load: turn it off.
    let _ = rustix::mount::mount("debugfs", "/sys/kernel/debug", "debugfs", rustix::mount::MountFlags::empty(), None);
    if let Ok(cpus) = std::fs::read_dir("/sys/kernel/debug/sched/fair_server") {
        for cpu in cpus.flatten() {
            let _ = std::fs::write(cpu.path().join("runtime"), "0");
        }
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let spinners: Vec<_> = (0..cpus)
        .map(|cpu| {
            std::thread::spawn(move || {
                let param = libc::sched_param { sched_priority: 99 };
                // SAFETY: plain syscalls on this thread with valid, initialised arguments.
                unsafe {
                    let mut set: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut set);
                    libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                    libc::sched_setscheduler(0, libc::SCHED_FIFO, &param);
                }
                loop {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    for s in spinners {
        let _ = s.join();
    }
    Err(Stop::Broken("the spinners stopped".into()))
}
