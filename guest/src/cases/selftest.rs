//! Cases that test the harness itself against a real kernel failure. They take the guest
//! down on purpose, so they run only when named, and only in a VM.

use std::time::Duration;

use crate::framework::{Case, Ctx, Stop};

/// A harness selftest: provokes a real kernel report so the harness's handling of it (and
/// the classifier's corpus) can be checked. Only run when named, and only in a VM.
const DEFAULTS: Case = Case {
    verdict_rule: "fails or crashes by design: the finding the kernel reports is the point",
    timeout: Duration::from_secs(45),
    kills_kernel: true,
    ..Case::DEFAULT
};

pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "selftest.panic",
            rule: "a kernel panic in the middle of a case is reported as that case's crash, with \
               the console, and every earlier result is kept",
            verdict_rule: "never reports: the harness marks it crash (sysrq-trigger 'c')",
            timeout: Duration::from_secs(10),
            run: panic,
            ..DEFAULTS
        },
        Case {
            name: "selftest.hang",
            rule: "a guest that stops making progress is stopped by the harness, which reports \
               the running case as crash and keeps every earlier result",
            verdict_rule: "never reports: the harness marks it crash after its timeout plus slack",
            timeout: Duration::from_secs(2),
            run: hang,
            ..DEFAULTS
        },
        Case {
            name: "selftest.hung_task",
            rule: "a task blocked on a stalled FUSE server for longer than the \
              hung-task timeout (lowered to 2 s) is reported by the kernel as a hung task",
            run: hung_task,
            ..DEFAULTS
        },
        Case {
            name: "selftest.lkdtm_warning",
            rule: "LKDTM WARNING: a real WARNING report",
            run: lkdtm_warning,
            ..DEFAULTS
        },
        Case {
            name: "selftest.lkdtm_bug",
            rule: "LKDTM BUG: a real BUG report (the task is killed)",
            run: lkdtm_bug,
            ..DEFAULTS
        },
        Case {
            name: "selftest.lkdtm_exception",
            rule: "LKDTM EXCEPTION: a real Oops",
            run: lkdtm_exception,
            ..DEFAULTS
        },
        Case {
            name: "selftest.lkdtm_refcount",
            rule: "LKDTM REFCOUNT_INC_OVERFLOW: a real refcount_t warning",
            run: lkdtm_refcount,
            ..DEFAULTS
        },
        Case {
            name: "selftest.lkdtm_softlockup",
            rule: "LKDTM SOFTLOCKUP: a CPU spinning in the kernel, reported \
              as a soft lockup (and an RCU stall)",
            run: lkdtm_softlockup,
            ..DEFAULTS
        },
        Case {
            name: "selftest.lkdtm_hardlockup",
            rule: "LKDTM HARDLOCKUP on CPU 1: a CPU spinning with \
              interrupts off, reported as a hard lockup by the debug profile's buddy detector \
              (needs --cpus 2)",
            run: lkdtm_hardlockup,
            ..DEFAULTS
        },
        Case {
            name: "selftest.rcu_stall",
            rule: "LKDTM SOFTLOCKUP on CPU 1 while CPU 0 queues RCU callbacks: \
              the grace period cannot end, reported as an RCU stall (stall timeout lowered to \
              3 s; needs --cpus 2)",
            run: rcu_stall,
            ..DEFAULTS
        },
        Case {
            name: "selftest.lkdtm_hung_task",
            rule: "LKDTM HUNG_TASK: a task in D state forever, reported as hung",
            run: lkdtm_hung_task,
            ..DEFAULTS
        },
        Case {
            name: "selftest.lkdtm_use_after_free",
            rule: "LKDTM READ_AFTER_FREE: on the kasan profile, a real \
              KASAN slab-use-after-free report",
            run: lkdtm_use_after_free,
            ..DEFAULTS
        },
        Case {
            name: "selftest.leak_busy_mount",
            rule: "a case that leaves a file open on a file system it mounted fails the \
              release audit: that file system is still busy after the case",
            verdict_rule: "fails by design: the audit names the busy tmpfs",
            timeout: Duration::from_secs(10),
            run: leak_busy_mount,
            ..DEFAULTS
        },
        Case {
            name: "selftest.stale_keeps_busy",
            rule: "a case declared to keep a mount busy that leaves nothing busy fails: the \
              declaration is checked against what the audit found",
            verdict_rule: "fails by design: the declaration is stale",
            timeout: Duration::from_secs(10),
            keeps_busy: Some("nothing, in truth: the declaration is what is tested"),
            run: stale_keeps_busy,
            ..DEFAULTS
        },
    ]
}

/// A tmpfs of the case's own with a file on it that is never closed (the fd is leaked on
/// purpose): the release audit's EBUSY, from a real mount.
fn leak_busy_mount(ctx: &mut Ctx) -> Result<(), Stop> {
    let dir = ctx.own_tmpfs("leaked")?;
    let file = std::fs::File::create(dir.join("kept-open"))?;
    std::mem::forget(file);
    Ok(())
}

fn stale_keeps_busy(ctx: &mut Ctx) -> Result<(), Stop> {
    ctx.own_tmpfs("released")?;
    Ok(())
}

