//! Retention (`prune`) and table statistics.

use super::*;

impl Store {
    // -----------------------------------------------------------------------------------------
    // Maintenance
    // -----------------------------------------------------------------------------------------

    /// Deletes data older than the retention policy, relative to `now`.
    pub fn prune(&self, now: Timestamp, r: &Retention) -> Result<PruneStats, StoreError> {
        let i = &self.inner;
        let _bump = BumpOnDrop(&i.detections_gen);
        let mut st = PruneStats::default();
        let cutoff = now.plus_secs(-r.detections_secs.max(0));
        // Index order is first_seen order; last_seen ≥ first_seen, so nothing past the cutoff
        // in first_seen can be prunable.
        let mut doomed = Vec::new();
        for entry in i.by_time.range(..keys::by_time(cutoff, 0)) {
            let (_, id) = entry.map_err(db_err)?;
            if let Some(d) = self.load(&id)? {
                if d.last_seen < cutoff {
                    doomed.push(id.to_vec());
                }
            }
        }
        for id in doomed {
            let Some(v) = i.detections.remove(&id).map_err(db_err)? else {
                continue;
            };
            if let Some((seq, created, d)) = migrate::decode_detection(&v) {
                i.by_time
                    .remove(keys::by_time(created, seq))
                    .map_err(db_err)?;
                if let Some(t) = &i.by_client {
                    t.remove(keys::by_client(d.client_ip, created, seq))
                        .map_err(db_err)?;
                }
                let fk: Vec<Vec<u8>> = i
                    .flows
                    .scan_prefix(keys::flow_prefix(&d.id))
                    .keys()
                    .filter_map(Result::ok)
                    .map(|k| k.to_vec())
                    .collect();
                for k in fk {
                    i.flows.remove(k).map_err(db_err)?;
                    st.pool_flows += 1;
                }
            }
            st.detections += 1;
        }
        let mut dead = Vec::new();
        for entry in i.bindings.iter() {
            let (k, v) = entry.map_err(db_err)?;
            let expired = serde_json::from_slice::<Binding>(&v)
                .map(|b| b.expires < cutoff)
                .unwrap_or(true);
            if expired {
                dead.push(k.to_vec());
            }
        }
        for k in dead {
            i.bindings.remove(k).map_err(db_err)?;
            st.bindings += 1;
        }
        if let Some(h) = &i.hosts {
            let hcut = now.plus_secs(-r.hosts_secs.max(0));
            let mut dead = Vec::new();
            for entry in h.iter() {
                let (k, v) = entry.map_err(db_err)?;
                let old = serde_json::from_slice::<HostRecord>(&v)
                    .map(|r| r.last_seen < hcut)
                    .unwrap_or(true);
                if old {
                    dead.push(k.to_vec());
                }
            }
            for k in dead {
                h.remove(k).map_err(db_err)?;
                st.hosts += 1;
            }
        }
        for s in self.list_suppressions()? {
            if s.expires.is_some_and(|e| e < cutoff) {
                i.suppressions.remove(s.id.as_bytes()).map_err(db_err)?;
                st.suppressions += 1;
            }
        }
        if st.suppressions > 0 {
            i.suppression_gen.fetch_add(1, Ordering::Relaxed);
        }
        self.flush()?;
        Ok(st)
    }

    /// Entry counts (walks the trees: call from a periodic task, not per request).
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let i = &self.inner;
        Ok(StoreStats {
            detections: i.detections.len(),
            bindings: i.bindings.len(),
            pool_flows: i.flows.len(),
            hosts: i.hosts.as_ref().map_or(0, |h| h.len()),
            suppressions: i.suppressions.len(),
            offsets: i.offsets.len(),
            size_on_disk: i.db.size_on_disk().map_err(db_err)?,
        })
    }
}
