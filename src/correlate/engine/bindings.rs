//! Bindings: which (client, address) pairs a pool lookup answered, the per-address index that
//! convicts other clients (`direct_ip`), and the non-pool answers that shadow or outrank them
//! (shared-address rule).

use super::*;

impl Engine {
    /// Restores a binding recorded by an earlier run (the pipeline preloads the store's bindings
    /// on start, so a restart does not forget which addresses a client resolved).
    pub fn preload_binding(&mut self, b: &Binding) {
        let entry: Arc<str> = Arc::from(b.pool_domain.as_str());
        let qname: Arc<str> = Arc::from(b.qname.as_str());
        let list: Arc<str> = Arc::from(b.list.as_str());
        self.upsert_binding(
            b.client,
            b.ip,
            &entry,
            &qname,
            &list,
            (Category::Pool, 0),
            b.first_seen,
            b.ttl,
            b.expires,
            b.shared,
        );
        // A shared (CDN) address stays bound for its client only, as when it was first seen.
        if !b.shared
            && self
                .ip_index
                .get(&b.ip)
                .is_none_or(|o| o.expires < b.expires)
        {
            self.ip_index.insert(
                b.ip,
                IpBinding {
                    client: b.client,
                    hit: ListHit {
                        list: b.list.clone(),
                        entry: b.pool_domain.clone(),
                        category: Category::Pool,
                        line: 0,
                    },
                    first_seen: b.first_seen,
                    expires: b.expires,
                },
            );
        }
    }

    /// A non-pool answer to a client that holds pool bindings for some of its addresses marks
    /// those bindings shadowed (see `BindingState::shadowed`). Costs one hash probe per answer
    /// address, and nothing while no binding exists.
    pub(super) fn shadow_bindings(&mut self, d: &DnsObservation) {
        // Most clients never looked up a pool: one probe instead of parsing every answer.
        if d.answers.is_empty() || !self.bound_clients.contains_key(&d.client) {
            return;
        }
        for a in &d.answers {
            let Some(ip) = a.ip() else { continue };
            if let Some(b) = self.bindings.get_mut(&(d.client, ip)) {
                // The earliest shadowing answer counts: flows are reported when they end
                // (UDP at idle timeout), after later lookups of the same address.
                if d.ts >= b.last_seen && b.shadowed.is_none_or(|t| d.ts < t) {
                    b.shadowed = Some(d.ts);
                    self.stats.shadowed_bindings = self.stats.shadowed_bindings.saturating_add(1);
                }
            }
        }
    }

    /// Remembers, per (client, address), a non-pool answer naming a *pool* address: one
    /// bound by some client's pool lookup or listed (the shared-address rule: the client's own
    /// name for the address outranks another client's binding). Answers naming other
    /// addresses (nearly all) cost one probe of the per-IP index and of the address lists, not
    /// a table entry; an answer seen before its address became a pool address is not kept
    /// (the flow's SNI/Host still speaks for it). Measured: docs/arch/correlate.md.
    pub(super) fn remember_answer_names(&mut self, d: &DnsObservation) {
        if d.answers.is_empty() || d.rcode != Some(Rcode::NOERROR) {
            return;
        }
        let ttl_ts = d.response_ts().unwrap_or(d.ts);
        let lists = self.lists.load();
        for a in d.answers.iter().take(MAX_NAMED_ANSWERS) {
            let Some(ip) = a.ip() else { continue };
            if ip.is_unspecified() || self.sinkholes.contains(&ip) {
                continue;
            }
            if !self.ip_index.contains_key(&ip) && lists.match_ip(ip, None).is_none() {
                continue;
            }
            let ttl = a.ttl.unwrap_or(DEFAULT_TTL).min(MAX_TTL);
            let expires = ttl_ts
                .plus_secs(i64::from(ttl))
                .plus_secs(self.cfg.binding_grace_secs);
            self.answer_names.record(d.client, ip, d.ts, expires);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn upsert_binding(
        &mut self,
        client: IpAddr,
        ip: IpAddr,
        entry: &Arc<str>,
        qname: &Arc<str>,
        list: &Arc<str>,
        hit: (Category, u32),
        ts: Timestamp,
        ttl: u32,
        expires: Timestamp,
        shared: bool,
    ) -> Option<Binding> {
        let key = (client, ip);
        if !self.bound_clients.contains_key(&client) {
            self.bound_clients.insert_absent(client, ());
        }
        let st = match self.bindings.get_mut_touch(&key) {
            Some(b) => {
                b.last_seen = b.last_seen.max(ts);
                b.first_seen = b.first_seen.min(ts);
                b.expires = b.expires.max(expires);
                b.ttl = ttl;
                b.entry = entry.clone();
                b.qname = qname.clone();
                b.list = list.clone();
                b.category = hit.0;
                b.line = hit.1;
                b.shadowed = None;
                b.shared = shared;
                if !self.record_rows {
                    return None;
                }
                b.clone()
            }
            None => {
                let b = BindingState {
                    entry: entry.clone(),
                    qname: qname.clone(),
                    list: list.clone(),
                    category: hit.0,
                    line: hit.1,
                    first_seen: ts,
                    last_seen: ts,
                    ttl,
                    expires,
                    shadowed: None,
                    shared,
                };
                let row = self.record_rows.then(|| b.clone());
                if self.bindings.insert_absent(key, b).is_some() {
                    self.stats.evicted += 1;
                }
                row?
            }
        };
        Some(Binding {
            client,
            ip,
            pool_domain: String::from(&*st.entry),
            qname: String::from(&*st.qname),
            list: String::from(&*st.list),
            first_seen: st.first_seen,
            last_seen: st.last_seen,
            ttl: st.ttl,
            expires: st.expires,
            shared: st.shared,
        })
    }

    pub(super) fn binding_valid(
        &self,
        b_first: Timestamp,
        b_expires: Timestamp,
        flow_start: Timestamp,
    ) -> bool {
        flow_start >= b_first.plus_secs(-self.cfg.reorder_window_secs) && flow_start <= b_expires
    }
}