fn hung_task(ctx: &mut Ctx) -> Result<(), Stop> {
    use std::os::unix::fs::FileExt;
    std::fs::write("/proc/sys/kernel/hung_task_timeout_secs", "2")
        .map_err(|e| Stop::Skip(format!("no hung-task detector here: {e}")))?;
    let (fs, _) = ctx.mount(crate::fuse::InitReply::plain())?;
    fs.add_file("f", b"x", Default::default())?;
    let file = std::sync::Arc::new(std::fs::File::options().write(true).open(fs.path("f"))?);
    fs.stall();
    // The first writer waits for the server's answer (killable: the detector skips it) while
    // holding the inode lock; the second waits for that lock, uninterruptibly: a hung task.
    let writers: Vec<_> = (0..2)
        .map(|i| {
            let file = std::sync::Arc::clone(&file);
            let t = std::thread::spawn(move || file.write_at(b"y", 0).map(drop));
            if i == 0 {
                std::thread::sleep(Duration::from_millis(300));
            }
            t
        })
        .collect();
    // khungtaskd looks every timeout period: two of them and a margin.
    std::thread::sleep(Duration::from_secs(7));
    fs.abort()?;
    for (i, w) in writers.into_iter().enumerate() {
        let r = w
            .join()
            .map_err(|_| Stop::Broken("a writer panicked".into()))?;
        ctx.observe(
            &format!("writer_{i}_after_abort"),
            crate::sys::outcome(&r.map_err(|e| crate::fuse::errno(&e))),
        );
    }
    Ok(())
}

/// Write `what` to LKDTM's debugfs trigger.
fn lkdtm(what: &str) -> Result<(), Stop> {
    let _ = rustix::mount::mount(
        "debugfs",
        "/sys/kernel/debug",
        "debugfs",
        rustix::mount::MountFlags::empty(),
        None,
    );
    let trigger = "/sys/kernel/debug/provoke-crash/DIRECT";
    if !std::path::Path::new(trigger).exists() {
        return Err(Stop::Skip(
            "no LKDTM in this kernel (build with --profile debug)".into(),
        ));
    }
    let _ = std::fs::write("/proc/sys/kernel/hung_task_timeout_secs", "2");
    std::fs::write(trigger, what)?;
    Ok(())
}

fn lkdtm_warning(_: &mut Ctx) -> Result<(), Stop> {
    lkdtm("WARNING")
}

fn lkdtm_bug(_: &mut Ctx) -> Result<(), Stop> {
    lkdtm("BUG")
}

fn lkdtm_exception(_: &mut Ctx) -> Result<(), Stop> {
    lkdtm("EXCEPTION")
}

fn lkdtm_refcount(_: &mut Ctx) -> Result<(), Stop> {
    lkdtm("REFCOUNT_INC_OVERFLOW")
}

fn lkdtm_softlockup(_: &mut Ctx) -> Result<(), Stop> {
    lkdtm("SOFTLOCKUP")
}

fn lkdtm_hung_task(_: &mut Ctx) -> Result<(), Stop> {
    lkdtm("HUNG_TASK")
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
    let _ = rustix::mount::mount(
        "debugfs",
        "/sys/kernel/debug",
        "debugfs",
        rustix::mount::MountFlags::empty(),
        None,
    );
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

fn lkdtm_use_after_free(_: &mut Ctx) -> Result<(), Stop> {
    lkdtm("READ_AFTER_FREE")
}

/// Skip unless the guest has `n` CPUs: the detectors below watch one CPU from another.
fn needs_cpus(n: usize) -> Result<(), Stop> {
    let cpus = std::thread::available_parallelism().map_or(1, |c| c.get());
    if cpus < n {
        return Err(Stop::Skip(format!(
            "needs {n} CPUs, the guest has {cpus}: run with --cpus {n}"
        )));
    }
    Ok(())
}

/// Move the calling thread to `cpu`.
fn pin_to(cpu: usize) {
    // SAFETY: plain syscall on this thread with an initialised CPU set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn lkdtm_hardlockup(_: &mut Ctx) -> Result<(), Stop> {
    needs_cpus(2)?;
    pin_to(1);
    lkdtm("HARDLOCKUP")
}

fn rcu_stall(_: &mut Ctx) -> Result<(), Stop> {
    needs_cpus(2)?;
    // The parameter is writable at run time; the default (21 s) comes after the soft lockup.
    std::fs::write("/sys/module/rcupdate/parameters/rcu_cpu_stall_timeout", "3")
        .map_err(|e| Stop::Skip(format!("no RCU stall detector to tune here: {e}")))?;
    // Under TCG the clocksource watchdog may find the TSC unstable and switch clocksources
    // with stop_machine, which waits for the spinning CPU forever: a soft lockup on CPU 0
    // instead of the RCU stall. Switch now, while every CPU still answers.
    let clocksource = "/sys/devices/system/clocksource/clocksource0";
    if std::fs::read_to_string(format!("{clocksource}/available_clocksource"))
        .is_ok_and(|a| a.contains("refined-jiffies"))
    {
        std::fs::write(
            format!("{clocksource}/current_clocksource"),
            "refined-jiffies",
        )?;
    }
    // This thread stays on CPU 0; the spinner moves itself to CPU 1 (a move by another task
    // would wait for CPU 1's stopper, which never runs once it spins).
    pin_to(0);
    let spinner = std::thread::spawn(|| {
        pin_to(1);
        lkdtm("SOFTLOCKUP")
    });
    // Each exiting thread frees its task_struct through call_rcu on CPU 0, which starts a
    // grace period CPU 1 never lets end. (Closed files no longer do: their cache is
    // SLAB_TYPESAFE_BY_RCU.)
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < until && !spinner.is_finished() {
        let _ = std::thread::spawn(|| ()).join();
        std::thread::sleep(Duration::from_millis(1));
    }
    match spinner.join() {
        Ok(r) => r,
        Err(_) => Err(Stop::Broken("the spinner panicked".into())),
    }
}
