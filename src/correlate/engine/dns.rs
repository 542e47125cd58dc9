//! The engine's DNS side: a pool lookup binds its answers to the client and opens or
//! continues the (client, pool entry) incident; duplicates across sources are counted once.

use super::*;

impl Engine {
    /// `d` is owned when the caller gives the observation up ([`Engine::observe_owned`]): its
    /// name then moves into the evidence instead of being copied.
    pub(super) fn on_dns(&mut self, mut d: Cow<'_, DnsObservation>, out: &mut Changes) {
        let pos = self.obs_pos.take();
        // A server answering queries of several distinct clients is a resolver (its pool
        // lookups carry its clients' names); one answer proves nothing.
        self.infra.observe_answer(&d);
        // Held (not copied from) for the whole observation: the hit is borrowed from it, so a
        // flood of pool lookups clones no list entry per event (issue #11).
        let lists = self.lists.load_full();
        let mut via_cname = false;
        // The fast path matched this name just before (`skip.rs`): its hit, not a second match.
        let mut hit = match self.listed_memo.hit(&lists, &d.qname) {
            Some(h) => Some(h),
            None => lists.match_name(&d.qname),
        };
        if hit.is_none() {
            hit = d.cname_targets().take(32).find_map(|t| lists.match_name(t));
            via_cname = hit.is_some();
        }
        let Some(hit) = hit else {
            self.shadow_bindings(&d);
            self.remember_answer_names(&d);
            return;
        };
        // The server was asked for this pool entry on the client's behalf: its own upstream
        // lookup of the entry is exempt (the forwarding exemption, `infra`).
        self.infra.note_question(&d, &hit.entry);
        if self.is_infrastructure(d.client) {
            self.stats.infra_ignored += 1;
        }
        if via_cname {
            self.stats.cname_matches += 1;
        } else {
            self.stats.name_matches += 1;
        }

        // Each A/AAAA answer's address, parsed once (issue #11: the blocked test, the bindings
        // and the summary each parsed every answer's text, three times a flood lookup), with
        // its answer's index; in buffers the engine keeps (no allocation per lookup).
        let mut parsed = std::mem::take(&mut self.scratch.parsed);
        parsed.clear();
        parsed.extend(
            d.answers
                .iter()
                .enumerate()
                .filter_map(|(i, a)| a.ip().map(|ip| (i, ip))),
        );
        let blocked = self.is_blocked_with(&d, parsed.iter().map(|&(_, ip)| ip));
        let duplicate = self.dedupe(&d);
        let entry = self.names.get(&hit.entry);
        let stage = if blocked {
            Stage::BlockedLookup
        } else {
            Stage::Lookup
        };

        // Bindings first, so the incident's pool_ips include the answers.
        let mut answer_ips = std::mem::take(&mut self.scratch.ips);
        answer_ips.clear();
        if !blocked {
            let ttl_ts = d.response_ts().unwrap_or(d.ts);
            let qname: Arc<str> = Arc::from(d.qname.as_str());
            let list = self.names.get(&hit.list);
            for &(i, ip) in &parsed {
                let Some(a) = d.answers.get(i) else { continue };
                answer_ips.push(ip);
                let ttl = a.ttl.unwrap_or(DEFAULT_TTL).min(MAX_TTL);
                let expires = ttl_ts
                    .plus_secs(i64::from(ttl))
                    .plus_secs(self.cfg.binding_grace_secs);
                // Only the pool's own addresses may convict *other* clients (direct_ip). An
                // address whose A/AAAA owner is an unlisted name (a pool fronted by a CDN
                // through a CNAME) is shared with unrelated sites: it stays bound for this
                // client only, or every visitor of the CDN would be reported.
                let own_address =
                    (a.name == d.qname && !via_cname) || lists.match_name(&a.name).is_some();
                let b = self.upsert_binding(
                    d.client,
                    ip,
                    &entry,
                    &qname,
                    &list,
                    (hit.category, hit.line),
                    d.ts,
                    ttl,
                    expires,
                    !own_address,
                );
                out.bindings.extend(b);
                if !own_address {
                    self.stats.shared_answer_ips = self.stats.shared_answer_ips.saturating_add(1);
                    continue;
                }
                // (later, same hit): updated in place, as an insert would (and most recent),
                // without cloning the hit's strings (issue #11: every flood lookup renews one
                // of a few pool addresses).
                let known = self
                    .ip_index
                    .get(&ip)
                    .map(|o| (o.expires < expires, o.hit == *hit));
                match known {
                    Some((false, _)) => {}
                    Some((true, true)) => {
                        if let Some(o) = self.ip_index.get_mut_touch(&ip) {
                            o.client = d.client;
                            o.first_seen = d.ts;
                            o.expires = expires;
                        }
                    }
                    Some((true, false)) | None => {
                        self.ip_index.insert(
                            ip,
                            IpBinding {
                                client: d.client,
                                hit: ListHit::clone(hit),
                                first_seen: d.ts,
                                expires,
                            },
                        );
                    }
                }
            }
        }

        let key: IncidentKey = (d.client, entry);
        let ts = d.ts;
        let hold = ts.plus_secs(self.cfg.reorder_window_secs);
        let mut changed = self.ensure_incident(&key, ts, hold, out);
        let Some(inc) = self.incidents.get_mut_touch(&key) else {
            self.scratch = Scratch::kept(parsed, answer_ips);
            return;
        };
        let det = &mut inc.det;
        push_unique_ref(&mut det.query_names, &d.qname, MAX_QUERY_NAMES);
        push_unique_ref(&mut det.sources, &d.source, MAX_SOURCES);
        push_hit(&mut det.lists, hit);
        for ip in &answer_ips {
            push_unique(&mut det.pool_ips, *ip, MAX_POOL_IPS);
        }
        // Read again after a restart and counted already: nothing more to count (`replay`).
        let replayed =
            super::super::replay::already_counted(&mut det.source_marks, pos, &mut self.stats);
        if replayed {
            // Names, sources and times above are sets and maxima: applying them again is
            // harmless; the stage below is too.
        } else if !duplicate {
            if blocked {
                det.counts.blocked_lookups = det.counts.blocked_lookups.saturating_add(1);
            } else {
                det.counts.lookups = det.counts.lookups.saturating_add(1);
            }
            let kind = if blocked {
                EvidenceKind::DnsBlocked
            } else {
                EvidenceKind::DnsLookup
            };
            let summary = dns_summary(&d, parsed.iter().map(|&(_, ip)| ip), hit, via_cname);
            let mut ev = Evidence::new(ts, kind, d.source.clone(), summary);
            ev.rcode = d.rcode;
            // The name is not read again below: an owned observation gives it up.
            ev.qname = Some(match &mut d {
                Cow::Owned(o) => std::mem::take(&mut o.qname),
                Cow::Borrowed(b) => b.qname.clone(),
            });
            ev.answers = answer_ips.iter().copied().take(MAX_POOL_IPS).collect();
            add_evidence(&mut det.evidence, ev);
            changed = true;
        } else if !answer_ips.is_empty() {
            // The duplicate may carry the answers the first source lacked (query-only log).
            if let Some(ev) = det
                .evidence
                .iter_mut()
                .find(|e| e.qname.as_deref() == Some(d.qname.as_str()) && e.answers.is_empty())
            {
                ev.answers = answer_ips.iter().copied().take(MAX_POOL_IPS).collect();
            }
            changed = true;
        }
        changed |= raise(inc, stage, ts);
        touch_time(&mut inc.det, ts);
        if changed {
            self.report(&key, out);
        }
        // A flow that arrived before its (skewed) DNS gets a second chance.
        if !answer_ips.is_empty() {
            self.recheck_recent(d.client, &answer_ips, d.ts, out);
        }
        self.scratch = Scratch::kept(parsed, answer_ips);
    }

