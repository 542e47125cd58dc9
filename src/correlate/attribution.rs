//! Why a flow belongs to a pool, and the flow's *own* name evidence.
//!
//! The shared-address rule (docs/detections.md): a pool address can also serve other sites
//! (anycast, CDN, shared hosting). A flow is convicted by *another* client's binding or by a
//! listed pool address (`direct_ip`) only when it has no name of its own, or its own name is a
//! pool's. Its own name is its TLS SNI or HTTP Host, else the latest non-pool DNS answer this
//! same client received for the address ([`AnswerNames`]). Evidence of the flow's own name
//! outranks another client's binding.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::FxHasher;

use super::bounded::BoundedMap;
use crate::model::{Category, FlowObservation, ListHit, Stage, Timestamp};

/// (client, address) pairs remembered from non-pool DNS answers. Every client's answers are
/// kept (a browser may have resolved the CDN site hours before another host resolved the pool
/// to the same address); a pair is stored as a 64-bit hash (~56 B an entry with the LRU queue,
/// so 200k pairs are ~11 MB) and covers a /16 of busy clients' recent answers; the least
/// recently answered pair goes first. A hash collision could only spare one flow a
/// `direct_ip` (odds ~ entries / 2^64).
pub const MAX_ANSWER_NAMES: usize = 200_000;

/// How a flow was attributed (the enum lives in `model`: it is part of `PoolFlow`).
pub use crate::model::How;

/// Which list/entry and how strongly a flow is attributed.
pub(crate) struct Attribution {
    pub hit: SharedHit,
    pub qname: Option<String>,
    pub stage: Stage,
    pub how: How,
}

/// A [`ListHit`] whose names are the engine's shared `Arc<str>`s (`correlate::names`, or a
/// binding's own): attributing a flow copies no string (issue #11: a flood's every SYN is
/// attributed by its client's binding, and the hit's two names were two allocations, freed
/// again, per flow). The detection's list gets an owned [`ListHit`] only when the hit is new
/// to it ([`SharedHit::to_list_hit`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SharedHit {
    pub list: Arc<str>,
    pub entry: Arc<str>,
    pub category: Category,
    pub line: u32,
}

impl SharedHit {
    /// Whether `h` names the same (list, entry).
    pub fn same_entry(&self, h: &ListHit) -> bool {
        *h.list == *self.list && *h.entry == *self.entry
    }

    pub fn to_list_hit(&self) -> ListHit {
        ListHit {
            list: String::from(&*self.list),
            entry: String::from(&*self.entry),
            category: self.category,
            line: self.line,
        }
    }
}

/// The name a flow carries itself: the TLS SNI, else the HTTP Host.
pub(crate) fn flow_name(f: &FlowObservation) -> Option<(&str, How)> {
    if let Some(s) = f.app.sni.as_deref().filter(|s| !s.is_empty()) {
        return Some((s, How::TlsSni));
    }
    f.app
        .http_host
        .as_deref()
        .filter(|h| !h.is_empty())
        .map(|h| (h, How::HttpHost))
}

#[derive(Debug, Clone, Copy)]
struct Answered {
    first: Timestamp,
    expires: Timestamp,
    /// When the entry's recency was last refreshed.
    touched: Timestamp,
}

/// Per (client, address): when this client's DNS last named the address with a *non-pool*
/// name, and until when that answer explains its flows there (TTL plus the binding grace, like
/// a pool binding).
pub(crate) struct AnswerNames {
    map: BoundedMap<u64, Answered>,
    evicted: u64,
}

impl AnswerNames {
    pub fn new(cap: usize) -> Self {
        AnswerNames {
            map: BoundedMap::new(cap),
            evicted: 0,
        }
    }

    /// Remembers a non-pool answer `ip` given to `client` at `ts`, valid until `expires`.
    pub fn record(&mut self, client: IpAddr, ip: IpAddr, ts: Timestamp, expires: Timestamp) {
        let key = pair_key(client, ip);
        // Repeated answers (a client re-resolving, two sources of one answer) update in place;
        // recency is refreshed at most once a second of capture time.
        if let Some(a) = self.map.get_mut(&key) {
            a.first = a.first.min(ts);
            a.expires = a.expires.max(expires);
            if ts < a.touched.plus_secs(1) && ts >= a.touched {
                return;
            }
            a.touched = ts;
            self.map.get_mut_touch(&key);
            return;
        }
        let a = Answered {
            first: ts,
            expires,
            touched: ts,
        };
        if self.map.insert(key, a).is_some() {
            self.evicted = self.evicted.saturating_add(1);
        }
    }

    /// Whether `client`'s own non-pool answer for `ip` explains a flow starting at `start`
    /// (`skew`: inputs may be reordered by this many seconds).
    pub fn names_non_pool(&self, client: IpAddr, ip: IpAddr, start: Timestamp, skew: i64) -> bool {
        self.map
            .get(&pair_key(client, ip))
            .is_some_and(|a| start >= a.first.plus_secs(-skew) && start <= a.expires)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

fn pair_key(client: IpAddr, ip: IpAddr) -> u64 {
    let mut h = FxHasher::default();
    client.hash(&mut h);
    ip.hash(&mut h);
    h.finish()
}
