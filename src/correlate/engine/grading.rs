//! Attribution of a flow, first match wins (docs/detections.md, "Shared-address rule").

use super::*;

impl Engine {
    /// Attribution, first match wins (docs/detections.md, "Shared-address rule"):
    /// own binding → listed SNI/Host → (unless the flow's own name is a non-pool site)
    /// another client's binding → listed address; Stratum on the wire makes any of them
    /// `stratum`, or attributes to `stratum:<dst>`. DNS service traffic between DNS servers is
    /// not graded by bindings or addresses (resolver rule).
    pub(super) fn attribute(&mut self, f: &FlowObservation, wait_allowed: bool) -> Grade {
        let established = matches!(f.state, FlowState::Established | FlowState::Closed);
        let contact = if established {
            Stage::Connection
        } else {
            Stage::ConnectionAttempt
        };
        let direct = if established {
            Stage::DirectIp
        } else {
            Stage::ConnectionAttempt
        };
        // The Stratum rule is capture's (`capture::payload`); logs say what their source says.
        let stratum = f.app.is_stratum();
        if stratum {
            self.stats.stratum_flows += 1;
        }
        // The flow's own name and whether it is a pool's (one list probe).
        let own_name = flow_name(f).map(|(name, how)| {
            let lists = self.lists.load();
            (name.to_string(), how, lists.match_name(name).cloned())
        });
        let names_other_site = own_name.as_ref().is_some_and(|(_, _, hit)| hit.is_none());
        // The capture reports a TCP flow once when it is established, before its first payload
        // (SNI, Host) is seen: such a flow has not told its own name yet. It is not convicted
        // by another client's binding (or a listed or shared address) now, but on its next
        // report, or when none came within the reorder window (see `release_unnamed`).
        let unnamed_yet = wait_allowed
            && !stratum
            && f.report == FlowReport::Interim
            && f.bytes_out == 0
            && f.payload_out.is_empty()
            && own_name.is_none()
            && !f.app.tls;
        let dns_service = !stratum && self.infra.is_dns_service_flow(f);
        if dns_service {
            self.stats.dns_service_flows = self.stats.dns_service_flows.saturating_add(1);
        }
        let mut att = None;
        let mut shared_own_waits = false;
        if let Some(b) = self.bindings.get(&(f.src, f.dst)) {
            let shadowed = !stratum && b.shadowed.is_some_and(|t| f.ts >= t);
            let usable = self.binding_valid(b.first_seen, b.expires, f.ts) && !shadowed;
            // A shared (CDN) address serves other sites: a flow naming one is not the pool's.
            let other_site = !stratum && b.shared && (names_other_site || unnamed_yet);
            shared_own_waits = usable && b.shared && unnamed_yet && !dns_service;
            if usable && !other_site && !dns_service {
                att = Some(Attribution {
                    hit: SharedHit {
                        list: Arc::clone(&b.list),
                        entry: Arc::clone(&b.entry),
                        category: b.category,
                        line: b.line,
                    },
                    qname: Some(String::from(&*b.qname)),
                    stage: contact,
                    how: How::OwnLookup,
                });
            }
        }
        if att.is_none() {
            if let Some((name, how, Some(hit))) = &own_name {
                match how {
                    How::HttpHost => {
                        self.stats.http_host_matches =
                            self.stats.http_host_matches.saturating_add(1)
                    }
                    _ => self.stats.sni_matches += 1,
                }
                att = Some(Attribution {
                    hit: self.shared_hit(hit),
                    qname: Some(name.clone()),
                    stage: contact,
                    how: *how,
                });
            }
        }
        // Evidence of the flow's own name outranks another client's binding and an address
        // list: its SNI/Host, or this client's own non-pool DNS answer for the address.
        let own_non_pool = att.is_none()
            && !stratum
            && (names_other_site
                || self.answer_names.names_non_pool(
                    f.src,
                    f.dst,
                    f.ts,
                    self.cfg.reorder_window_secs,
                ));
        if att.is_none()
            && unnamed_yet
            && !dns_service
            && !own_non_pool
            && (shared_own_waits || self.would_convict(f))
        {
            self.stats.flows_waiting_for_name = self.stats.flows_waiting_for_name.saturating_add(1);
            return Grade::Wait;
        }
        let may_convict = att.is_none() && !dns_service && !own_non_pool;
        if may_convict {
            if let Some(o) = self.ip_index.get(&f.dst) {
                if o.client != f.src && self.binding_valid(o.first_seen, o.expires, f.ts) {
                    let hit = &o.hit;
                    att = Some(Attribution {
                        hit: SharedHit {
                            list: self.names.get(&hit.list),
                            entry: self.names.get(&hit.entry),
                            category: hit.category,
                            line: hit.line,
                        },
                        qname: None,
                        stage: direct,
                        how: How::OtherClientBinding,
                    });
                }
            }
        }
        if may_convict && att.is_none() {
            let lists = self.lists.load();
            if let Some(hit) = lists.match_ip(f.dst, Some(f.dst_port)) {
                self.stats.ip_matches += 1;
                att = Some(Attribution {
                    hit: self.shared_hit(hit),
                    qname: None,
                    stage: direct,
                    how: How::ListedAddress,
                });
            }
        }
        if own_non_pool && att.is_none() && self.would_convict(f) {
            self.stats.own_name_overrides = self.stats.own_name_overrides.saturating_add(1);
        }
        if stratum {
            let a = att.get_or_insert_with(|| Attribution {
                hit: SharedHit {
                    list: Arc::from("stratum"),
                    entry: Arc::from(format!("stratum:{}", f.dst)),
                    category: Category::Pool,
                    line: 0,
                },
                qname: None,
                stage: Stage::Stratum,
                how: How::StratumPayload,
            });
            a.stage = Stage::Stratum;
        }
        match att {
            Some(a) => Grade::Pool(a),
            None => Grade::None,
        }
    }

    /// `hit` with the engine's shared names (`correlate::names`).
    fn shared_hit(&mut self, hit: &ListHit) -> SharedHit {
        SharedHit {
            list: self.names.get(&hit.list),
            entry: self.names.get(&hit.entry),
            category: hit.category,
            line: hit.line,
        }
    }

    /// Whether another client's binding or an address list would have convicted the flow
    /// (for the `own_name_overrides` counter only).
    pub(super) fn would_convict(&self, f: &FlowObservation) -> bool {
        let bound = self.ip_index.get(&f.dst).is_some_and(|o| {
            o.client != f.src && self.binding_valid(o.first_seen, o.expires, f.ts)
        });
        bound
            || self
                .lists
                .load()
                .match_ip(f.dst, Some(f.dst_port))
                .is_some()
    }
}