    /// Whether the lookup was blocked: NXDOMAIN, or an answer (`ips`: `d`'s A/AAAA answer
    /// addresses) pointing at 0.0.0.0/:: or a sinkhole.
    pub(super) fn is_blocked_with(
        &self,
        d: &DnsObservation,
        mut ips: impl Iterator<Item = IpAddr>,
    ) -> bool {
        if d.rcode == Some(Rcode::NXDOMAIN) {
            return true;
        }
        if !d.answers_known {
            return false;
        }
        ips.any(|ip| ip.is_unspecified() || self.sinkholes.contains(&ip))
    }

    /// True when the same query (client, name, type) was already counted within the window;
    /// adds this observation's source to it either way.
    pub(super) fn dedupe(&mut self, d: &DnsObservation) -> bool {
        let mut h = FxHasher::default();
        d.qname.hash(&mut h);
        let key = (d.client, h.finish(), d.qtype.0);
        let window = self.cfg.dedupe_window_secs.saturating_mul(1_000_000);
        if let Some(st) = self.dedupe.get_mut_touch(&key) {
            let near = d.ts.0.saturating_sub(st.ts.0).abs() <= window;
            let other_source = !st.saw(&d.source);
            if near && other_source {
                if st.more.len() + 1 < MAX_SOURCES {
                    st.more.push(d.source.clone());
                }
                self.stats.duplicates += 1;
                return true;
            }
            st.ts = d.ts;
            st.first = d.source.clone();
            st.more.clear();
            return false;
        }
        // Just missed above: no second probe (a flood's every lookup is a new key).
        self.dedupe.insert_absent(
            key,
            DedupeState {
                ts: d.ts,
                first: d.source.clone(),
                more: Vec::new(),
            },
        );
        false
    }
}
