//! Durable per-sink outboxes (the output stage's delivery queues) in sled.
//!
//! Layout (`docs/store.md`):
//! * one tree per sink, `outbox/<sink name>`: key = the event sequence (u64 big-endian, so a
//!   scan returns events in the order they were made), value = the event record (JSON, owned by
//!   `crate::output`);
//! * tree `outbox_meta`: per sink `<name>/dropped` and `<name>/delivered` (u64 big-endian),
//!   lifetime counters that survive restarts.
//!
//! An entry is written by the pipeline thread before the store flush that makes its detection
//! durable, and removed only when the sink acknowledged it. The outbox is bounded by a record
//! count and a byte total; what does not fit is refused and counted in `dropped`, never lost
//! silently.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{db_err, Store, StoreError};

/// Tree name prefix of the per-sink outboxes.
pub const OUTBOX_TREE_PREFIX: &str = "outbox/";
/// Tree of the per-sink lifetime counters.
pub(crate) const TREE_OUTBOX_META: &str = "outbox_meta";
/// Longest sink name (it is part of a tree name and a metrics label).
pub const MAX_SINK_NAME_LEN: usize = 64;

/// Caps of one outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxLimits {
    pub max_records: u64,
    pub max_bytes: u64,
}

struct Inner {
    name: String,
    tree: sled::Tree,
    meta: sled::Tree,
    limits: OutboxLimits,
    records: AtomicU64,
    bytes: AtomicU64,
    dropped: AtomicU64,
    delivered: AtomicU64,
}

/// One sink's outbox. Cheap to clone; methods take `&self` and may be called from any thread.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("name", &self.inner.name)
            .field("records", &self.len())
            .finish()
    }
}

fn read_u64(meta: &sled::Tree, key: &str) -> Result<u64, StoreError> {
    Ok(meta
        .get(key.as_bytes())
        .map_err(db_err)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map_or(0, u64::from_be_bytes))
}

impl Store {
    /// Opens (creating if needed) the outbox of sink `name`. The name must be a valid sink name
    /// (`[a-z0-9._-]`, 1 to [`MAX_SINK_NAME_LEN`] bytes; the config checks it).
    pub fn outbox(&self, name: &str, limits: OutboxLimits) -> Result<Outbox, StoreError> {
        if name.is_empty()
            || name.len() > MAX_SINK_NAME_LEN
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        {
            return Err(StoreError::Invalid(format!("invalid sink name {name:?}")));
        }
        let db = &self.inner.db;
        let tree = db
            .open_tree(format!("{OUTBOX_TREE_PREFIX}{name}"))
            .map_err(db_err)?;
        let meta = db.open_tree(TREE_OUTBOX_META).map_err(db_err)?;
        // The counts are kept in memory; an open walks the tree once (bounded by the caps).
        let (mut records, mut bytes) = (0u64, 0u64);
        for entry in tree.iter() {
            let (_, v) = entry.map_err(db_err)?;
            records += 1;
            bytes += v.len() as u64;
        }
        let dropped = read_u64(&meta, &format!("{name}/dropped"))?;
        let delivered = read_u64(&meta, &format!("{name}/delivered"))?;
        Ok(Outbox {
            inner: Arc::new(Inner {
                name: name.to_string(),
                tree,
                meta,
                limits,
                records: AtomicU64::new(records),
                bytes: AtomicU64::new(bytes),
                dropped: AtomicU64::new(dropped),
                delivered: AtomicU64::new(delivered),
            }),
        })
    }

    /// Names and entry counts of every outbox in the database (configured or not), so that
    /// the service can warn about the backlog of a sink that was removed from the config.
    pub fn outbox_names(&self) -> Vec<(String, usize)> {
        self.inner
            .db
            .tree_names()
            .into_iter()
            .filter_map(|n| {
                let n = String::from_utf8(n.to_vec()).ok()?;
                let name = n.strip_prefix(OUTBOX_TREE_PREFIX)?.to_string();
                let len = self.inner.db.open_tree(&n).ok()?.len();
                Some((name, len))
            })
            .collect()
    }

    /// A new event sequence number: unique and increasing across restarts (sled's persistent
    /// id generator; a crash may skip numbers, never repeat one).
    pub fn next_event_seq(&self) -> Result<u64, StoreError> {
        self.inner.db.generate_id().map_err(db_err)
    }
}

impl Outbox {
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn limits(&self) -> OutboxLimits {
        self.inner.limits
    }

    /// Appends an event under `seq`. `Ok(false)` when the outbox is full (count or bytes): the
    /// event is refused and `dropped` counts it (persisted with the next flush).
    pub fn push(&self, seq: u64, record: &[u8]) -> Result<bool, StoreError> {
        let i = &self.inner;
        let len = record.len() as u64;
        let full = i.records.load(Ordering::Relaxed) >= i.limits.max_records
            || i.bytes.load(Ordering::Relaxed).saturating_add(len) > i.limits.max_bytes;
        if full {
            let d = i.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            i.meta
                .insert(format!("{}/dropped", i.name).as_bytes(), &d.to_be_bytes())
                .map_err(db_err)?;
            return Ok(false);
        }
        let old = i.tree.insert(seq.to_be_bytes(), record).map_err(db_err)?;
        match old {
            // A sequence is never reused; if it were, the count must not drift.
            Some(v) => {
                i.bytes.fetch_sub(v.len() as u64, Ordering::Relaxed);
            }
            None => {
                i.records.fetch_add(1, Ordering::Relaxed);
            }
        }
        i.bytes.fetch_add(len, Ordering::Relaxed);
        Ok(true)
    }

