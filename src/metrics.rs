//! Process-wide counters and gauges, rendered as Prometheus text by the API.
//!
//! Every stage registers what it counts once (at start-up or lazily) and keeps the returned
//! handle; incrementing is one relaxed atomic add, cheap enough for the packet path.
//! Label values are fixed vocabularies (a parse-error reason, a stage, a format): never an IP
//! address or a domain, so the series count stays bounded.
//!
//! Naming follows the Prometheus rules `promtool check metrics` enforces: base units (seconds,
//! bytes), `_total` on counters and only on counters. Besides the registered series, every
//! rendering carries `poolwatch_build_info` and the standard `process_*` metrics (Linux:
//! `/proc/self`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// A monotonically increasing counter.
#[derive(Clone, Debug)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (table sizes, list entries).
#[derive(Clone, Debug)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    #[inline]
    pub fn add(&self, v: i64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A counter of microseconds exported in seconds (Prometheus base unit): the hot path adds
/// integers, the rendering divides.
#[derive(Clone, Debug)]
pub struct SecondsCounter(Arc<AtomicU64>);

impl SecondsCounter {
    /// Adds a duration (saturating at `u64::MAX` microseconds).
    #[inline]
    pub fn add(&self, d: std::time::Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.0.fetch_add(us, Ordering::Relaxed);
    }
    /// Total, microseconds.
    pub fn micros(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
enum Value {
    Counter(Arc<AtomicU64>),
    Gauge(Arc<AtomicI64>),
    /// Microseconds, rendered as seconds.
    Seconds(Arc<AtomicU64>),
}

struct Family {
    help: &'static str,
    kind: &'static str,
    /// Rendered label set (`{reason="truncated"}` or empty) → value.
    series: BTreeMap<String, Value>,
}

#[derive(Default)]
struct Registry {
    families: BTreeMap<&'static str, Family>,
}

fn registry() -> &'static Mutex<Registry> {
    static REG: OnceLock<Mutex<Registry>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(Registry::default()))
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut s = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let v = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(s, "{k}=\"{v}\"");
    }
    s.push('}');
    s
}

/// Registers (or finds) a counter series. Calling twice with the same name and labels returns
/// the same underlying counter.
pub fn counter(name: &'static str, help: &'static str, labels: &[(&str, &str)]) -> Counter {
    let key = render_labels(labels);
    let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    let fam = reg.families.entry(name).or_insert_with(|| Family {
        help,
        kind: "counter",
        series: BTreeMap::new(),
    });
    match fam
        .series
        .entry(key)
        .or_insert_with(|| Value::Counter(Arc::new(AtomicU64::new(0))))
    {
        Value::Counter(c) => Counter(c.clone()),
        // A name registered as a gauge and asked for as a counter: a programming error; hand out
        // a detached counter rather than panic.
        Value::Gauge(_) | Value::Seconds(_) => Counter(Arc::new(AtomicU64::new(0))),
    }
}

/// Registers (or finds) a counter of time spent, rendered in seconds. `name` must end in
/// `_seconds_total`.
pub fn seconds_counter(
    name: &'static str,
    help: &'static str,
    labels: &[(&str, &str)],
) -> SecondsCounter {
    let key = render_labels(labels);
    let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    let fam = reg.families.entry(name).or_insert_with(|| Family {
        help,
        kind: "counter",
        series: BTreeMap::new(),
    });
    match fam
        .series
        .entry(key)
        .or_insert_with(|| Value::Seconds(Arc::new(AtomicU64::new(0))))
    {
        Value::Seconds(c) => SecondsCounter(c.clone()),
        _ => SecondsCounter(Arc::new(AtomicU64::new(0))),
    }
}

/// Registers (or finds) a gauge series.
pub fn gauge(name: &'static str, help: &'static str, labels: &[(&str, &str)]) -> Gauge {
    let key = render_labels(labels);
    let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    let fam = reg.families.entry(name).or_insert_with(|| Family {
        help,
        kind: "gauge",
        series: BTreeMap::new(),
    });
    match fam
        .series
        .entry(key)
        .or_insert_with(|| Value::Gauge(Arc::new(AtomicI64::new(0))))
    {
        Value::Gauge(g) => Gauge(g.clone()),
        Value::Counter(_) | Value::Seconds(_) => Gauge(Arc::new(AtomicI64::new(0))),
    }
}

/// Renders every registered series in the Prometheus text exposition format (version 0.0.4).
pub fn render() -> String {
    let reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    let mut out = String::new();
    for (name, fam) in &reg.families {
        let _ = writeln!(out, "# HELP {name} {}", fam.help);
        let _ = writeln!(out, "# TYPE {name} {}", fam.kind);
        for (labels, v) in &fam.series {
            match v {
                Value::Counter(c) => {
                    let _ = writeln!(out, "{name}{labels} {}", c.load(Ordering::Relaxed));
                }
                Value::Gauge(g) => {
                    let _ = writeln!(out, "{name}{labels} {}", g.load(Ordering::Relaxed));
                }
                Value::Seconds(c) => {
                    let secs = c.load(Ordering::Relaxed) as f64 / 1e6;
                    let _ = writeln!(out, "{name}{labels} {secs}");
                }
            }
        }
    }
    drop(reg);
    render_build_info(&mut out);
    render_process(&mut out);
    out
}

