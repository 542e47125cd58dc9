//! Partition leases in the `poolwatch_leases` KV bucket (docs/cluster.md, "Leases").
//!
//! * Key `p<N>` per partition; the value names the owner. Claiming is a KV *create* (fails when
//!   the key exists: compare-and-swap on "absent"); renewing is an *update* against the
//!   revision this node wrote last (fails when anyone else wrote since).
//! * The bucket's max age is the lease TTL: a lease that is not renewed disappears by itself,
//!   and the partition is free for the next claim.
//! * Correlators also put a heartbeat in `poolwatch_nodes` (same TTL). Each takes at most its
//!   fair share, `ceil(partitions / live nodes)`, and hands back what is above it, so leases
//!   spread when nodes join and concentrate when they die.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::StreamExt;

use super::nats;

/// How often leases are renewed and free partitions looked for: a third of the TTL, so two
/// renewals may fail (a slow round trip) before the lease lapses.
pub fn poll_interval(ttl: Duration) -> Duration {
    (ttl / 3).max(Duration::from_millis(500))
}

/// A node's fair share of `partitions` among `nodes` live correlators.
pub fn fair_share(partitions: u16, nodes: usize) -> usize {
    let n = nodes.max(1);
    usize::from(partitions).div_ceil(n)
}

pub fn lease_key(p: u16) -> String {
    format!("p{p}")
}

#[derive(serde::Serialize, serde::Deserialize)]
struct LeaseValue {
    node: String,
}

/// This node's view of the leases.
pub struct Leases {
    leases: kv::Store,
    nodes: kv::Store,
    node: String,
    partitions: u16,
    /// Partitions held, with the revision of our last write.
    owned: BTreeMap<u16, u64>,
}

impl Leases {
    pub fn new(leases: kv::Store, nodes: kv::Store, node: &str, partitions: u16) -> Self {
        Leases {
            leases,
            nodes,
            node: node.to_string(),
            partitions,
            owned: BTreeMap::new(),
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
        let mut keys = tokio::time::timeout(nats::REQUEST_TIMEOUT, self.nodes.keys())
            .await
            .map_err(|_| "listing nodes timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let mut n = 0usize;
        while let Some(k) = keys.next().await {
            if k.is_ok() {
                n += 1;
            }
        }
        Ok(n.max(1))
    }

    /// Renews every lease held; returns the partitions lost (someone else holds them now, or
    /// the lease lapsed).
    pub async fn renew(&mut self) -> Vec<u16> {
        let mut lost = Vec::new();
        let value = self.value();
        let held: Vec<(u16, u64)> = self.owned.iter().map(|(p, r)| (*p, *r)).collect();
        for (p, rev) in held {
            let r = tokio::time::timeout(
                nats::REQUEST_TIMEOUT,
                self.leases.update(lease_key(p), value.clone(), rev),
            )
            .await;
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

    /// Claims free partitions until this node holds `share`; returns the ones claimed.
    pub async fn claim(&mut self, share: usize) -> Vec<u16> {
        let mut claimed = Vec::new();
        let value = self.value();
        // Start at a node-specific offset so that simultaneous claimers spread out.
        let start = self.node.bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        for i in 0..usize::from(self.partitions) {
            if self.owned.len() >= share {
                break;
            }
            let p = u16::try_from((start + i) % usize::from(self.partitions)).unwrap_or(0);
            if self.owned.contains_key(&p) {
                continue;
            }
            let r = tokio::time::timeout(
                nats::REQUEST_TIMEOUT,
                self.leases.create(lease_key(p), value.clone()),
            )
            .await;
            match r {
                Ok(Ok(rev)) => {
                    self.owned.insert(p, rev);
                    claimed.push(p);
                }
                Ok(Err(_)) => {
                    // Held by someone: ours from an earlier life of this node name?
                    if let Ok(Ok(Some(e))) =
                        tokio::time::timeout(nats::REQUEST_TIMEOUT, self.leases.entry(lease_key(p)))
                            .await
                    {
                        let mine = e.operation == kv::Operation::Put
                            && serde_json::from_slice::<LeaseValue>(&e.value)
                                .is_ok_and(|v| v.node == self.node);
                        if mine {
                            self.owned.insert(p, e.revision);
                            claimed.push(p);
                        }
                    }
                }
                Err(_) => break,
            }
        }
        claimed
    }

    /// Partitions above the fair share, highest first (to be handed back).
    pub fn surplus(&self, share: usize) -> Vec<u16> {
        self.owned
            .keys()
            .rev()
            .take(self.owned.len().saturating_sub(share))
            .copied()
            .collect()
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