    /// Up to `max` of the oldest entries, as (sequence, record).
    pub fn peek(&self, max: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::with_capacity(max.min(1024));
        for entry in self.inner.tree.iter().take(max) {
            let (k, v) = entry.map_err(db_err)?;
            let Ok(k) = <[u8; 8]>::try_from(k.as_ref()) else {
                // Not a key this module wrote: skip it rather than stop the sink.
                continue;
            };
            out.push((u64::from_be_bytes(k), v.to_vec()));
        }
        Ok(out)
    }

    /// Removes delivered entries and counts them as delivered.
    pub fn ack(&self, seqs: &[u64]) -> Result<(), StoreError> {
        self.remove(seqs, "delivered", &self.inner.delivered)
    }

    /// Removes entries that the receiver refused for good and counts them as dropped.
    pub fn reject(&self, seqs: &[u64]) -> Result<(), StoreError> {
        self.remove(seqs, "dropped", &self.inner.dropped)
    }

    fn remove(&self, seqs: &[u64], counter: &str, c: &AtomicU64) -> Result<(), StoreError> {
        let i = &self.inner;
        let mut removed = 0u64;
        for s in seqs {
            if let Some(v) = i.tree.remove(s.to_be_bytes()).map_err(db_err)? {
                removed += 1;
                i.records.fetch_sub(1, Ordering::Relaxed);
                i.bytes.fetch_sub(v.len() as u64, Ordering::Relaxed);
            }
        }
        if removed > 0 {
            let n = c.fetch_add(removed, Ordering::Relaxed) + removed;
            i.meta
                .insert(format!("{}/{counter}", i.name).as_bytes(), &n.to_be_bytes())
                .map_err(db_err)?;
        }
        Ok(())
    }

    /// Entries waiting for delivery.
    pub fn len(&self) -> u64 {
        self.inner.records.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the entries waiting.
    pub fn bytes(&self) -> u64 {
        self.inner.bytes.load(Ordering::Relaxed)
    }

    /// Events refused because the outbox was full, plus events the receiver refused for good
    /// (lifetime, persisted).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Events acknowledged by the sink (lifetime, persisted).
    pub fn delivered(&self) -> u64 {
        self.inner.delivered.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: OutboxLimits = OutboxLimits {
        max_records: 3,
        max_bytes: 1 << 20,
    };

    /// Opens `dir` again, retrying for up to 5 s while the previous handle's lock lingers.
    fn reopen(dir: &std::path::Path) -> Store {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match Store::open(dir) {
                Ok(s) => return s,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("reopen {}: {e}", dir.display()),
            }
        }
    }

    #[test]
    fn order_caps_and_counters_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            let o = s.outbox("file-1", SMALL).unwrap();
            let seqs: Vec<u64> = (0..5).map(|_| s.next_event_seq().unwrap()).collect();
            let took: Vec<bool> = seqs
                .iter()
                .map(|q| o.push(*q, format!("r{q}").as_bytes()).unwrap())
                .collect();
            assert_eq!(took, [true, true, true, false, false]);
            assert_eq!((o.len(), o.dropped()), (3, 2));
            let got = o.peek(10).unwrap();
            assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), seqs[..3]);
            o.ack(&[seqs[0]]).unwrap();
            assert_eq!((o.len(), o.delivered()), (2, 1));
            s.flush().unwrap();
        }
        // sled's flusher thread may hold the lock file a moment after the last handle drops.
        let s = reopen(dir.path());
        let o = s.outbox("file-1", SMALL).unwrap();
        assert_eq!((o.len(), o.dropped(), o.delivered()), (2, 2, 1));
        assert_eq!(
            o.bytes(),
            o.peek(10)
                .unwrap()
                .iter()
                .map(|e| e.1.len() as u64)
                .sum::<u64>()
        );
        assert_eq!(s.outbox_names(), vec![("file-1".to_string(), 2)]);
        // Sequences keep rising across the reopen: new events sort after the backlog.
        let next = s.next_event_seq().unwrap();
        assert!(o.peek(10).unwrap().iter().all(|e| e.0 < next));
    }

    #[test]
    fn byte_cap_and_names() {
        let s = Store::open_temporary().unwrap();
        let o = s
            .outbox(
                "w",
                OutboxLimits {
                    max_records: 100,
                    max_bytes: 10,
                },
            )
            .unwrap();
        assert!(o.push(1, b"12345678").unwrap());
        assert!(!o.push(2, b"123").unwrap());
        assert!(o.push(3, b"12").unwrap());
        assert_eq!((o.len(), o.bytes(), o.dropped()), (2, 10, 1));
        o.reject(&[1]).unwrap();
        assert_eq!((o.len(), o.bytes(), o.dropped()), (1, 2, 2));
        for bad in ["", "A", "a/b", "../x", &"a".repeat(65)] {
            assert!(s.outbox(bad, SMALL).is_err(), "{bad:?}");
        }
    }
}
