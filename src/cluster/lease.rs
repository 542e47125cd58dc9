//! Partition leases in the `poolwatch_leases` KV bucket (docs/cluster.md, "Leases").
//!
//! * Key `p<N>` per partition; the value names the owner. Claiming is a KV *create* (fails when
//!   the key exists: compare-and-swap on "absent"); renewing is an *update* against the
//!   revision this node wrote last (fails when anyone else wrote since).
//! * The bucket's max age is the lease TTL: a lease that is not renewed disappears by itself,
//!   and the partition is free for the next claim.
//! * Correlators also put a heartbeat in `poolwatch_nodes` (same TTL). Each takes up to its
//!   fair share, `ceil(partitions / live nodes)`, at once. A partition that stayed free for a
//!   whole poll interval is an **orphan** (its owner died, and nobody under its share took it): any
//!   node claims it, beyond its share, so a dead node's partitions never wait for its
//!   heartbeat to expire. What is above the share is handed back only after it was above for
//!   [`REBALANCE_ROUNDS`] rounds with no partition free (a node joined), so a stale heartbeat
//!   never makes survivors drop what they just took over.
//! * Renewals and claims of one round go out concurrently, each with its own timeout: one slow
//!   round trip delays none of the others.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use futures_util::future::join_all;
use futures_util::StreamExt;

use super::nats;

/// Rounds a node must be above its fair share, with every partition held, before it hands
/// the surplus back: a full TTL, longer than any dead node's heartbeat outlives its leases.
pub const REBALANCE_ROUNDS: u32 = 3;

/// How often leases are renewed and free partitions looked for: a third of the TTL, so two
/// renewals may fail (a slow round trip) before the lease lapses.
pub fn poll_interval(ttl: Duration) -> Duration {
    (ttl / 3).max(Duration::from_millis(500))
}

/// The longest a dead correlator's partitions stay without an owner: its leases lapse within
/// the TTL of its last renewal; a survivor's next round sees them free (≤ one poll) and claims
/// them within its share, or — while the dead node's heartbeat still counts — as orphans one
/// round later; the claims themselves take one (concurrent) round trip, at most
/// [`nats::REQUEST_TIMEOUT`]. 15 s TTL: 15 + 2·5 + 5 = 30 s.
pub fn takeover_bound(ttl: Duration) -> Duration {
    ttl + 2 * poll_interval(ttl) + nats::REQUEST_TIMEOUT
}

/// A node's fair share of `partitions` among `nodes` live correlators.
pub fn fair_share(partitions: u16, nodes: usize) -> usize {
    let n = nodes.max(1);
    usize::from(partitions).div_ceil(n)
}

pub fn lease_key(p: u16) -> String {
    format!("p{p}")
}

/// The partition of a lease key (`p<N>`), `None` for anything else.
pub fn partition_of_key(key: &str) -> Option<u16> {
    key.strip_prefix('p')?.parse().ok()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct LeaseValue {
    node: String,
}

/// A partition this node just claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    pub partition: u16,
    /// Taken beyond the fair share: it had been free for a whole round.
    pub orphan: bool,
}

/// This node's view of the leases.
pub struct Leases {
    leases: kv::Store,
    nodes: kv::Store,
    node: String,
    partitions: u16,
    /// Partitions held, with the revision of our last write.
    owned: BTreeMap<u16, u64>,
    /// Partitions seen free, since when (continuously): free for a poll interval = orphan.
    free_since: BTreeMap<u16, Instant>,
    /// The poll interval (how long a partition must stay free to be an orphan).
    poll: Duration,
    /// Consecutive rounds above the share with every partition held.
    surplus_rounds: u32,
    /// The first round adopts leases that name this node (a restart under the same name).
    first_round: bool,
}

impl Leases {
    pub fn new(
        leases: kv::Store,
        nodes: kv::Store,
        node: &str,
        partitions: u16,
        poll: Duration,
    ) -> Self {
        Leases {
            leases,
            nodes,
            node: node.to_string(),
            partitions,
            owned: BTreeMap::new(),
            free_since: BTreeMap::new(),
            poll,
            surplus_rounds: 0,
            first_round: true,
        }
    }

