//! The engine's side of the packet fast path (issue #16, `capture::txn`): the questions the
//! capture stage asks before it decodes a DNS message in full, and what a message it then
//! skipped still does here.
//!
//! A DNS observation whose query name and CNAME targets are unlisted changes three things in
//! `on_dns` (engine/dns.rs): the resolver learning (`Infra::observe_answer`), the shadowing of
//! the client's own pool bindings (`shadow_bindings`) and the answer names of bound or listed
//! addresses (`remember_answer_names`); `observe` then counts it and moves the clock. The fast
//! path decodes every message for which [`Engine::dns_name_listed`] or
//! [`Engine::dns_answers_matter`] says yes (a superset of what the last two rules read), and
//! hands every other one to [`Engine::observe_skipped`], which does the first and the last.
//! Declared as a child of `engine` (it reads the engine's tables); a sibling file on disk.

use super::*;
use crate::matcher::Blocklists;
use crate::model::DnsSkim;

impl Engine {
    /// The engine's own name test (`Blocklists::match_name`, as `on_dns` applies it to the
    /// query name and each CNAME target): whether `name` (normalised as `dns::name_str`
    /// renders it) names a listed pool.
    pub fn dns_name_listed(&self, name: &str) -> bool {
        Self::dns_name_listed_in(&self.lists.load(), name)
    }

    /// [`Engine::dns_name_listed`] against a snapshot of the engine's lists
    /// ([`Engine::lists_snapshot`]): a caller whose lists cannot change for the run (`scan`)
    /// holds one snapshot instead of loading the shared lists for every message.
    pub fn dns_name_listed_in(lists: &Blocklists, name: &str) -> bool {
        lists.match_name(name).is_some()
    }

    /// The listed-address half of [`Engine::dns_answers_matter_in`]: whether an answer address
    /// is on the lists (any port), which makes its answer matter whatever the engine holds.
    pub fn dns_ip_listed_in(lists: &Blocklists, ip: IpAddr) -> bool {
        lists.match_ip(ip, None).is_some()
    }

    /// The lists the engine matches with now.
    pub fn lists_snapshot(&self) -> Arc<Blocklists> {
        self.lists.load_full()
    }

    /// Whether an unlisted answer to `client` naming `ips` (every A/AAAA answer of the
    /// message) could change the engine's state: the client holds a pool binding for one of
    /// them (shadowing), or one is bound by any client's pool lookup or listed (answer names).
    /// Over-approximates both rules (it ignores the rcode, sinkholes and the per-message cap of
    /// the answer names), so a "no" is exact.
    pub fn dns_answers_matter(&self, client: IpAddr, ips: &[IpAddr]) -> bool {
        self.dns_answers_matter_in(&self.lists.load(), client, ips)
    }

    /// [`Engine::dns_answers_matter`] with the listed-address test against a snapshot of the
    /// engine's lists (see [`Engine::dns_name_listed_in`]).
    pub fn dns_answers_matter_in(
        &self,
        lists: &Blocklists,
        client: IpAddr,
        ips: &[IpAddr],
    ) -> bool {
        if ips.is_empty() {
            return false;
        }
        if self.bound_clients.contains_key(&client)
            && ips
                .iter()
                .any(|ip| self.bindings.contains_key(&(client, *ip)))
        {
            return true;
        }
        ips.iter()
            .any(|ip| self.ip_index.contains_key(ip) || Self::dns_ip_listed_in(lists, *ip))
    }

    /// A DNS message the fast path skipped: counted as a DNS observation, taught to the
    /// resolver learning, and the clock moved to its time — exactly what [`Engine::observe`]
    /// does with an unlisted message for which [`Engine::dns_answers_matter`] is false.
    pub fn observe_skipped(&mut self, s: &DnsSkim) -> Changes {
        let mut out = Changes::default();
        self.stats.dns += 1;
        if s.answered && s.query_seen {
            self.infra.observe_answer_of(s.server, s.client, s.ts);
        }
        self.observed(s.ts, &mut out);
        out
    }

    /// A DNS observation without a server address that `scan`'s log pre-filter did not build
    /// (an unlisted dnsmasq transaction without CNAMEs, `ingest::LogSink`): counted and the
    /// clock moved to `ts` — what [`Engine::observe`] does with such an observation when
    /// [`Engine::dns_answers_matter`] is false (no server: no resolver learning).
    pub fn observe_skipped_log(&mut self, ts: Timestamp) -> Changes {
        let mut out = Changes::default();
        self.stats.dns += 1;
        self.observed(ts, &mut out);
        out
    }
}
