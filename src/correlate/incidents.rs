//! The engine's incident table: open (client, pool entry) incidents in memory, LRU-capped, plus
//! the incidents evicted since the last durable flush ("parked").
//!
//! Why parked: the pipeline persists detection updates write-behind (coalesced in a batch,
//! written and fsynced together). An incident evicted from the live table may have updates that
//! are still in that batch, so the store's copy is older, or absent for an incident reported since
//! the last flush. Reloading it from the store would then lose counts or, when absent, mint a
//! second detection id for the same (client, entry) (issue #11, "incidents split under many
//! clients"). So an evicted incident reported since the last flush is parked here, with its full
//! state, until the pipeline reports the flush ([`IncidentTable::persisted`]); then the store's
//! copy is the latest and the parked ones are dropped. An evicted incident with nothing unflushed
//! is not parked (the store has it).
//!
//! Parked incidents are bounded by the pipeline's batch size (only incidents reported since the
//! last flush are parked, and the batch is flushed at `MAX_DIRTY` detections); the table also
//! has its own cap ([`IncidentTable::new`]) for an engine used without a pipeline, counted in
//! `EngineStats::parked_dropped`.

use std::net::IpAddr;
use std::sync::Arc;

use super::bounded::BoundedMap;
use crate::model::{Detection, Stage};

pub(super) type IncidentKey = (IpAddr, Arc<str>);

#[derive(Debug)]
pub(super) struct Incident {
    /// Boxed: an incident moves between the live table, the parked table, the batch and the
    /// store (and hash tables move their values when they grow); a pointer moves, a ~1 KB
    /// detection would be copied each time (issue #11: ≈ 20% of a flood's CPU).
    pub(super) det: Box<Detection>,
    pub(super) emitted: bool,
    /// Stage when last reported (to tell Upgraded from Updated).
    pub(super) reported_stage: Option<Stage>,
    pub(super) max_base: u8,
    pub(super) sustained: bool,
    /// The flush generation in which the incident was last reported; equal to the table's
    /// current generation when the store may not have its latest state yet.
    pub(super) reported_gen: u64,
    /// Deferred mode: the engine holds state that no [`super::Changes`] carried yet (an
    /// `Updated` report, or an incident the store handed over); written at the next flush.
    pub(super) dirty: bool,
}

/// Live incidents (LRU) + parked ones (evicted, not yet durable).
#[derive(Debug)]
pub(super) struct IncidentTable {
    live: BoundedMap<IncidentKey, Incident>,
    parked: BoundedMap<IncidentKey, Incident>,
    parked_cap: usize,
    gen: u64,
    /// Keys whose incident was marked dirty since the last [`IncidentTable::take_dirty`].
    dirty_keys: Vec<IncidentKey>,
}