/// `poolwatch_build_info{version,commit,build_date} 1`, the usual way to join a version to
/// other series.
fn render_build_info(out: &mut String) {
    use crate::version::{BUILD_DATE, GIT_COMMIT, VERSION};
    let labels = render_labels(&[
        ("version", VERSION),
        ("commit", GIT_COMMIT),
        ("build_date", BUILD_DATE),
    ]);
    let _ = writeln!(
        out,
        "# HELP poolwatch_build_info Version, git commit and build date of the running binary (always 1).\n\
         # TYPE poolwatch_build_info gauge\n\
         poolwatch_build_info{labels} 1"
    );
}

/// Clock ticks per second of `/proc/self/stat` times (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(p).ok().filter(|p| *p > 0).unwrap_or(4096)
}

/// The fields of `/proc/self/stat` the process metrics use.
#[derive(Debug, Default, PartialEq)]
struct ProcStat {
    utime: u64,
    stime: u64,
    threads: u64,
    starttime: u64,
    vsize: u64,
    rss_pages: u64,
}

/// Parses `/proc/self/stat`: fields after the parenthesised command name (which may itself
/// contain spaces and parentheses, hence the last `)`).
fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = text.get(text.rfind(')')? + 1..)?;
    // After `)`: field 3 (state) is index 0; utime is field 14 → index 11.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(ProcStat {
        utime: num(11)?,
        stime: num(12)?,
        threads: num(17)?,
        starttime: num(19)?,
        vsize: num(20)?,
        rss_pages: num(21)?,
    })
}

/// Boot time, Unix seconds (`btime` of `/proc/stat`).
fn boot_time() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Soft limit of open files (`RLIMIT_NOFILE`).
fn max_fds() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0).then_some(lim.rlim_cur)
}

/// The standard `process_*` metrics (names and units of the Prometheus client libraries), read
/// from `/proc/self` at scrape time; absent where `/proc` is not mounted.
fn render_process(out: &mut String) {
    let Some(st) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| parse_stat(&t))
    else {
        return;
    };
    let ticks = clock_ticks();
    let mut emit = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    emit(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        format!("{}", (st.utime + st.stime) as f64 / ticks),
    );
    emit(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        st.rss_pages.saturating_mul(page_size()).to_string(),
    );
    emit(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        st.vsize.to_string(),
    );
    emit(
        "process_threads",
        "gauge",
        "Number of OS threads in the process.",
        st.threads.to_string(),
    );
    if let Some(bt) = boot_time() {
        emit(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            format!("{}", bt as f64 + st.starttime as f64 / ticks),
        );
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        emit(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            dir.count().to_string(),
        );
    }
    if let Some(m) = max_fds() {
        emit(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            m.to_string(),
        );
    }
}

/// Current value of a counter series, if registered (for tests and the CLI summary).
pub fn counter_value(name: &str, labels: &[(&str, &str)]) -> Option<u64> {
    let key = render_labels(labels);
    let reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    match reg.families.get(name)?.series.get(&key)? {
        Value::Counter(c) => Some(c.load(Ordering::Relaxed)),
        Value::Gauge(g) => Some(g.load(Ordering::Relaxed).max(0) as u64),
        Value::Seconds(c) => Some(c.load(Ordering::Relaxed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render() {
        let c = counter(
            "poolwatch_test_things_total",
            "Things counted by the test.",
            &[("reason", "a\"b")],
        );
        c.inc();
        c.add(2);
        let again = counter("poolwatch_test_things_total", "", &[("reason", "a\"b")]);
        assert_eq!(again.get(), 3);
        let text = render();
        assert!(text.contains("# TYPE poolwatch_test_things_total counter"));
        assert!(text.contains("poolwatch_test_things_total{reason=\"a\\\"b\"} 3"));
    }

    #[test]
    fn seconds_render_in_seconds() {
        let s = seconds_counter("poolwatch_test_busy_seconds_total", "Busy time.", &[]);
        s.add(std::time::Duration::from_micros(1_500_000));
        let text = render();
        assert!(text.contains("# TYPE poolwatch_test_busy_seconds_total counter"));
        assert!(
            text.contains("poolwatch_test_busy_seconds_total 1.5\n"),
            "{text}"
        );
    }

    #[test]
    fn build_info_and_process_metrics() {
        let text = render();
        let line = format!(
            "poolwatch_build_info{{version=\"{}\",commit=\"{}\",build_date=\"{}\"}} 1",
            crate::version::VERSION,
            crate::version::GIT_COMMIT,
            crate::version::BUILD_DATE
        );
        assert!(text.contains(&line), "{text}");
        if std::path::Path::new("/proc/self/stat").exists() {
            for m in [
                "process_cpu_seconds_total ",
                "process_resident_memory_bytes ",
                "process_open_fds ",
                "process_start_time_seconds ",
            ] {
                assert!(text.contains(m), "{m} missing: {text}");
            }
        }
    }

    #[test]
    fn stat_with_odd_command_name() {
        let line = "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 5 0 12345 \
                    1000000 250 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let st = parse_stat(line).expect("parses");
        assert_eq!(
            st,
            ProcStat {
                utime: 7,
                stime: 3,
                threads: 5,
                starttime: 12345,
                vsize: 1_000_000,
                rss_pages: 250
            }
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }
}
