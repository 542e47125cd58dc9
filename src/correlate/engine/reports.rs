//! The incident lifecycle: open (or continue from the store), hold lookup-only incidents for
//! the reorder window, report new / upgraded / updated, evict and park.

use super::*;

impl Engine {
    /// Makes sure an open incident exists for `key`: kept in memory, reloaded from history, or
    /// created. Returns whether it was created.
    pub(super) fn ensure_incident(
        &mut self,
        key: &IncidentKey,
        ts: Timestamp,
        hold_until: Timestamp,
        out: &mut Changes,
    ) -> bool {
        let gap = self.cfg.incident_gap_secs;
        // One probe for "kept and current" (every event of an open incident).
        match self.incidents.get(key) {
            Some(i) if ts > i.det.last_seen.plus_secs(gap) => {
                if let Some(old) = self.incidents.remove(key) {
                    self.write_back(old, out);
                }
            }
            Some(_) => return false,
            None => {}
        }
        // Evicted since the last flush: the store may not have it yet (see `incidents`).
        if let Some(inc) = self.incidents.unpark(key) {
            if ts <= inc.det.last_seen.plus_secs(gap) {
                self.stats.unparked = self.stats.unparked.saturating_add(1);
                self.admit(key.clone(), inc, out);
                return false;
            }
            self.write_back(inc, out);
        }
        let (reloaded, owned) = match self.history.as_ref() {
            Some(h) => (h.take_incident_boxed(key.0, &key.1), h.hands_over()),
            None => (None, false),
        };
        // A stale detection the store handed over must still go back (unchanged).
        let (reloaded, stale_back) = match reloaded {
            Some(d) if ts > d.last_seen.plus_secs(gap) => (None, owned.then_some(d)),
            other => (other, None),
        };
        if let Some(d) = stale_back {
            out.detections.push(DetectionEvent {
                kind: ChangeKind::Updated,
                detection: *d,
            });
        }
        let created = reloaded.is_none();
        let inc = match reloaded {
            Some(det) => Incident {
                max_base: risk::base(det.stage).max(if det.counts.lookups > 0 {
                    risk::RISK_LOOKUP
                } else {
                    0
                }),
                reported_stage: Some(det.stage),
                det,
                emitted: true,
                sustained: false,
                reported_gen: u64::MAX,
                // Handed over by the store: this is the only copy until it is written back.
                dirty: owned,
            },
            None => Incident {
                det: Box::new(new_detection(key.0, &key.1, ts)),
                emitted: false,
                reported_stage: None,
                max_base: 0,
                sustained: false,
                reported_gen: u64::MAX,
                dirty: false,
            },
        };
        if created {
            self.held.push_back((hold_until, key.clone()));
            // Held incidents are released by time; if time stalls (a flood within one
            // timestamp), report the oldest early rather than let the queue grow.
            while self.held.len() > self.cfg.limits.incidents.max(1) {
                let Some((_, k)) = self.held.pop_front() else {
                    break;
                };
                let pending = self.incidents.get(&k).filter(|i| !i.emitted);
                if let Some(first) = pending.map(|i| i.det.first_seen) {
                    if self.lookup_exempt(k.0, &k.1, first) {
                        self.incidents.remove(&k);
                    } else {
                        self.report_force(&k, out);
                    }
                }
            }
        }
        self.admit(key.clone(), inc, out);
        created
    }

    /// An incident leaving memory for good (a new one replaces it): its unwritten state, if
    /// any, goes out as an update.
    pub(super) fn write_back(&mut self, inc: Incident, out: &mut Changes) {
        if inc.dirty {
            out.detections.push(DetectionEvent {
                kind: ChangeKind::Updated,
                detection: *inc.det,
            });
        }
    }

    /// Puts an incident into the live table. The incident evicted to make room is reported if
    /// it never was, and parked if the store may not have its latest state yet, so its next
    /// event continues it instead of opening a second detection.
    pub(super) fn admit(&mut self, key: IncidentKey, inc: Incident, out: &mut Changes) {
        let Some((ek, mut ev)) = self.incidents.insert(key, inc) else {
            return;
        };
        self.stats.evicted += 1;
        // An evicted incident that was never reported is reported now, not lost.
        if !ev.emitted {
            // (Only lookup-only incidents wait unreported: a resolver's are dropped.)
            if self.lookup_exempt(ek.0, &ek.1, ev.det.first_seen) {
                return;
            }
            self.finish_new(&mut ev);
            ev.reported_gen = self.incidents.generation();
            if self.defer_announcements {
                out.deferred.push((ChangeKind::New, ev.det.stage));
                ev.dirty = true;
            } else {
                out.detections.push(DetectionEvent {
                    kind: ChangeKind::New,
                    detection: Detection::clone(&ev.det),
                });
            }
        }
        if self.incidents.park(ek, ev) {
            self.stats.parked_dropped = self.stats.parked_dropped.saturating_add(1);
        }
    }

