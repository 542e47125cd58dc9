//! Writes of the pipeline: detections (with their indexes and host records), bindings and pool
//! flows; and the engine's [`History`] view of them.

use super::*;

impl Store {
    // -----------------------------------------------------------------------------------------
    // Writes (pipeline)
    // -----------------------------------------------------------------------------------------

    /// Inserts or replaces a detection (keyed by id) and maintains its indexes and the host
    /// record. Returns true when the detection was new to the store. Not durable until
    /// [`Store::flush`].
    pub fn upsert_detection(&self, det: &Detection) -> Result<bool, StoreError> {
        let i = &self.inner;
        let _bump = BumpOnDrop(&i.detections_gen);
        let json = serde_json::to_vec(det).map_err(StoreError::Encode)?;
        let existing = i.detections.get(det.id.as_bytes()).map_err(db_err)?;
        let (seq, created, is_new) = match existing
            .as_deref()
            .and_then(|v| Some((keys::seq_from(v)?, keys::ts_from(v.get(keys::SEQ_LEN..)?)?)))
        {
            Some((seq, created)) => (seq, created, false),
            None => (i.db.generate_id().map_err(db_err)?, det.first_seen, true),
        };
        let mut v = Vec::with_capacity(keys::DET_HEADER_LEN + json.len());
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&keys::ts(created));
        v.extend_from_slice(&json);
        i.detections.insert(det.id.as_bytes(), v).map_err(db_err)?;
        if is_new {
            i.by_time
                .insert(keys::by_time(created, seq), det.id.as_bytes())
                .map_err(db_err)?;
            if let Some(t) = &i.by_client {
                t.insert(
                    keys::by_client(det.client_ip, created, seq),
                    det.id.as_bytes(),
                )
                .map_err(db_err)?;
            }
        }
        if let Some(hosts) = &i.hosts {
            let k = keys::ip(det.client_ip);
            let mut rec = hosts
                .get(k)
                .map_err(db_err)?
                .and_then(|v| serde_json::from_slice::<HostRecord>(&v).ok())
                .unwrap_or(HostRecord {
                    first_seen: det.first_seen,
                    last_seen: det.last_seen,
                    detections: 0,
                });
            rec.first_seen = rec.first_seen.min(det.first_seen);
            rec.last_seen = rec.last_seen.max(det.last_seen);
            if is_new {
                rec.detections = rec.detections.saturating_add(1);
            }
            if let Ok(v) = serde_json::to_vec(&rec) {
                hosts.insert(k, v).map_err(db_err)?;
            }
        }
        Ok(is_new)
    }

    /// A counter that changes after every write that can change what a detection page holds
    /// (an upsert, a pruned detection) through this handle or its clones. The API caches
    /// encoded pages under it (`api::page_cache`): a page read when the counter showed `g` is
    /// what the store held at some moment after `g` was reached. sled admits one process per
    /// database, so no other writer can bypass it.
    pub fn detections_generation(&self) -> u64 {
        self.inner.detections_gen.load(Ordering::Acquire)
    }

    /// Records (or refreshes) a binding.
    pub fn put_binding(&self, b: &Binding) -> Result<(), StoreError> {
        let v = serde_json::to_vec(b).map_err(StoreError::Encode)?;
        self.inner
            .bindings
            .insert(keys::binding(b.client, b.ip), v)
            .map_err(db_err)?;
        Ok(())
    }

    /// Stored bindings (at most `limit`), oldest `last_seen` first, for preloading the engine.
    pub fn bindings(&self, limit: usize) -> Result<Vec<Binding>, StoreError> {
        let mut out = Vec::new();
        for entry in self.inner.bindings.iter().take(limit) {
            let (_, v) = entry.map_err(db_err)?;
            if let Ok(b) = serde_json::from_slice::<Binding>(&v) {
                out.push(b);
            }
        }
        out.sort_by_key(|b| b.last_seen);
        Ok(out)
    }

    /// Records a pool flow (a later report of the same flow replaces the earlier one).
    pub fn put_flow(&self, f: &PoolFlow) -> Result<(), StoreError> {
        let v = serde_json::to_vec(f).map_err(StoreError::Encode)?;
        let k = keys::pool_flow(
            &f.detection_id,
            f.start,
            f.src_port,
            f.dst,
            f.dst_port,
            f.proto,
        );
        self.inner.flows.insert(k, v).map_err(db_err)?;
        Ok(())
    }
}

impl History for Store {
    fn last_detection(&self, client: IpAddr) -> Option<Timestamp> {
        match self.host_record(client) {
            Ok(r) => r.map(|r| r.last_seen),
            Err(e) => {
                tracing::warn!(error = %e, "store lookup for is_new failed");
                None
            }
        }
    }

    fn open_incident(&self, client: IpAddr, pool_domain: &str) -> Option<Detection> {
        let t = self.inner.by_client.as_ref()?;
        for entry in t
            .scan_prefix(keys::ip(client))
            .rev()
            .take(MAX_INCIDENT_SCAN)
        {
            let Ok((_, id)) = entry else { return None };
            if let Ok(Some(d)) = self.load(&id) {
                if d.pool_domain == pool_domain {
                    return Some(d);
                }
            }
        }
        None
    }
}