    pub fn owned(&self) -> Vec<u16> {
        self.owned.keys().copied().collect()
    }

    fn value(&self) -> bytes::Bytes {
        serde_json::to_vec(&LeaseValue {
            node: self.node.clone(),
        })
        .unwrap_or_default()
        .into()
    }

    /// Announces this node as alive.
    pub async fn heartbeat(&self) -> Result<(), String> {
        tokio::time::timeout(
            nats::REQUEST_TIMEOUT,
            self.nodes.put(self.node.clone(), self.value()),
        )
        .await
        .map_err(|_| "heartbeat timed out".to_string())?
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    /// Live correlators (heartbeats younger than the TTL).
    pub async fn live_nodes(&self) -> Result<usize, String> {
        Ok(list_keys(&self.nodes, "listing nodes").await?.len().max(1))
    }

    /// Partitions that have a lease now (anyone's); `Err` when the listing failed.
    pub async fn held(&self) -> Result<BTreeSet<u16>, String> {
        Ok(list_keys(&self.leases, "listing leases")
            .await?
            .iter()
            .filter_map(|k| partition_of_key(k))
            .collect())
    }

    /// Renews every lease held (concurrently); returns the partitions lost (someone else holds
    /// them now, or the lease lapsed).
    pub async fn renew(&mut self) -> Vec<u16> {
        let value = self.value();
        let held: Vec<(u16, u64)> = self.owned.iter().map(|(p, r)| (*p, *r)).collect();
        let leases = &self.leases;
        let results = join_all(held.into_iter().map(|(p, rev)| {
            let value = value.clone();
            async move {
                let r = tokio::time::timeout(
                    nats::REQUEST_TIMEOUT,
                    leases.update(lease_key(p), value, rev),
                )
                .await;
                (p, r)
            }
        }))
        .await;
        let mut lost = Vec::new();
        for (p, r) in results {
            match r {
                Ok(Ok(new_rev)) => {
                    self.owned.insert(p, new_rev);
                }
                Ok(Err(e)) => {
                    tracing::warn!(partition = p, error = %e, "lease lost");
                    self.owned.remove(&p);
                    lost.push(p);
                }
                // A timeout is not a loss yet: the next round retries within the TTL.
                Err(_) => tracing::warn!(partition = p, "lease renewal timed out"),
            }
        }
        lost
    }

    /// One claim round: up to `share` partitions in total at once, plus every orphan (free in
    /// the previous round too). `held` is the round's lease listing (`None`: it failed, so
    /// only the share is tried and no orphan is recognised). Returns what was claimed.
    pub async fn claim(&mut self, share: usize, held: Option<&BTreeSet<u16>>) -> Vec<Claim> {
        if self.first_round {
            self.first_round = false;
            if let Some(h) = held {
                self.adopt(h).await;
            }
        }
        // Start at a node-specific offset so that simultaneous claimers spread out.
        let start = self.node.bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        let n = usize::from(self.partitions.max(1));
        let order: Vec<u16> = (0..n)
            .filter_map(|i| u16::try_from(start.wrapping_add(i) % n).ok())
            .filter(|p| !self.owned.contains_key(p))
            .collect();
        let free: Vec<u16> = match held {
            Some(h) => order.into_iter().filter(|p| !h.contains(p)).collect(),
            None => order,
        };
        // Orphans: free continuously for a whole poll interval (a round that follows the
        // previous one at once, as at start-up, does not count).
        let now = Instant::now();
        let mut orphans = BTreeSet::new();
        match held {
            Some(_) => {
                let free_set: BTreeSet<u16> = free.iter().copied().collect();
                self.free_since.retain(|p, _| free_set.contains(p));
                for p in &free {
                    let since = *self.free_since.entry(*p).or_insert(now);
                    if now.duration_since(since) >= self.poll {
                        orphans.insert(*p);
                    }
                }
            }
            None => self.free_since.clear(),
        }
        let need = share.saturating_sub(self.owned.len());
        let mut targets: Vec<Claim> = Vec::new();
        for p in &free {
            let orphan = orphans.contains(p);
            let within = targets.iter().filter(|c| !c.orphan).count() < need;
            if within {
                targets.push(Claim {
                    partition: *p,
                    orphan: false,
                });
            } else if orphan {
                targets.push(Claim {
                    partition: *p,
                    orphan: true,
                });
            }
        }
        if targets.is_empty() {
            return Vec::new();
        }
        let value = self.value();
        let leases = &self.leases;
        let results = join_all(targets.into_iter().map(|c| {
            let value = value.clone();
            async move {
                let r = tokio::time::timeout(
                    nats::REQUEST_TIMEOUT,
                    leases.create(lease_key(c.partition), value),
                )
                .await;
                (c, r)
            }
        }))
        .await;
        let mut claimed = Vec::new();
        for (c, r) in results {
            match r {
                Ok(Ok(rev)) => {
                    self.owned.insert(c.partition, rev);
                    self.free_since.remove(&c.partition);
                    claimed.push(c);
                }
                // Taken by someone else first (or it timed out: retried next round).
                Ok(Err(_)) => {
                    self.free_since.remove(&c.partition);
                }
                Err(_) => tracing::warn!(partition = c.partition, "lease claim timed out"),
            }
        }
        claimed
    }

    /// Takes back leases that already name this node (it restarted under the same name
    /// before they lapsed).
    async fn adopt(&mut self, held: &BTreeSet<u16>) {
        let leases = &self.leases;
        let entries = join_all(held.iter().filter(|p| !self.owned.contains_key(p)).map(
            |p| async move {
                let r =
                    tokio::time::timeout(nats::REQUEST_TIMEOUT, leases.entry(lease_key(*p))).await;
                (*p, r)
            },
        ))
        .await;
        for (p, r) in entries {
            if let Ok(Ok(Some(e))) = r {
                let mine = e.operation == kv::Operation::Put
                    && serde_json::from_slice::<LeaseValue>(&e.value)
                        .is_ok_and(|v| v.node == self.node);
                if mine {
                    tracing::info!(partition = p, "lease of an earlier run adopted");
                    self.owned.insert(p, e.revision);
                }
            }
        }
    }

    /// Partitions to hand back this round: those above the fair share, highest first, once the
    /// node has been above it for [`REBALANCE_ROUNDS`] rounds in which every partition was
    /// held (`all_held`): then someone under its share is waiting for them.
    pub fn surplus(&mut self, share: usize, all_held: bool) -> Vec<u16> {
        let over = self.owned.len().saturating_sub(share);
        if over == 0 || !all_held {
            self.surplus_rounds = 0;
            return Vec::new();
        }
        self.surplus_rounds += 1;
        if self.surplus_rounds < REBALANCE_ROUNDS {
            return Vec::new();
        }
        self.surplus_rounds = 0;
        self.owned.keys().rev().take(over).copied().collect()
    }

    /// Gives a partition back (its consumer has stopped and everything it delivered is acked).
    pub async fn release(&mut self, p: u16) {
        if let Some(rev) = self.owned.remove(&p) {
            let _ = tokio::time::timeout(
                nats::REQUEST_TIMEOUT,
                self.leases.delete_expect_revision(lease_key(p), Some(rev)),
            )
            .await;
        }
    }

    /// Removes this node's heartbeat (clean shutdown).
    pub async fn leave(&self) {
        let _ =
            tokio::time::timeout(nats::REQUEST_TIMEOUT, self.nodes.delete(self.node.clone())).await;
    }
}

/// The live keys of a bucket, the whole listing within one request timeout.
async fn list_keys(kv: &kv::Store, what: &str) -> Result<Vec<String>, String> {
    let listing = async {
        let mut keys = kv.keys().await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        while let Some(k) = keys.next().await {
            if let Ok(k) = k {
                out.push(k);
            }
        }
        Ok::<_, String>(out)
    };
    tokio::time::timeout(nats::REQUEST_TIMEOUT, listing)
        .await
        .map_err(|_| format!("{what} timed out"))?
}
