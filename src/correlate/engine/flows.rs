//! The engine's flow side: a flow attributed to a pool updates its incident (counts, evidence,
//! stage); flows waiting for their own name, and flows seen before their (skewed) lookup, get
//! a second chance.

use super::*;

impl Engine {
    pub(super) fn on_flow(&mut self, f: &FlowObservation, out: &mut Changes) {
        let pos = self.obs_pos.take();
        let fkey: FlowKey = (f.src, f.src_port, f.dst, f.dst_port, f.proto, f.ts);
        // A later report of a flow that was waiting for its name replaces the wait.
        if !self.unnamed.is_empty() {
            self.unnamed.remove(&fkey);
        }
        match self.attribute(f, true) {
            Grade::Pool(att) => self.apply_flow(f, att, pos, out),
            Grade::Wait => {
                let deadline = f.last_ts.plus_secs(self.cfg.reorder_window_secs);
                let waiting = FlowObservation {
                    payload_out: Vec::new(),
                    payload_in: Vec::new(),
                    app: f.app.clone(),
                    source: f.source.clone(),
                    ..*f
                };
                if self.unnamed.insert(fkey, (deadline, waiting)).is_some() {
                    self.stats.unnamed_evicted = self.stats.unnamed_evicted.saturating_add(1);
                }
                self.unnamed_order.push_back((deadline, fkey));
                // The queue holds at most one live item per map entry plus stale ones.
                if self.unnamed_order.len() > self.unnamed.cap().saturating_mul(2) {
                    let live = &self.unnamed;
                    self.unnamed_order
                        .retain(|(d, k)| live.get(k).is_some_and(|(dl, _)| dl == d));
                }
            }
            Grade::None => self.remember_recent(f),
        }
    }

    /// Grades the flows that waited for their own name and got no later report within the
    /// reorder window (an unrecognised protocol, or a client that never spoke): as they are.
    pub(super) fn release_unnamed(&mut self, upto: Timestamp, out: &mut Changes) {
        while let Some((deadline, key)) = self.unnamed_order.front().copied() {
            if deadline > upto {
                break;
            }
            self.unnamed_order.pop_front();
            let live = self.unnamed.get(&key).is_some_and(|(d, _)| *d == deadline);
            if !live {
                continue;
            }
            let Some((_, f)) = self.unnamed.remove(&key) else {
                continue;
            };
            if let Grade::Pool(att) = self.attribute(&f, false) {
                // Graded later than read: its position is not known here (`replay`).
                self.apply_flow(&f, att, None, out);
            }
        }
    }

