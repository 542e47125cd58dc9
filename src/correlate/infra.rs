//! DNS infrastructure: which addresses are resolvers, and which pool lookups a host made on
//! behalf of its own DNS clients.
//!
//! The rule (docs/detections.md, "Resolver rule"): a resolver is exempt only for its *lookups*
//! of pool names, never for its own flows. A host is a resolver when it is configured
//! (`--resolver`, the strong signal) or *learned*: it answered queries of
//! [`RESOLVER_MIN_CLIENTS`] distinct clients within [`RESOLVER_LEARN_WINDOW_SECS`]. Independently
//! of that, one lookup is exempt when the same host was asked for a name of the same pool entry
//! by another client within the reorder window (a forwarder or a resolver not yet learned,
//! passing its client's question upstream). Answers to queries that were never seen
//! (unsolicited responses) teach nothing: one spoofed packet from port 53 proves nothing.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

use rustc_hash::FxHasher;

use super::bounded::BoundedMap;
use crate::model::{DnsObservation, FlowObservation, Timestamp};

/// Distinct clients a server must answer before it is treated as a resolver. One answer could
/// be a spoofed or stray packet, two a pair of hosts talking to each other (a test tool, a
/// peer-to-peer app); three distinct clients is a service.
pub const RESOLVER_MIN_CLIENTS: usize = 3;
/// The distinct clients must be seen within this long (10 min): a busy resolver answers
/// thousands of clients a minute; a host that answered one client a day is not one.
pub const RESOLVER_LEARN_WINDOW_SECS: i64 = 600;
/// Recent (server, pool entry) questions, for the forwarding exemption. Pool questions are
/// rare (a handful per mining host); 64k covers floods of random pool-looking names.
pub const MAX_FORWARDED: usize = 65_536;
/// The DNS port: a flow to it, between DNS servers, is DNS traffic, not a pool session.
pub const DNS_PORT: u16 = 53;

/// What one server has shown so far.
#[derive(Debug)]
struct ServerSeen {
    /// Distinct clients answered within the learning window (at most `RESOLVER_MIN_CLIENTS`).
    clients: Vec<(IpAddr, Timestamp)>,
    learned: bool,
    /// When the entry's recency was last refreshed.
    touched: Timestamp,
}

/// The two fields of an answer the learning reads.
struct AnswerSeen {
    client: IpAddr,
    ts: Timestamp,
}

/// A run of questions for one (server, entry): the first and last time, with no gap longer
/// than the window between them.
#[derive(Debug, Clone, Copy)]
struct Run {
    first: Timestamp,
    last: Timestamp,
}

/// Counters of the infrastructure tables (part of `EngineStats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InfraCounts {
    pub learned: u64,
    pub servers_evicted: u64,
    pub forwarded_evicted: u64,
}

/// Configured and learned DNS infrastructure, and the forwarding evidence.
pub struct Infra {
    configured: HashSet<IpAddr>,
    learn: bool,
    window_secs: i64,
    servers: BoundedMap<IpAddr, ServerSeen>,
    forwarded: BoundedMap<(IpAddr, u64), Run>,
    counts: InfraCounts,
}

impl Infra {
    /// `max_servers` caps the table of servers seen answering (learned or not);
    /// `window_secs` is the engine's reorder window (the forwarding exemption's tolerance).
    pub fn new(
        configured: &[IpAddr],
        learn: bool,
        max_servers: usize,
        max_forwarded: usize,
        window_secs: i64,
    ) -> Self {
        Infra {
            configured: configured.iter().copied().collect(),
            learn,
            window_secs: window_secs.max(0),
            servers: BoundedMap::new(max_servers),
            forwarded: BoundedMap::new(max_forwarded),
            counts: InfraCounts::default(),
        }
    }

    /// Learns from one DNS observation: an answered query that was seen, from a server to
    /// another address, counts that client for the server.
    pub fn observe_answer(&mut self, d: &DnsObservation) {
        if d.rcode.is_none() || !d.query_seen {
            return;
        }
        let Some(server) = d.server else { return };
        self.observe_answer_of(server, d.client, d.ts);
    }

