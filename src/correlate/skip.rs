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

use std::sync::Weak;

use super::*;
use crate::matcher::Blocklists;
use crate::model::DnsSkim;

/// The last name the fast path asked about and found listed ([`Engine::dns_name_listed_noting`]),
/// with where its hit is in the lists it asked: `on_dns` takes the hit from here instead of
/// matching the same name a second time (issue #11: a pool-lookup flood matched every lookup's
/// name twice, once per question of the fast path and once in `on_dns`, ≈ 1 000 instructions
/// each). One entry: the query of a transaction is read just before its response is decoded
/// and handed to the engine; any other name falls back to the match.
#[derive(Debug, Default)]
pub(super) struct ListedMemo {
    /// Which lists the index is into: a `Weak` pins the allocation (so no other lists can
    /// reuse its address) without keeping reloaded-away lists alive.
    lists: Weak<Blocklists>,
    name: String,
    /// Index into `Blocklists::name_entries` of the hit `match_name(name)` returned.
    index: Option<usize>,
    /// Hits taken from the memo (for the tests).
    pub(super) used: u64,
}

impl ListedMemo {
    /// Remembers that `lists.match_name(name)` returned `hit`.
    fn note(&mut self, lists: &Arc<Blocklists>, name: &str, hit: &ListHit) {
        if !std::ptr::eq(self.lists.as_ptr(), Arc::as_ptr(lists)) {
            self.lists = Arc::downgrade(lists);
        }
        self.name.clear();
        self.name.push_str(name);
        self.index = entry_index(lists.name_entries(), hit);
    }

    /// What `lists.match_name(name)` returns, if this is the name noted last with these lists.
    pub(super) fn hit<'l>(
        &mut self,
        lists: &'l Arc<Blocklists>,
        name: &str,
    ) -> Option<&'l ListHit> {
        let i = self.index?;
        if !std::ptr::eq(self.lists.as_ptr(), Arc::as_ptr(lists)) || self.name != name {
            return None;
        }
        let hit = lists.name_entries().get(i)?;
        self.used = self.used.saturating_add(1);
        Some(hit)
    }
}

/// The position of `hit` in `entries` when it is one of them (compared by address: the
/// element itself, not an equal copy).
fn entry_index(entries: &[ListHit], hit: &ListHit) -> Option<usize> {
    let size = std::mem::size_of::<ListHit>();
    let offset = (hit as *const ListHit)
        .addr()
        .checked_sub(entries.as_ptr().addr())?;
    let i = offset.checked_div(size)?;
    entries.get(i).filter(|e| std::ptr::eq(*e, hit)).map(|_| i)
}

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

    /// [`Engine::dns_name_listed_in`], remembering a listed name's hit for the observation
    /// that follows (`scan`'s fast path: the query of a transaction is read in place, then its
    /// response decoded and observed; see [`ListedMemo`]). The same answer.
    pub fn dns_name_listed_noting(&mut self, lists: &Arc<Blocklists>, name: &str) -> bool {
        match lists.match_name(name) {
            Some(hit) => {
                self.listed_memo.note(lists, name, hit);
                true
            }
            None => false,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher;

    fn lookup(qname: &str) -> Observation {
        let mut d = DnsObservation::test_lookup(
            Timestamp(1_795_724_800_000_000),
            IpAddr::from([10, 0, 0, 1]),
            qname,
            "203.0.113.10",
        );
        d.rtt_us = Some(500);
        Observation::Dns(d)
    }

    fn engine() -> Engine {
        let lists = Blocklists::builtin().unwrap_or_else(|e| panic!("built-in lists: {e}"));
        Engine::new(EngineConfig::default(), matcher::shared(lists))
    }

    /// Issue #11: the name the fast path found listed is not matched again by `on_dns`, and the
    /// observation changes the engine exactly as one whose name was matched there.
    #[test]
    fn a_noted_listed_name_is_not_matched_again() {
        let name = "a1b2.pool.supportxmr.com";
        let mut noted = engine();
        let snap = noted.lists_snapshot();
        assert!(noted.dns_name_listed_noting(&snap, name));
        // An unlisted question between them leaves the memo as it was.
        assert!(!noted.dns_name_listed_noting(&snap, "www.example.org"));
        let with_memo = noted.observe(&lookup(name));
        assert_eq!(noted.listed_memo.used, 1, "the hit came from the memo");

        let mut plain = engine();
        let matched = plain.observe(&lookup(name));
        assert_eq!(plain.listed_memo.used, 0);
        assert_eq!(format!("{with_memo:?}"), format!("{matched:?}"));
        assert_eq!(
            format!("{:?}", noted.stats()),
            format!("{:?}", plain.stats())
        );
    }

    /// The memo answers only for the name it noted, and only against the lists it was noted
    /// with (an equal copy of the lists is other lists).
    #[test]
    fn the_memo_answers_for_its_name_and_lists_only() {
        let lists = Arc::new(Blocklists::builtin().unwrap_or_else(|e| panic!("{e}")));
        let other = Arc::new(Blocklists::builtin().unwrap_or_else(|e| panic!("{e}")));
        let name = "x.pool.supportxmr.com";
        let Some(hit) = lists.match_name(name) else {
            panic!("{name} is listed");
        };
        let mut m = ListedMemo::default();
        m.note(&lists, name, hit);
        assert!(m.hit(&lists, "y.pool.supportxmr.com").is_none());
        assert!(m.hit(&other, name).is_none());
        assert!(std::ptr::eq(
            m.hit(&lists, name).unwrap_or_else(|| panic!("memo")),
            hit
        ));
        assert_eq!(m.used, 1);
        // A copy of an entry is not an entry: no index.
        let copy = hit.clone();
        assert_eq!(entry_index(lists.name_entries(), &copy), None);
        let last = lists.name_entries().len() - 1;
        assert_eq!(
            lists
                .name_entries()
                .get(last)
                .and_then(|h| entry_index(lists.name_entries(), h)),
            Some(last)
        );
    }
}
