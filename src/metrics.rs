//! Process-wide counters and gauges, rendered as Prometheus text by the API.
//!
//! Every stage registers what it counts once (at start-up or lazily) and keeps the returned
//! handle; incrementing is one relaxed atomic add, cheap enough for the packet path.
//! Label values are fixed vocabularies (a parse-error reason, a stage, a format): never an IP
//! address or a domain, so the series count stays bounded.
//!
//! Naming follows `poolwatch_<thing>_<unit>_total` for counters.

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

#[derive(Clone)]
enum Value {
    Counter(Arc<AtomicU64>),
    Gauge(Arc<AtomicI64>),
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
        Value::Gauge(_) => Counter(Arc::new(AtomicU64::new(0))),
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
        Value::Counter(_) => Gauge(Arc::new(AtomicI64::new(0))),
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
            }
        }
    }
    out
}

/// Current value of a counter series, if registered (for tests and the CLI summary).
pub fn counter_value(name: &str, labels: &[(&str, &str)]) -> Option<u64> {
    let key = render_labels(labels);
    let reg = registry().lock().unwrap_or_else(|e| e.into_inner());
    match reg.families.get(name)?.series.get(&key)? {
        Value::Counter(c) => Some(c.load(Ordering::Relaxed)),
        Value::Gauge(g) => Some(g.load(Ordering::Relaxed).max(0) as u64),
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
}
