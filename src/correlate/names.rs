//! Shared list names: the engine's keys hold a pool entry (and bindings a list name) as an
//! `Arc<str>`; one per distinct name, not one allocation per event.
//!
//! A flood of pool lookups and SYNs (issue #11) names the same entry in every event: each built
//! a fresh `Arc<str>` for its incident key (allocated, compared byte by byte against the table's
//! key, freed). Entry and list names come from the loaded lists, so there are few; the table is
//! still capped ([`MAX_SHARED_NAMES`]) against a list reload that names many more: when full it
//! starts over (a key keeps its own `Arc`; names compare by value, so nothing depends on two
//! keys sharing one).

use std::sync::Arc;

use rustc_hash::FxHashSet;

/// Distinct names shared at most; past it the table is emptied and refilled.
pub(super) const MAX_SHARED_NAMES: usize = 4_096;

#[derive(Debug)]
pub(super) struct SharedNames {
    names: FxHashSet<Arc<str>>,
    cap: usize,
}

impl SharedNames {
    pub(super) fn new(cap: usize) -> Self {
        SharedNames {
            names: FxHashSet::default(),
            cap: cap.max(1),
        }
    }

    /// The shared `Arc` for `name` (allocated on first use).
    pub(super) fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(a) = self.names.get(name) {
            return Arc::clone(a);
        }
        if self.names.len() >= self.cap {
            self.names.clear();
        }
        let a: Arc<str> = Arc::from(name);
        self.names.insert(Arc::clone(&a));
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_arc_per_name_within_the_cap() {
        let mut n = SharedNames::new(2);
        let a = n.get("supportxmr.com");
        let b = n.get("supportxmr.com");
        assert!(Arc::ptr_eq(&a, &b));
        let _ = n.get("nanopool.org");
        assert_eq!(n.names.len(), 2);
        // Full: starts over, and the names are still equal by value.
        let c = n.get("minexmr.com");
        assert_eq!(n.names.len(), 1);
        assert_eq!(&*c, "minexmr.com");
        assert_eq!(n.get("supportxmr.com"), a);
        assert!(n.names.len() <= 2);
    }
}