    /// Emits the incident's current state if it is reportable.
    pub(super) fn report(&mut self, key: &IncidentKey, out: &mut Changes) {
        let gen = self.incidents.generation();
        let now = self.suppression_now;
        // One probe of the incident table per report (issue #11: a flood reports every event).
        let Some(inc) = self.incidents.get_mut(key) else {
            return;
        };
        if !inc.emitted {
            // Lookup-only incidents wait for the reorder window (see `reorder_window_secs`).
            // Contact is reported at once, whoever the host is: a resolver's own flows are
            // graded like any host's (resolver rule).
            if inc.det.stage.is_contact() {
                self.report_force(key, out);
            }
            return;
        }
        // As `refresh_suppression`, on the incident at hand.
        if let Some(rule) = self
            .suppressions
            .iter()
            .find(|s| s.covers(key.0, &key.1, now))
        {
            inc.det.suppressed = true;
            inc.det.suppression_id = Some(rule.id.clone());
        }
        let kind = if inc.reported_stage.is_some_and(|s| inc.det.stage > s) {
            ChangeKind::Upgraded
        } else {
            ChangeKind::Updated
        };
        inc.reported_stage = Some(inc.det.stage);
        inc.reported_gen = gen;
        let client = key.0;
        let last = inc.det.last_seen;
        if self.defer_updates && kind == ChangeKind::Updated {
            self.stats.deferred_updates = self.stats.deferred_updates.saturating_add(1);
            // Already dirty (every later event of a deferred incident): no second probe.
            if !inc.dirty {
                self.incidents.mark_dirty(key);
            }
        } else if self.defer_announcements {
            out.deferred.push((kind, inc.det.stage));
            if !inc.dirty {
                self.incidents.mark_dirty(key);
            }
        } else {
            // This copy carries the latest state: nothing is left unwritten.
            inc.dirty = false;
            out.detections.push(DetectionEvent {
                kind,
                detection: Detection::clone(&inc.det),
            });
        }
        self.note_host(client, last);
    }

    pub(super) fn refresh_suppression(&mut self, key: &IncidentKey) {
        let now = self.suppression_now;
        let rule = self
            .suppressions
            .iter()
            .find(|s| s.covers(key.0, &key.1, now))
            .map(|s| s.id.clone());
        // No rule covers it (the usual case): no probe of the incident table.
        let Some(id) = rule else {
            return;
        };
        if let Some(inc) = self.incidents.get_mut(key) {
            inc.det.suppressed = true;
            inc.det.suppression_id = Some(id);
        }
    }

    /// Completes a first report: score, `is_new`, host bookkeeping.
    pub(super) fn finish_new(&mut self, inc: &mut Incident) {
        let client = inc.det.client_ip;
        let prior = self.prior_detection(client);
        let (lookback, now) = (self.cfg.lookback_secs, self.suppression_now);
        complete_first_report(inc, prior, lookback, &self.suppressions, now);
        self.note_host(client, inc.det.last_seen);
    }

    /// When `client` was last detected before (memory, else the store): for `is_new`.
    fn prior_detection(&self, client: IpAddr) -> Option<Timestamp> {
        self.hosts
            .get(&client)
            .copied()
            .or_else(|| self.history.as_ref().and_then(|h| h.last_detection(client)))
    }

    pub(super) fn note_host(&mut self, client: IpAddr, last: Timestamp) {
        match self.hosts.get_mut_touch(&client) {
            Some(t) => *t = (*t).max(last),
            None => {
                self.hosts.insert_absent(client, last);
            }
        }
    }

    pub(super) fn release_held(&mut self, upto: Timestamp, out: &mut Changes) {
        while let Some((t, _)) = self.held.front() {
            if *t > upto {
                break;
            }
            let Some((_, key)) = self.held.pop_front() else {
                break;
            };
            let Some(first) = self
                .incidents
                .get(&key)
                .filter(|i| !i.emitted)
                .map(|i| i.det.first_seen)
            else {
                continue;
            };
            // A resolver's lookup (or a lookup forwarded for another client) is not reported.
            if self.lookup_exempt(key.0, &key.1, first) {
                self.incidents.remove(&key);
                self.stats.infra_dropped_incidents += 1;
                continue;
            }
            self.report_force(&key, out);
        }
    }