    /// [`Infra::observe_answer`] for an answered, seen query of `client` by `server` at `ts`
    /// (also the packet fast path's skipped messages, `correlate::skip`).
    pub fn observe_answer_of(&mut self, server: IpAddr, client: IpAddr, ts: Timestamp) {
        if !self.learn || server == client {
            return;
        }
        let d = AnswerSeen { client, ts };
        let horizon = d.ts.plus_secs(-RESOLVER_LEARN_WINDOW_SECS);
        // A busy resolver answers thousands of queries a second: refresh its recency at most
        // once a second of capture time (a hash probe instead of a queue push per answer).
        if let Some(s) = self.servers.get_mut(&server) {
            if s.learned && d.ts < s.touched.plus_secs(1) && d.ts >= s.touched {
                return;
            }
        }
        if let Some(s) = self.servers.get_mut_touch(&server) {
            s.touched = d.ts;
            if s.learned {
                return;
            }
            s.clients.retain(|(_, t)| *t >= horizon);
            match s.clients.iter_mut().find(|(c, _)| *c == d.client) {
                Some(c) => c.1 = c.1.max(d.ts),
                None => s.clients.push((d.client, d.ts)),
            }
            if s.clients.len() >= RESOLVER_MIN_CLIENTS {
                s.learned = true;
                s.clients = Vec::new();
                self.counts.learned = self.counts.learned.saturating_add(1);
            }
            return;
        }
        let seen = ServerSeen {
            clients: vec![(d.client, d.ts)],
            learned: RESOLVER_MIN_CLIENTS <= 1,
            touched: d.ts,
        };
        if self.servers.insert(server, seen).is_some() {
            self.counts.servers_evicted = self.counts.servers_evicted.saturating_add(1);
        }
    }

    /// Records that `d.client` asked `d.server` for a name of pool entry `entry` (called for
    /// pool-matching lookups only).
    pub fn note_question(&mut self, d: &DnsObservation, entry: &str) {
        if !d.query_seen {
            return;
        }
        let Some(server) = d.server else { return };
        if server == d.client {
            return;
        }
        let key = (server, entry_hash(entry));
        let w = self.window_secs;
        match self.forwarded.get_mut_touch(&key) {
            Some(r) => {
                if d.ts > r.last.plus_secs(w) {
                    r.first = d.ts;
                }
                r.first = r.first.min(d.ts);
                r.last = r.last.max(d.ts);
            }
            None => {
                let run = Run {
                    first: d.ts,
                    last: d.ts,
                };
                if self.forwarded.insert(key, run).is_some() {
                    self.counts.forwarded_evicted = self.counts.forwarded_evicted.saturating_add(1);
                }
            }
        }
    }

    /// Configured, or learned from answers to enough distinct clients.
    pub fn is_resolver(&self, ip: IpAddr) -> bool {
        self.configured.contains(&ip) || self.servers.get(&ip).is_some_and(|s| s.learned)
    }

    /// Configured, or seen answering at least one query that was seen (learned or not).
    pub fn is_dns_server(&self, ip: IpAddr) -> bool {
        self.configured.contains(&ip) || self.servers.contains_key(&ip)
    }

    /// Whether `client`'s lookup of `entry` at `ts` is a resolver's lookup: the client is a
    /// resolver, or another host asked it for the same entry within the window.
    pub fn lookup_exempt(&self, client: IpAddr, entry: &str, ts: Timestamp) -> bool {
        if self.is_resolver(client) {
            return true;
        }
        let w = self.window_secs;
        self.forwarded
            .get(&(client, entry_hash(entry)))
            .is_some_and(|r| ts >= r.first.plus_secs(-w) && ts <= r.last.plus_secs(w))
    }

    /// A flow that is DNS service traffic: to the DNS port, carrying nothing but DNS (no TLS,
    /// SNI or HTTP), between a resolver and a DNS server. A resolver's (or its client's)
    /// binding for that address says nothing about it; Stratum on it still counts (checked by
    /// the caller).
    pub fn is_dns_service_flow(&self, f: &FlowObservation) -> bool {
        f.dst_port == DNS_PORT
            && !f.app.tls
            && f.app.sni.is_none()
            && f.app.http_host.is_none()
            && (self.is_dns_server(f.dst) || self.is_resolver(f.src))
    }

    /// Entries in the servers table (learned resolvers and candidates).
    pub fn servers_len(&self) -> usize {
        self.servers.len()
    }

    pub fn forwarded_len(&self) -> usize {
        self.forwarded.len()
    }

    pub fn counts(&self) -> InfraCounts {
        self.counts
    }
}

fn entry_hash(entry: &str) -> u64 {
    let mut h = FxHasher::default();
    entry.hash(&mut h);
    h.finish()
}
