//! Test support for the API tests: a real API server on 127.0.0.1:0 (`Server`) over
//! `MemBackend`, an in-memory implementation of the `api::Backend` seam (the sled store
//! implements the same trait), detection builders and the JSON-error assertion.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poolwatch::api::{ApiOptions, AppState, Backend, BackendError, Tokens};
use poolwatch::config::Secret;
use poolwatch::matcher::{self, Blocklists};
use poolwatch::model::{Detection, Stage, Timestamp};
use poolwatch::query::{
    DetectionFilter, HostTimeline, NewSuppression, Page, PoolIp, PoolSummary, Suppression,
};
use reqwest::blocking::Client;
use serde_json::{json, Value};

use super::http::{self as http_support, Serving};

pub const ADMIN: &str = "admin-token-0123456789abcdef";
pub const READ: &str = "read-token-0123456789abcdef";

// ---------------------------------------------------------------------------------------------
// The in-memory backend (test double for the store seam)
// ---------------------------------------------------------------------------------------------

/// Detections kept in insertion order with a sequence number; pages go newest first and a
/// cursor is "everything older than sequence N", so inserts never shift later pages.
#[derive(Default)]
pub struct MemBackend {
    pub detections: Mutex<BTreeMap<u64, Detection>>,
    pub seq: AtomicU64,
    pub suppressions: Mutex<Vec<Suppression>>,
    pub pool_ips: Mutex<Vec<PoolIp>>,
}

impl MemBackend {
    pub fn insert(&self, d: Detection) {
        let s = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.detections.lock().unwrap().insert(s, d);
    }
}

fn matches(f: &DetectionFilter, d: &Detection) -> bool {
    f.client.is_none_or(|n| n.contains(&d.client_ip))
        && f.pool.as_deref().is_none_or(|p| p == d.pool_domain)
        && f.stage.is_none_or(|s| s == d.stage)
        && f.min_risk.is_none_or(|r| d.risk_score >= r)
        && f.suppressed.is_none_or(|s| s == d.suppressed)
        && f.since.is_none_or(|t| d.last_seen >= t)
        && f.until.is_none_or(|t| d.first_seen <= t)
}

impl Backend for MemBackend {
    fn list_detections(
        &self,
        f: &DetectionFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Detection>, BackendError> {
        let before = match cursor {
            None => u64::MAX,
            Some(c) => c
                .strip_prefix("s")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| BackendError::BadCursor("malformed".into()))?,
        };
        let all = self.detections.lock().unwrap();
        let mut items = Vec::new();
        let mut next = None;
        for (seq, d) in all.range(..before).rev() {
            if !matches(f, d) {
                continue;
            }
            if items.len() == limit {
                next = Some(format!("s{}", seq + 1));
                break;
            }
            items.push(d.clone());
        }
        Ok(Page {
            items,
            next_cursor: next,
        })
    }
    fn get_detection(&self, id: &str) -> Result<Option<Detection>, BackendError> {
        if id == "explode" {
            return Err(BackendError::Other(
                "sled: IO error at /secret/path/db".into(),
            ));
        }
        Ok(self
            .detections
            .lock()
            .unwrap()
            .values()
            .find(|d| d.id == id)
            .cloned())
    }
    fn host_timeline(&self, ip: IpAddr, limit: usize) -> Result<HostTimeline, BackendError> {
        if ip == "192.0.2.254".parse::<IpAddr>().unwrap() {
            // A slow backend, for the request deadline.
            std::thread::sleep(Duration::from_secs(3));
        }
        let dets: Vec<Detection> = self
            .detections
            .lock()
            .unwrap()
            .values()
            .rev()
            .filter(|d| d.client_ip == ip)
            .take(limit)
            .cloned()
            .collect();
        Ok(HostTimeline {
            ip,
            first_seen: dets.iter().map(|d| d.first_seen).min(),
            timeline: dets.iter().flat_map(|d| d.evidence.clone()).collect(),
            detections: dets,
            bindings: Vec::new(),
        })
    }
    fn pools(&self) -> Result<Vec<PoolSummary>, BackendError> {
        let all = self.detections.lock().unwrap();
        let mut by: BTreeMap<String, PoolSummary> = BTreeMap::new();
        for d in all.values() {
            let e = by.entry(d.pool_domain.clone()).or_insert(PoolSummary {
                pool_domain: d.pool_domain.clone(),
                category: None,
                list: None,
                clients: 0,
                detections: 0,
                strongest_stage: d.stage,
                first_seen: d.first_seen,
                last_seen: d.last_seen,
            });
            e.clients += 1;
            e.detections += 1;
            e.strongest_stage = e.strongest_stage.max(d.stage);
        }
        Ok(by.into_values().collect())
    }
    fn add_suppression(&self, s: NewSuppression) -> Result<Suppression, BackendError> {
        let mut v = self.suppressions.lock().unwrap();
        let sup = Suppression {
            id: format!("sup-{}", v.len() + 1),
            client: s.client,
            pool: s.pool,
            expires: s.expires,
            reason: s.reason,
            created: Timestamp::now(),
        };
        v.push(sup.clone());
        Ok(sup)
    }
    fn list_suppressions(&self) -> Result<Vec<Suppression>, BackendError> {
        Ok(self.suppressions.lock().unwrap().clone())
    }
    fn delete_suppression(&self, id: &str) -> Result<bool, BackendError> {
        let mut v = self.suppressions.lock().unwrap();
        let before = v.len();
        v.retain(|s| s.id != id);
        Ok(v.len() != before)
    }
    fn pool_ips(&self, _now: Timestamp) -> Result<Vec<PoolIp>, BackendError> {
        Ok(self.pool_ips.lock().unwrap().clone())
    }
}