    /// The first report of an incident, in place: it becomes the most recent live incident
    /// (as taking it out and inserting it again did, without two probes and a queued key:
    /// issue #11, every flood client's incident is reported once this way).
    pub(super) fn report_force(&mut self, key: &IncidentKey, out: &mut Changes) {
        self.refresh_suppression(key);
        let prior = self.prior_detection(key.0);
        let gen = self.incidents.generation();
        let (lookback, now) = (self.cfg.lookback_secs, self.suppression_now);
        let Some(inc) = self.incidents.touch_for_report(key) else {
            return;
        };
        complete_first_report(inc, prior, lookback, &self.suppressions, now);
        inc.reported_gen = gen;
        let last = inc.det.last_seen;
        let event = if self.defer_announcements {
            out.deferred.push((ChangeKind::New, inc.det.stage));
            inc.dirty = true;
            None
        } else {
            inc.dirty = false;
            Some(DetectionEvent {
                kind: ChangeKind::New,
                detection: Detection::clone(&inc.det),
            })
        };
        self.note_host(key.0, last);
        out.detections.extend(event);
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The incident's side of [`Engine::finish_new`], given the client's `prior` detection: score
/// `is_new`, mark it reported, apply a suppression rule.
fn complete_first_report(
    inc: &mut Incident,
    prior: Option<Timestamp>,
    lookback_secs: i64,
    suppressions: &[Suppression],
    now: Timestamp,
) {
    let client = inc.det.client_ip;
    let horizon = inc.det.first_seen.plus_secs(-lookback_secs);
    inc.det.is_new = prior.is_none_or(|p| p < horizon);
    inc.emitted = true;
    inc.reported_stage = Some(inc.det.stage);
    if let Some(s) = suppressions
        .iter()
        .find(|s| s.covers(client, &inc.det.pool_domain, now))
    {
        inc.det.suppressed = true;
        inc.det.suppression_id = Some(s.id.clone());
    }
}

/// Raises the stage (never lowers it) and re-scores. Returns whether anything changed.
pub(super) fn raise(inc: &mut Incident, stage: Stage, ts: Timestamp) -> bool {
    let mut changed = false;
    if stage > inc.det.stage || inc.max_base == 0 {
        if stage > inc.det.stage {
            inc.det.stage = stage;
            inc.det.stage_changed = Some(ts);
        }
        changed = true;
    }
    inc.max_base = inc.max_base.max(risk::base(stage));
    let score = risk::score(
        inc.max_base,
        &inc.det.counts,
        !inc.det.agents.is_empty(),
        inc.sustained,
    );
    if score != inc.det.risk_score {
        inc.det.risk_score = score;
        changed = true;
    }
    changed
}

pub(super) fn touch_time(det: &mut Detection, ts: Timestamp) {
    if ts < det.first_seen {
        det.first_seen = ts;
    }
    if ts > det.last_seen {
        det.last_seen = ts;
    }
}

pub(super) fn new_detection(client: IpAddr, entry: &str, ts: Timestamp) -> Detection {
    Detection::new(detection_id(client, entry, ts), client, entry, ts)
}

/// `<first_seen µs, 16 hex><hash of client+entry, 8 hex>`: unique per incident, sorts by time.
pub fn detection_id(client: IpAddr, entry: &str, first_seen: Timestamp) -> String {
    let mut h = FxHasher::default();
    client.hash(&mut h);
    entry.hash(&mut h);
    first_seen.0.hash(&mut h);
    // `format!("{:016x}{:08x}", ..)` by hand: one per new incident, ≈ 1 600 instructions
    // through `core::fmt` (issue #11; `tests::detection_ids_are_the_formatted_text`).
    let mut id = String::with_capacity(24);
    push_hex(&mut id, first_seen.0 as u64, 16);
    push_hex(&mut id, u64::from(h.finish() as u32), 8);
    id
}

/// The low `digits` hex digits of `v`, lowercase, zero-padded.
fn push_hex(s: &mut String, v: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for k in (0..digits).rev() {
        let d = (v >> (4 * k)) & 0xf;
        s.push(char::from(HEX.get(d as usize).copied().unwrap_or(b'0')));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written id is the formatted one, for any time and hash.
    #[test]
    fn detection_ids_are_the_formatted_text() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let entries = ["pool.supportxmr.com", "", "stratum:203.0.113.7"];
        for i in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ts = Timestamp(match i % 4 {
                0 => x as i64,
                1 => -(x as i64 >> (i % 63)),
                2 => i64::from(i),
                _ => (x >> (i % 64)) as i64,
            });
            let client = IpAddr::from((x as u32).to_be_bytes());
            let entry = entries[i as usize % entries.len()];
            let mut h = FxHasher::default();
            client.hash(&mut h);
            entry.hash(&mut h);
            ts.0.hash(&mut h);
            let want = format!("{:016x}{:08x}", ts.0 as u64, h.finish() as u32);
            assert_eq!(detection_id(client, entry, ts), want);
        }
    }
}
