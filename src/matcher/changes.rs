//! List-change notification: after every swap of the running set (API edit, feed refresh,
//! `--blocklist` reload), the entries the new set has and the old one had not are reported to
//! a [`ListChangeSink`] (port `crate::ports::lists`) — the retro-hunt's trigger. The matcher
//! does not know the consumer; without a registered sink nothing is computed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::Blocklists;
use crate::metrics;
use crate::ports::{AddedEntry, ListChange, ListChangeSink};

/// Most added entries carried by one change: a first download of a big feed must not turn one
/// notification into a copy of the whole list (~100 B an entry); the rest is counted in
/// [`ListChange::truncated`].
pub const MAX_CHANGE_ENTRIES: usize = 100_000;

/// The registered sink and the version counter; shared by every clone of a `Reloader`.
#[derive(Default)]
pub(crate) struct ChangeNotifier {
    sink: Mutex<Option<Arc<dyn ListChangeSink>>>,
    version: AtomicU64,
}

impl ChangeNotifier {
    /// Registers (or replaces, or with `None` removes) the sink.
    pub(crate) fn set_sink(&self, sink: Option<Arc<dyn ListChangeSink>>) {
        *self.sink.lock().unwrap_or_else(|e| e.into_inner()) = sink;
    }

    /// Reports what `new` added over `old`, if a sink listens and anything was added.
    pub(crate) fn swapped(&self, old: &Blocklists, new: &Blocklists) {
        let Some(sink) = self.sink.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return;
        };
        let (added, truncated) = added_entries(old, new, MAX_CHANGE_ENTRIES);
        if added.is_empty() && truncated == 0 {
            return;
        }
        let version = self
            .version
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        let m = Metrics::get();
        if sink.list_changed(ListChange {
            version,
            added,
            truncated,
        }) {
            m.sent.inc();
        } else {
            m.dropped.inc();
            tracing::warn!(
                version,
                "list change refused by its consumer (full or closed)"
            );
        }
    }
}

/// Entries of `new` (names, then addresses, in set order) whose (list, entry) pair `old` does
/// not hold; at most `cap`, with the count of the rest.
pub fn added_entries(old: &Blocklists, new: &Blocklists, cap: usize) -> (Vec<AddedEntry>, u64) {
    let before: HashSet<(&str, &str)> = old
        .name_entries()
        .iter()
        .chain(old.ip_entries())
        .map(|h| (h.list.as_str(), h.entry.as_str()))
        .collect();
    let mut added = Vec::new();
    let mut truncated = 0u64;
    for h in new.name_entries().iter().chain(new.ip_entries()) {
        if before.contains(&(h.list.as_str(), h.entry.as_str())) {
            continue;
        }
        if added.len() < cap {
            added.push(AddedEntry {
                list: h.list.clone(),
                entry: h.entry.clone(),
                category: h.category,
            });
        } else {
            truncated = truncated.saturating_add(1);
        }
    }
    (added, truncated)
}

struct Metrics {
    sent: metrics::Counter,
    dropped: metrics::Counter,
}

impl Metrics {
    fn get() -> &'static Metrics {
        static M: std::sync::OnceLock<Metrics> = std::sync::OnceLock::new();
        M.get_or_init(|| Metrics {
            sent: metrics::counter(
                "poolwatch_list_changes_total",
                "List changes (entries added) handed to their consumer.",
                &[],
            ),
            dropped: metrics::counter(
                "poolwatch_list_changes_dropped_total",
                "List changes the consumer refused (its queue was full or closed).",
                &[],
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::ListSource;
    use crate::model::Category;

    fn set(lists: &[(&str, &str)]) -> Blocklists {
        let src = lists
            .iter()
            .map(|(n, t)| ListSource::memory(n, Category::Pool, None, t))
            .collect();
        Blocklists::build(src).unwrap().0
    }

    #[test]
    fn reports_only_what_is_new_and_caps_it() {
        let old = set(&[("a", "x.example\n203.0.113.9\n")]);
        let new = set(&[
            ("a", "x.example\ny.example\n203.0.113.9\n198.51.100.0/24\n"),
            // x.example again: a duplicate of list a's, not in the compiled set, not new.
            ("b", "x.example\nz.example\n"),
        ]);
        let (added, truncated) = added_entries(&old, &new, 10);
        let got: Vec<(String, String)> = added
            .iter()
            .map(|e| (e.list.clone(), e.entry.clone()))
            .collect();
        assert_eq!(truncated, 0);
        assert_eq!(got.len(), 3, "{got:?}");
        for want in [
            ("a", "y.example"),
            ("b", "z.example"),
            ("a", "198.51.100.0/24"),
        ] {
            assert!(
                got.contains(&(want.0.to_string(), want.1.to_string())),
                "{want:?} in {got:?}"
            );
        }
        let (some, rest) = added_entries(&old, &new, 1);
        assert_eq!((some.len(), rest), (1, 2));
        assert!(added_entries(&new, &new, 10).0.is_empty());
    }

    #[test]
    fn a_full_queue_is_counted_not_blocking() {
        let n = ChangeNotifier::default();
        let (tx, rx) = std::sync::mpsc::sync_channel::<ListChange>(1);
        n.set_sink(Some(Arc::new(tx)));
        let a = set(&[("a", "x.example\n")]);
        let b = set(&[("a", "x.example\ny.example\n")]);
        let before = Metrics::get().dropped.get();
        n.swapped(&a, &b);
        n.swapped(&a, &b); // queue of one is full: refused, counted, returns at once
        n.swapped(&b, &b); // nothing added: nothing sent
        assert!(Metrics::get().dropped.get() > before);
        let first = rx.try_recv().unwrap();
        assert_eq!(first.version, 1);
        assert_eq!(first.added[0].entry, "y.example");
        assert!(rx.try_recv().is_err());
    }
}
