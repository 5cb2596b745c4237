//! Notices a server under test that stopped answering. A request waiting on the connection
//! (fusectl's `waiting`) while the server spends no CPU time for [`HANG_AFTER`] is a hang:
//! the watchdog aborts the connection (fusectl's `abort`), which fails the waiting system
//! calls so the case can end, and says so; the case is then a hang, not a harness error
//! nor a case timeout. A slow server spends CPU time (its run time, summed over its
//! threads, in nanoseconds), so it is never taken for a hung one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long requests may wait on a server that does not run before it is called hung.
pub const HANG_AFTER: Duration = Duration::from_secs(5);

/// How often the watchdog looks.
const PERIOD: Duration = Duration::from_millis(100);

/// Watches one connection and its server until dropped.
pub struct Watchdog {
    stop: Arc<AtomicBool>,
    hung: Arc<Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Watch connection `connection` (its number in /sys/fs/fuse/connections), served by
    /// process `server`.
    pub fn start(connection: u32, server: u32) -> Watchdog {
        let stop = Arc::new(AtomicBool::new(false));
        let hung = Arc::new(Mutex::new(None));
        let (s, h) = (stop.clone(), hung.clone());
        let thread = std::thread::spawn(move || watch(connection, server, &s, &h));
        Watchdog {
            stop,
            hung,
            thread: Some(thread),
        }
    }

    /// Why the server was found hung, if it was.
    pub fn hung(&self) -> Option<String> {
        self.hung.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // Woken from its wait between looks, so a case does not wait out the period.
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

fn watch(connection: u32, server: u32, stop: &AtomicBool, hung: &Mutex<Option<String>>) {
    let mut since = Instant::now();
    let mut ran = run_time(server);
    while !stop.load(Ordering::Relaxed) {
        std::thread::park_timeout(PERIOD);
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let waiting = crate::fuse::waiting(connection).unwrap_or(0);
        let now_ran = run_time(server);
        if waiting == 0 || now_ran != ran || now_ran.is_none() {
            (since, ran) = (Instant::now(), now_ran);
            continue;
        }
        if since.elapsed() >= HANG_AFTER {
            // Said before the abort: the case sees the abort's effect at once and ends, and
            // its teardown must then find why.
            let why = format!(
                "{waiting} request(s) waited {} s on the server while it did not run; \
                 the harness aborted the connection",
                HANG_AFTER.as_secs()
            );
            if let Ok(mut h) = hung.lock() {
                *h = Some(why);
            }
            if let Err(e) = crate::fuse::abort_connection(connection) {
                if let Ok(mut h) = hung.lock() {
                    *h = h.take().map(|w| format!("{w}, but the abort failed: {e}"));
                }
            }
            return;
        }
    }
}

/// The time process `pid` has run, summed over its threads: nanoseconds from each thread's
/// schedstat, or clock ticks from its stat where there is no schedstat.
fn run_time(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut sum = 0u64;
    for task in tasks.flatten() {
        let path = task.path();
        let ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
        sum += match ns {
            Some(ns) => ns,
            None => ticks(&std::fs::read_to_string(path.join("stat")).ok()?)?,
        };
    }
    Some(sum)
}

/// utime + stime from a /proc stat line (fields 14 and 15; the name in parentheses may
/// hold spaces, so count after its closing parenthesis).
fn ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ticks_are_counted_after_the_name() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 9 0 0";
        assert_eq!(super::ticks(stat), Some(12));
    }
}
