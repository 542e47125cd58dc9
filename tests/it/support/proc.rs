//! Resource usage of one child process. All integration tests share one process, so
//! `getrusage(RUSAGE_CHILDREN)` would mix in every other test's children: these helpers wait for
//! the one child with `wait4` (its own CPU time) and sample its peak RSS from
//! `/proc/<pid>/status` (`VmHWM`). `ru_maxrss` cannot be used for the peak: Linux carries the
//! parent's high-water mark into the child across fork + exec, so a child of this (large) test
//! process would report the test process's size.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// How often the child's `VmHWM` is read.
pub const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(5);

/// `VmHWM` of `pid` in KiB, or `None` once its address space is gone (exited).
fn vm_hwm_kb(pid: u32) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What one child used.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// User + system CPU seconds.
    pub cpu_secs: f64,
    /// Peak resident set size, KiB (`VmHWM` of the child's own address space, sampled every
    /// [`RSS_SAMPLE_EVERY`] until it exits: a high-water mark, so only a peak in the child's
    /// last moments could be missed).
    pub max_rss_kb: i64,
}

/// Waits for `child` (whose stdout/stderr, when piped, are drained concurrently so it cannot
/// block on a full pipe) and returns its output and its own resource usage.
pub fn wait_with_usage(mut child: Child) -> (Output, Usage) {
    fn drain<R: Read + Send + 'static>(r: Option<R>) -> thread::JoinHandle<Vec<u8>> {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    drop(child.stdin.take());
    let pid = child.id() as libc::pid_t;
    // The pid cannot be reused before wait4 below reaps it, so the sampler reads only our child.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        let id = child.id();
        thread::spawn(move || {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                match vm_hwm_kb(id) {
                    Some(kb) => peak = peak.max(kb),
                    None => break,
                }
                thread::sleep(RSS_SAMPLE_EVERY);
            }
            peak
        })
    };
    let mut status: libc::c_int = 0;
    // SAFETY: wait4 writes only the status and the zeroed rusage it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = loop {
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if rc == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break rc;
    };
    assert_eq!(rc, pid, "wait4: {}", std::io::Error::last_os_error());
    done.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap_or(0);
    let cpu = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let usage = Usage {
        cpu_secs: cpu(ru.ru_utime) + cpu(ru.ru_stime),
        max_rss_kb: peak,
    };
    let output = Output {
        status: ExitStatus::from_raw(status),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    // `child` was reaped by wait4: dropping it does not wait again (Child's drop never waits).
    (output, usage)
}

/// Removes every `POOLWATCH_*` variable from `cmd`'s environment: a developer's own settings
/// (flags' environment fallbacks) must not leak into a test's child.
pub fn without_poolwatch_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("POOLWATCH_") {
            cmd.env_remove(k);
        }
    }
    cmd
}
