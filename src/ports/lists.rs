//! List changes: the matcher reports which entries a swap of the running list set added, so a
//! consumer (the retro-hunt over stored history) can look for them in the past. The matcher
//! calls the sink; it does not know who listens.
//!
//! Delivery is best effort and never blocks a reload: [`ListChangeSink::list_changed`] must
//! return at once (e.g. `try_send` on a bounded channel). A refused change is counted by the
//! matcher (`poolwatch_list_changes_dropped_total`); [`ListChange::version`] is consecutive per
//! reloader, so a consumer also sees a gap.

use crate::model::Category;

/// One entry that is in the new set and was not in the old one (per list: an entry moved to
/// another list counts as added to that list).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AddedEntry {
    /// The list it is in now.
    pub list: String,
    /// The entry as normalised (`supportxmr.com`, `203.0.113.0/24`, `198.51.100.7:3333`).
    pub entry: String,
    pub category: Category,
}

/// What one swap of the running set added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListChange {
    /// 1, 2, 3, … per swap that added something (a gap means a refused change).
    pub version: u64,
    /// The added entries, at most the matcher's `MAX_CHANGE_ENTRIES`.
    pub added: Vec<AddedEntry>,
    /// Added entries left out beyond that cap (a huge first feed download, say).
    pub truncated: u64,
}

/// Where the matcher reports list changes. Implementations must not block.
pub trait ListChangeSink: Send + Sync {
    /// Takes one change; `false` when it was refused (full, closed), so the matcher counts it.
    fn list_changed(&self, change: ListChange) -> bool;
}

/// A bounded channel as a sink: `try_send`, refusing when `cap` changes wait unread.
impl ListChangeSink for std::sync::mpsc::SyncSender<ListChange> {
    fn list_changed(&self, change: ListChange) -> bool {
        self.try_send(change).is_ok()
    }
}

/// The same for a tokio consumer.
impl ListChangeSink for tokio::sync::mpsc::Sender<ListChange> {
    fn list_changed(&self, change: ListChange) -> bool {
        self.try_send(change).is_ok()
    }
}