impl IncidentTable {
    /// `cap` live incidents; as many parked at most (the pipeline keeps far fewer).
    pub(super) fn new(cap: usize) -> Self {
        IncidentTable {
            live: BoundedMap::new(cap),
            parked: BoundedMap::new(cap),
            parked_cap: cap,
            gen: 0,
            dirty_keys: Vec::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.live.len()
    }

    pub(super) fn parked_len(&self) -> usize {
        self.parked.len()
    }

    pub(super) fn get(&self, k: &IncidentKey) -> Option<&Incident> {
        self.live.get(k)
    }

    pub(super) fn get_mut(&mut self, k: &IncidentKey) -> Option<&mut Incident> {
        self.live.get_mut(k)
    }

    pub(super) fn get_mut_touch(&mut self, k: &IncidentKey) -> Option<&mut Incident> {
        self.live.get_mut_touch(k)
    }

    /// A live incident being reported for the first time, made the most recent one (and any
    /// parked copy dropped), as removing and inserting it again would.
    pub(super) fn touch_for_report(&mut self, k: &IncidentKey) -> Option<&mut Incident> {
        if !self.parked.is_empty() {
            self.parked.remove(k);
        }
        self.live.get_mut_touch(k)
    }

    /// Removes a live incident (and any parked copy: the caller is ending it).
    pub(super) fn remove(&mut self, k: &IncidentKey) -> Option<Incident> {
        self.parked.remove(k);
        self.live.remove(k)
    }

    /// Inserts into the live table; returns the incident evicted to make room (the caller
    /// reports it if it was never reported, then hands it to [`IncidentTable::park`]).
    pub(super) fn insert(
        &mut self,
        k: IncidentKey,
        inc: Incident,
    ) -> Option<(IncidentKey, Incident)> {
        self.live.insert(k, inc)
    }

    /// True when half the parked table is used: the pipeline flushes then, so parked incidents
    /// never have to be dropped whatever its batch size.
    pub(super) fn parked_pressure(&self) -> bool {
        self.parked.len() >= (self.parked_cap / 2).max(1)
    }

    /// The generation to stamp on an incident being reported now.
    pub(super) fn generation(&self) -> u64 {
        self.gen
    }

    /// Keeps an evicted incident until the next flush if the store may lack its latest state.
    /// Returns true when a parked incident had to be dropped for room (the cap was reached:
    /// only possible without a pipeline flushing).
    pub(super) fn park(&mut self, k: IncidentKey, inc: Incident) -> bool {
        if !inc.dirty && (inc.reported_gen != self.gen || !inc.emitted) {
            return false;
        }
        self.parked.insert(k, inc).is_some()
    }

    /// Whether anything awaits a write: parked or dirty incidents.
    pub(super) fn has_unwritten(&self) -> bool {
        !self.dirty_keys.is_empty() || !self.parked.is_empty()
    }

    /// Marks a live incident as holding unwritten state (deferred mode).
    pub(super) fn mark_dirty(&mut self, k: &IncidentKey) {
        if let Some(inc) = self.live.get_mut(k) {
            if !inc.dirty {
                inc.dirty = true;
                self.dirty_keys.push(k.clone());
            }
        }
    }

    /// Hands the latest state of what is unwritten to `sink`: parked incidents (moved: they
    /// leave memory) and, with `live`, the dirty live ones (copied; they stay). Without `live`
    /// (a store that is not durable, where only eviction and the end of input need a write)
    /// dirty live incidents stay dirty.
    pub(super) fn take_dirty(&mut self, live: bool, sink: &mut dyn FnMut(Detection)) {
        self.take_parked(&mut |d| sink(*d));
        if live {
            for k in std::mem::take(&mut self.dirty_keys) {
                if let Some(inc) = self.live.get_mut(&k) {
                    if inc.dirty {
                        inc.dirty = false;
                        sink(Detection::clone(&inc.det));
                    }
                }
            }
        } else {
            // Keys of incidents no longer live (evicted, parked, just taken) and repeats are
            // dropped once the list outgrows the live table, so it stays within twice its size
            // at amortised O(1) per key.
            if self.dirty_keys.len() > 2 * self.live.len() + 64 {
                let live_map = &self.live;
                let mut seen = rustc_hash::FxHashSet::default();
                self.dirty_keys
                    .retain(|k| live_map.get(k).is_some_and(|i| i.dirty) && seen.insert(k.clone()));
            }
        }
    }

    /// Moves the parked incidents to `sink`, boxed.
    fn take_parked(&mut self, sink: &mut dyn FnMut(Box<Detection>)) {
        let mut parked = std::mem::replace(&mut self.parked, BoundedMap::new(self.parked_cap));
        for (_, inc) in parked.drain_oldest_first() {
            sink(inc.det);
        }
    }

    /// Moves every incident holding unwritten state (parked, then live) to `sink`, boxed (end
    /// of input); the table is empty afterwards.
    pub(super) fn take_all_dirty(&mut self, sink: &mut dyn FnMut(Box<Detection>)) {
        self.take_parked(sink);
        self.dirty_keys.clear();
        for (_, inc) in self.live.drain_oldest_first() {
            if inc.dirty {
                sink(inc.det);
            }
        }
    }

    /// Takes a parked incident back (it recurred before its flush).
    pub(super) fn unpark(&mut self, k: &IncidentKey) -> Option<Incident> {
        self.parked.remove(k)
    }

    /// Everything reported so far is durable: parked incidents are no longer needed.
    pub(super) fn persisted(&mut self) {
        self.gen = self.gen.wrapping_add(1);
        if !self.parked.is_empty() {
            self.parked = BoundedMap::new(self.parked_cap);
        }
    }
}