pub fn detection(n: u32, client: &str, pool: &str, stage: Stage, risk: u8) -> Detection {
    let t = Timestamp::from_secs(1_795_723_200 + i64::from(n));
    serde_json::from_value(json!({
        "id": format!("det-{n:05}"),
        "client_ip": client,
        "stage": stage,
        "risk_score": risk,
        "pool_domain": pool,
        "query_names": [format!("pool.{pool}")],
        "pool_ips": ["203.0.113.10"],
        "dst_ports": [3333],
        "first_seen": t,
        "last_seen": t,
        "is_new": true,
        "evidence": [],
        "sources": ["pcap:sample.pcap"],
        "lists": [],
    }))
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// A real server
// ---------------------------------------------------------------------------------------------

/// A real API server over a real sled `store` (open access, empty lists).
pub fn serve_store(store: &poolwatch::store::Store) -> Serving {
    let (tx, _) = tokio::sync::broadcast::channel(4);
    let lists = matcher::shared(Blocklists::empty());
    let state = AppState::new(Arc::new(store.clone()), lists, tx, ApiOptions::default());
    Serving::start(http_support::runtime(), state)
}

pub struct Server {
    pub http: Serving,
    pub state: AppState,
    pub backend: Arc<MemBackend>,
}

impl Server {
    pub fn start(opts: ApiOptions) -> Server {
        let backend = Arc::new(MemBackend::default());
        let (tx, _) = tokio::sync::broadcast::channel(64);
        let lists = matcher::shared(Blocklists::builtin().unwrap());
        let state = AppState::new(backend.clone(), lists, tx, opts);
        Server {
            http: Serving::start(http_support::runtime(), state.clone()),
            state,
            backend,
        }
    }

    pub fn open() -> Server {
        Server::start(ApiOptions::default())
    }

    pub fn with_tokens() -> Server {
        Server::start(ApiOptions {
            tokens: Tokens {
                admin: Some(Secret::new(ADMIN)),
                read: Some(Secret::new(READ)),
            },
            ..ApiOptions::default()
        })
    }

    pub fn url(&self, path: &str) -> String {
        self.http.url(path)
    }

    /// Stops the server; returns how long the shutdown took.
    pub fn shutdown(&mut self) -> Duration {
        let t = Instant::now();
        self.http.shutdown().unwrap();
        t.elapsed()
    }
}

pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Asserts the response is the JSON error shape with this status and code; returns the message.
pub fn expect_error(resp: reqwest::blocking::Response, status: u16, code: &str) -> String {
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let v: Value = resp.json().unwrap();
    assert_eq!(v["error"]["code"], code, "{v}");
    let msg = v["error"]["message"].as_str().unwrap().to_string();
    assert!(!msg.is_empty());
    msg
}