    /// `pos`: where `f` was read, when it can be read again (`replay`).
    pub(super) fn apply_flow(
        &mut self,
        f: &FlowObservation,
        mut att: Attribution,
        pos: Option<SourcePos>,
        out: &mut Changes,
    ) {
        // The shared entry name (the binding's, or `names`'): no table probe per flow.
        let entry = Arc::clone(&att.hit.entry);
        let key: IncidentKey = (f.src, entry);
        let ts = f.ts;

        // Interim reports of the same flow supersede each other.
        let fkey: FlowKey = (f.src, f.src_port, f.dst, f.dst_port, f.proto, f.ts);
        let established = matches!(f.state, FlowState::Established | FlowState::Closed);
        let stratum_method = f.app.stratum_method.clone();
        let stratum = stratum_method.is_some();
        let seen = |prev: Option<FlowSeen>| FlowSeen {
            bytes_out: f.bytes_out,
            bytes_in: f.bytes_in,
            established: established || prev.is_some_and(|p| p.established),
            stratum: stratum || prev.is_some_and(|p| p.stratum),
        };
        // One probe for a report of a known flow, one plus the insert for a new one (issue
        // #11: a get, a get_mut and an insert's two probes per flood SYN before).
        let prev = match self.flows.get_mut(&fkey) {
            Some(s) => {
                let prev = *s;
                *s = seen(Some(prev));
                Some(prev)
            }
            None => {
                self.flows.insert_absent(fkey, seen(None));
                None
            }
        };

        self.ensure_incident(&key, ts, ts, out);
        let Some(inc) = self.incidents.get_mut_touch(&key) else {
            return;
        };
        // The pool flow row (only when rows are recorded, see `Engine::set_record_rows`).
        let det_id = self.record_rows.then(|| inc.det.id.clone());
        let det = &mut inc.det;
        // A report read again after a restart is in the counts already (`replay`); the flow
        // table above still learns it, so a later report of the flow supersedes it correctly.
        let replayed =
            super::super::replay::already_counted(&mut det.source_marks, pos, &mut self.stats);
        if !replayed {
            match prev {
                None => {
                    det.counts.flows = det.counts.flows.saturating_add(1);
                }
                Some(p) => {
                    det.counts.bytes_out = det.counts.bytes_out.saturating_sub(p.bytes_out);
                    det.counts.bytes_in = det.counts.bytes_in.saturating_sub(p.bytes_in);
                }
            }
            det.counts.bytes_out = det.counts.bytes_out.saturating_add(f.bytes_out);
            det.counts.bytes_in = det.counts.bytes_in.saturating_add(f.bytes_in);
            if established && !prev.is_some_and(|p| p.established) {
                det.counts.established_flows = det.counts.established_flows.saturating_add(1);
            }
            if stratum && !prev.is_some_and(|p| p.stratum) {
                det.counts.stratum_flows = det.counts.stratum_flows.saturating_add(1);
            }
        }

        push_unique(&mut det.pool_ips, f.dst, MAX_POOL_IPS);
        push_unique(&mut det.dst_ports, f.dst_port, MAX_PORTS);
        push_unique_ref(&mut det.sources, &f.source, MAX_SOURCES);
        push_shared_hit(&mut det.lists, &att.hit);
        if let Some(q) = &att.qname {
            if att.how.is_flow_name() {
                push_unique_ref(&mut det.query_names, q, MAX_QUERY_NAMES);
            }
        }
        let agent = f
            .app
            .stratum_agent
            .as_deref()
            .map(|a| truncate(a, MAX_AGENT_LEN));
        if let Some(a) = &agent {
            push_unique_ref(&mut det.agents, a, MAX_AGENTS);
        }
        if f.duration_us() >= risk::SUSTAINED_DURATION_US && established {
            inc.sustained = true;
        }

        let kind = if stratum {
            EvidenceKind::Stratum
        } else if att.how == How::TlsSni {
            EvidenceKind::TlsSni
        } else {
            EvidenceKind::Flow
        };
        let duration_ms = u64::try_from(f.duration_us() / 1000).unwrap_or(0);
        let mut ev = Evidence::new(
            f.ts,
            kind,
            f.source.clone(),
            flow_summary(f, &att, stratum_method.as_deref()),
        );
        // Moved: the name was added to the detection above and is not read again.
        ev.qname = att.qname.take();
        ev.dst = Some(f.dst);
        ev.dst_port = Some(f.dst_port);
        ev.src_port = Some(f.src_port);
        ev.state = Some(f.state);
        ev.bytes_out = Some(f.bytes_out);
        ev.bytes_in = Some(f.bytes_in);
        ev.duration_ms = Some(duration_ms);
        ev.agent = agent.clone();
        ev.method = stratum_method.clone();
        if !replayed {
            supersede_or_add(&mut inc.det.evidence, ev);
        }
        raise(inc, att.stage, ts);
        touch_time(&mut inc.det, f.last_ts.max(ts));

        let Some(detection_id) = det_id else {
            self.report(&key, out);
            return;
        };
        out.flows.push(PoolFlow {
            detection_id,
            client: f.src,
            src_port: f.src_port,
            dst: f.dst,
            dst_port: f.dst_port,
            proto: f.proto,
            start: f.ts,
            last: f.last_ts,
            state: f.state,
            report: f.report,
            bytes_out: f.bytes_out,
            bytes_in: f.bytes_in,
            packets_out: f.packets_out,
            packets_in: f.packets_in,
            duration_ms,
            stage: att.stage,
            sni: f.app.sni.clone(),
            stratum_method,
            agent,
            source: f.source.clone(),
            attribution: Some(att.how),
        });
        self.report(&key, out);
    }

    pub(super) fn remember_recent(&mut self, f: &FlowObservation) {
        self.expire_recent_flows();
        if self.recent_flows.len() >= self.cfg.limits.recent_flows.max(1) {
            self.recent_flows.pop_front();
        }
        // Payload is only needed for the Stratum sniff, which already failed.
        self.recent_flows.push_back(FlowObservation {
            payload_out: Vec::new(),
            payload_in: Vec::new(),
            app: f.app.clone(),
            source: f.source.clone(),
            ..*f
        });
    }

    pub(super) fn expire_recent_flows(&mut self) {
        let horizon = self.watermark.plus_secs(-self.cfg.reorder_window_secs);
        while self
            .recent_flows
            .front()
            .is_some_and(|f| f.last_ts < horizon)
        {
            self.recent_flows.pop_front();
        }
    }

    pub(super) fn recheck_recent(
        &mut self,
        client: IpAddr,
        ips: &[IpAddr],
        _ts: Timestamp,
        out: &mut Changes,
    ) {
        if self.recent_flows.is_empty() {
            return;
        }
        let mut hits = Vec::new();
        self.recent_flows.retain(|f| {
            let m = f.src == client && ips.contains(&f.dst);
            if m {
                hits.push(f.clone());
            }
            !m
        });
        for f in hits {
            let mut sub = Changes::default();
            self.on_flow(&f, &mut sub);
            out.append(sub);
        }
    }
}
