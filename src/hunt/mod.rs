//! Feature `hunt`: the DNS and flow history, and the retro-hunt over it (issue #18).
//!
//! Pool lists lag the miners. The [`Recorder`] keeps a compact per-day history of every
//! lookup (per name with reversed labels, per client) and flow (per destination, port and
//! client) the pipeline sees, in the store's `hist_*` trees through the [`HistoryKv`] port,
//! bounded by a retention and a byte cap. When the list set gains entries, the
//! [`RetroWorker`] searches the history for them and replays what it finds through a fresh
//! `correlate::Engine` ([`retro_hunt`]); the detections come out marked `retro` and are merged
//! into the store through `ports::RetroSink`. [`Hunter`] answers "what does the history hold for
//! this name / address?" (`GET /api/v1/hunt`, `poolwatch hunt`) without creating anything.
//!
//! * [`encode`] — key and value layouts (sizes in `docs/hunt.md`).
//! * [`recorder`] — aggregation, flush (merge with stored rows), retention, byte cap, folding.
//! * [`search`] — reading the history for a domain or address.
//! * [`retro`] — synthesising observations, the engine run, the worker.
//!
//! Design and measurements: `docs/hunt.md`.

pub mod encode;
mod metrics;
pub mod recorder;
pub mod retro;
pub mod search;

use std::collections::BTreeSet;
use std::sync::Arc;

pub use recorder::{
    HistoryConfig, Recorder, DEFAULT_MAX_BYTES, DEFAULT_RETENTION_DAYS, DISK_SLACK_BYTES,
    MAX_NAMES_PER_ZONE_DAY, MAX_PENDING_ROWS,
};
pub use retro::{
    added_entries, retro_hunt, RetroDeps, RetroEngine, RetroReport, RetroWorker, SuppressionRules,
};
pub use search::Target;

use crate::ports::{
    HistoryKv, HuntFlow, HuntLookup, HuntQuery, HuntQueryError, HuntReport, HuntRequest,
};

/// Errors of the hunt layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HuntError {
    #[error("history store: {0}")]
    Store(String),
    #[error("{0}")]
    Invalid(String),
}

/// Rows of each kind a hunt report returns at most.
pub const MAX_REPORT_ROWS: usize = 10_000;
/// Distinct names / clients listed in a report at most.
pub const MAX_REPORT_DISTINCT: usize = 1_000;

/// Answers hunt requests from the history.
pub struct Hunter {
    kv: Arc<dyn HistoryKv>,
    recorder: Option<Arc<Recorder>>,
}

impl Hunter {
    /// `recorder`: flushed before each hunt so that the answer includes the last seconds.
    pub fn new(kv: Arc<dyn HistoryKv>, recorder: Option<Arc<Recorder>>) -> Hunter {
        Hunter { kv, recorder }
    }

    pub fn hunt_target(&self, req: &HuntRequest) -> Result<HuntReport, HuntError> {
        let target = Target::parse(&req.target).map_err(HuntError::Invalid)?;
        if let Some(r) = &self.recorder {
            r.flush()?;
        }
        let from = req.since.map_or(0, encode::day_of);
        let days = search::days_between(self.kv.as_ref(), from, u32::MAX)?;
        let found = search::collect(self.kv.as_ref(), &target, &days)?;
        let limit = req.limit.clamp(1, MAX_REPORT_ROWS);
        let since = req.since.unwrap_or(crate::model::Timestamp::MIN);
        let mut rep = HuntReport {
            target: req.target.clone(),
            kind: match target {
                Target::Domain(_) => "domain".into(),
                Target::Net(..) => "address".into(),
            },
            from_day: days.first().map(|d| encode::day_label(*d)),
            to_day: days.last().map(|d| encode::day_label(*d)),
            truncated: found.truncated,
            ..HuntReport::default()
        };
        let mut names = BTreeSet::new();
        let mut clients = BTreeSet::new();
        for l in &found.lookups {
            let last = encode::at(l.day, l.row.last_ms);
            if last < since {
                continue;
            }
            if rep.lookups.len() >= limit {
                rep.truncated = true;
                break;
            }
            names.insert(l.qname.clone());
            clients.insert(l.client);
            rep.lookups.push(HuntLookup {
                day: encode::day_label(l.day),
                name: l.qname.clone(),
                client: l.client,
                first: encode::at(l.day, l.row.first_ms),
                last,
                count: l.row.count,
                rcode: l.row.rcode.map(|c| crate::model::Rcode(c).to_string()),
                answers: l
                    .summary
                    .as_ref()
                    .map(|s| s.answers.clone())
                    .unwrap_or_default(),
                via_cname: l.via_cname.clone(),
                folded: l.folded,
            });
        }
        for f in &found.flows {
            let last = encode::at(f.key.day, f.summary.last_ms);
            if last < since {
                continue;
            }
            if rep.flows.len() >= limit {
                rep.truncated = true;
                break;
            }
            clients.insert(f.key.client);
            let s = &f.summary;
            rep.flows.push(HuntFlow {
                day: encode::day_label(f.key.day),
                client: f.key.client,
                dst: f.key.dst,
                dst_port: f.key.port,
                proto: if f.key.tcp {
                    "tcp".into()
                } else {
                    "udp".into()
                },
                first: encode::at(f.key.day, s.first_ms),
                last,
                count: s.count,
                established: s.established,
                bytes_out: s.bytes_out,
                bytes_in: s.bytes_in,
                stratum: s.stratum,
                sni: s.sni.clone().or_else(|| s.http_host.clone()),
                why: f.why.as_str().into(),
            });
        }
        rep.truncated |= names.len() > MAX_REPORT_DISTINCT || clients.len() > MAX_REPORT_DISTINCT;
        rep.names = names.into_iter().take(MAX_REPORT_DISTINCT).collect();
        rep.clients = clients.into_iter().take(MAX_REPORT_DISTINCT).collect();
        Ok(rep)
    }
}

impl HuntQuery for Hunter {
    fn hunt(&self, req: &HuntRequest) -> Result<HuntReport, HuntQueryError> {
        self.hunt_target(req).map_err(|e| match e {
            HuntError::Invalid(m) => HuntQueryError::Invalid(m),
            HuntError::Store(m) => HuntQueryError::Store(m),
        })
    }
}
