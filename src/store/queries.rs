//! Reads for the REST API: detection pages, flows of a detection, host timelines, pool
//! prevalence and addresses.

use super::*;

impl Store {
    // -----------------------------------------------------------------------------------------
    // Queries (REST API)
    // -----------------------------------------------------------------------------------------

    /// Detections matching `f`, newest (by first_seen) first. The cursor is a position in the
    /// index, so concurrent inserts never shift or repeat items already paged past.
    pub fn list_detections(
        &self,
        f: &DetectionFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Detection>, StoreError> {
        self.page_detections(f, limit, cursor, |id| {
            Ok(self.load(id)?.filter(|det| matches(f, det)))
        })
    }

    /// [`Store::list_detections`] as the stored JSON of each detection (the bytes written by
    /// [`Store::upsert_detection`], not decoded: the API serves them as they are). Without a
    /// filter nothing is decoded; with one, only the filtered fields are.
    pub fn list_detections_json(
        &self,
        f: &DetectionFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Vec<u8>>, StoreError> {
        let unfiltered = f.client.is_none()
            && f.pool.is_none()
            && f.stage.is_none()
            && f.min_risk.is_none()
            && f.since.is_none()
            && f.until.is_none()
            && f.suppressed.is_none();
        self.page_detections(f, limit, cursor, |id| {
            let Some(v) = self.inner.detections.get(id).map_err(db_err)? else {
                return Ok(None);
            };
            let Some(json) = v.get(keys::DET_HEADER_LEN..) else {
                return Err(corrupt_detection(id));
            };
            if !unfiltered {
                let view: FilterView<'_> =
                    serde_json::from_slice(json).map_err(|_| corrupt_detection(id))?;
                if !view.matches(f) {
                    return Ok(None);
                }
            }
            Ok(Some(json.to_vec()))
        })
    }

    /// One page of the detection index, newest first; `item` loads (and filters) one id.
    fn page_detections<T>(
        &self,
        f: &DetectionFilter,
        limit: usize,
        cursor: Option<&str>,
        mut item: impl FnMut(&[u8]) -> Result<Option<T>, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let single = f
            .client
            .filter(|n| n.prefix_len() == n.max_prefix_len())
            .map(|n| n.addr());
        let (tree, prefix, tag) = match (single, &self.inner.by_client) {
            (Some(ip), Some(t)) => (t, keys::ip(ip).to_vec(), 'c'),
            _ => (&self.inner.by_time, Vec::new(), 't'),
        };
        let upper = match cursor {
            Some(c) => {
                let mut chars = c.chars();
                if chars.next() != Some(tag) {
                    return Err(StoreError::BadCursor);
                }
                let k = keys::unhex(chars.as_str()).ok_or(StoreError::BadCursor)?;
                if !k.starts_with(&prefix) || k.len() != prefix.len() + keys::TS_LEN + keys::SEQ_LEN
                {
                    return Err(StoreError::BadCursor);
                }
                k
            }
            None => {
                let mut k = prefix.clone();
                k.extend_from_slice(&[0xff; keys::TS_LEN + keys::SEQ_LEN + 1]);
                k
            }
        };
        let mut items = Vec::new();
        let mut last_key: Option<Vec<u8>> = None;
        let mut more = false;
        for (scanned, entry) in tree.range(prefix.clone()..upper).rev().enumerate() {
            let (k, id) = entry.map_err(db_err)?;
            if items.len() == limit || scanned >= MAX_SCAN_PER_PAGE {
                more = true;
                break;
            }
            last_key = Some(k.to_vec());
            if let Some(it) = item(&id)? {
                items.push(it);
            }
        }
        let next_cursor = match (more, last_key) {
            (true, Some(k)) => Some(format!("{tag}{}", keys::hex(&k))),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    pub fn get_detection(&self, id: &str) -> Result<Option<Detection>, StoreError> {
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Ok(None);
        }
        self.load(id.as_bytes())
    }

    /// Every detection, oldest first (for `scan` output and exports).
    pub fn all_detections(&self) -> Result<Vec<Detection>, StoreError> {
        let mut out = Vec::new();
        for entry in self.inner.by_time.iter() {
            let (_, id) = entry.map_err(db_err)?;
            if let Some(d) = self.load(&id)? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// The flows recorded for one detection, in time order.
    pub fn detection_flows(&self, id: &str, limit: usize) -> Result<Vec<PoolFlow>, StoreError> {
        let mut out = Vec::new();
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Ok(out);
        }
        for entry in self
            .inner
            .flows
            .scan_prefix(keys::flow_prefix(id))
            .take(limit)
        {
            let (_, v) = entry.map_err(db_err)?;
            if let Ok(f) = serde_json::from_slice::<PoolFlow>(&v) {
                out.push(f);
            }
        }
        Ok(out)
    }

    /// The host's detections (newest first), bindings, and recent evidence as a timeline.
    pub fn host_timeline(&self, ip: IpAddr, limit: usize) -> Result<HostTimeline, StoreError> {
        let limit = limit.clamp(1, MAX_TIMELINE);
        let detections = self.client_detections(ip, limit)?;
        let mut bindings = Vec::new();
        for entry in self
            .inner
            .bindings
            .scan_prefix(keys::ip(ip))
            .take(MAX_TIMELINE)
        {
            let (_, v) = entry.map_err(db_err)?;
            if let Ok(b) = serde_json::from_slice::<Binding>(&v) {
                bindings.push(b);
            }
        }
        bindings.sort_by_key(|b| std::cmp::Reverse(b.last_seen));
        let mut timeline: Vec<Evidence> = Vec::new();
        let mut seen = HashSet::new();
        for d in &detections {
            for e in &d.evidence {
                if seen.insert(evidence_key(e)) {
                    timeline.push(e.clone());
                }
            }
            for f in self.detection_flows(&d.id, MAX_FLOWS_PER_DETECTION_VIEW)? {
                let e = flow_evidence(&f);
                if seen.insert(evidence_key(&e)) {
                    timeline.push(e);
                }
            }
        }
        timeline.sort_by_key(|e| std::cmp::Reverse(e.ts));
        timeline.truncate(limit);
        let first_seen = match &self.inner.hosts {
            Some(h) => h
                .get(keys::ip(ip))
                .map_err(db_err)?
                .and_then(|v| serde_json::from_slice::<HostRecord>(&v).ok())
                .map(|r| r.first_seen),
            None => detections.iter().map(|d| d.first_seen).min(),
        };
        Ok(HostTimeline {
            ip,
            first_seen,
            detections,
            bindings,
            timeline,
        })
    }

    /// Pool entries seen, with prevalence (distinct clients), strongest stage and times.
    pub fn pools(&self) -> Result<Vec<PoolSummary>, StoreError> {
        struct Agg {
            s: PoolSummary,
            clients: BTreeSet<IpAddr>,
        }
        let mut by: BTreeMap<String, Agg> = BTreeMap::new();
        for entry in self.inner.detections.iter() {
            let (_, v) = entry.map_err(db_err)?;
            let Some((_, _, d)) = migrate::decode_detection(&v) else {
                continue;
            };
            let hit = d.lists.iter().find(|h| h.entry == d.pool_domain);
            let a = by.entry(d.pool_domain.clone()).or_insert_with(|| Agg {
                s: PoolSummary {
                    pool_domain: d.pool_domain.clone(),
                    category: hit.map(|h| h.category),
                    list: hit.map(|h| h.list.clone()),
                    clients: 0,
                    detections: 0,
                    strongest_stage: d.stage,
                    first_seen: d.first_seen,
                    last_seen: d.last_seen,
                },
                clients: BTreeSet::new(),
            });
            a.clients.insert(d.client_ip);
            a.s.detections += 1;
            a.s.strongest_stage = a.s.strongest_stage.max(d.stage);
            a.s.first_seen = a.s.first_seen.min(d.first_seen);
            a.s.last_seen = a.s.last_seen.max(d.last_seen);
            if a.s.category.is_none() {
                a.s.category = hit.map(|h| h.category);
                a.s.list = hit.map(|h| h.list.clone());
            }
        }
        let mut out: Vec<PoolSummary> = by
            .into_values()
            .map(|mut a| {
                a.s.clients = a.clients.len() as u64;
                a.s
            })
            .collect();
        out.sort_by(|a, b| {
            b.clients
                .cmp(&a.clients)
                .then(b.last_seen.cmp(&a.last_seen))
                .then(a.pool_domain.cmp(&b.pool_domain))
        });
        Ok(out)
    }

    /// Addresses currently bound to pool lookups (binding not yet expired at `now`).
    pub fn pool_ips(&self, now: Timestamp) -> Result<Vec<PoolIp>, StoreError> {
        struct Agg {
            domains: BTreeSet<String>,
            clients: BTreeSet<IpAddr>,
            last_seen: Timestamp,
            expires: Timestamp,
        }
        let mut by: BTreeMap<IpAddr, Agg> = BTreeMap::new();
        for entry in self.inner.bindings.iter() {
            let (_, v) = entry.map_err(db_err)?;
            let Ok(b) = serde_json::from_slice::<Binding>(&v) else {
                continue;
            };
            if b.expires <= now {
                continue;
            }
            let a = by.entry(b.ip).or_insert(Agg {
                domains: BTreeSet::new(),
                clients: BTreeSet::new(),
                last_seen: b.last_seen,
                expires: b.expires,
            });
            a.domains.insert(b.pool_domain);
            a.clients.insert(b.client);
            a.last_seen = a.last_seen.max(b.last_seen);
            a.expires = a.expires.max(b.expires);
        }
        Ok(by
            .into_iter()
            .map(|(ip, a)| PoolIp {
                ip,
                pool_domains: a.domains.into_iter().collect(),
                clients: a.clients.len() as u64,
                last_seen: a.last_seen,
                expires: a.expires,
            })
            .collect())
    }

    /// The per-host record (first/last mining detection), if any.
    pub fn host_record(&self, ip: IpAddr) -> Result<Option<HostRecord>, StoreError> {
        let Some(h) = &self.inner.hosts else {
            return Ok(None);
        };
        Ok(h.get(keys::ip(ip))
            .map_err(db_err)?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    // -----------------------------------------------------------------------------------------
    // Internals
    // -----------------------------------------------------------------------------------------

    pub(super) fn load(&self, id: &[u8]) -> Result<Option<Detection>, StoreError> {
        let Some(v) = self.inner.detections.get(id).map_err(db_err)? else {
            return Ok(None);
        };
        match migrate::decode_detection(&v) {
            Some((_, _, d)) => Ok(Some(d)),
            None => Err(StoreError::Corrupt {
                tree: TREE_DETECTIONS,
                message: format!("undecodable detection {}", String::from_utf8_lossy(id)),
            }),
        }
    }

    pub(super) fn client_detections(
        &self,
        ip: IpAddr,
        limit: usize,
    ) -> Result<Vec<Detection>, StoreError> {
        let mut out = Vec::new();
        match &self.inner.by_client {
            Some(t) => {
                for entry in t.scan_prefix(keys::ip(ip)).rev().take(limit) {
                    let (_, id) = entry.map_err(db_err)?;
                    if let Some(d) = self.load(&id)? {
                        out.push(d);
                    }
                }
            }
            None => {
                for entry in self.inner.by_time.iter().rev() {
                    let (_, id) = entry.map_err(db_err)?;
                    if let Some(d) = self.load(&id)? {
                        if d.client_ip == ip {
                            out.push(d);
                            if out.len() >= limit {
                                break;
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

fn corrupt_detection(id: &[u8]) -> StoreError {
    StoreError::Corrupt {
        tree: TREE_DETECTIONS,
        message: format!("undecodable detection {}", String::from_utf8_lossy(id)),
    }
}

/// The fields of a stored detection that [`DetectionFilter`] looks at (the rest is skipped,
/// not decoded); the same tests as [`matches`].
#[derive(serde::Deserialize)]
struct FilterView<'a> {
    client_ip: IpAddr,
    #[serde(borrow)]
    pool_domain: std::borrow::Cow<'a, str>,
    stage: Stage,
    risk_score: u8,
    first_seen: Timestamp,
    last_seen: Timestamp,
    #[serde(default)]
    suppressed: bool,
}

impl FilterView<'_> {
    fn matches(&self, f: &DetectionFilter) -> bool {
        f.client.is_none_or(|n| n.contains(&self.client_ip))
            && f.pool
                .as_deref()
                .is_none_or(|p| p.eq_ignore_ascii_case(&self.pool_domain))
            && f.stage.is_none_or(|s| s == self.stage)
            && f.min_risk.is_none_or(|m| self.risk_score >= m)
            && f.since.is_none_or(|t| self.last_seen >= t)
            && f.until.is_none_or(|t| self.first_seen <= t)
            && f.suppressed.is_none_or(|s| s == self.suppressed)
    }
}

fn matches(f: &DetectionFilter, d: &Detection) -> bool {
    f.client.is_none_or(|n| n.contains(&d.client_ip))
        && f.pool
            .as_deref()
            .is_none_or(|p| p.eq_ignore_ascii_case(&d.pool_domain))
        && f.stage.is_none_or(|s| s == d.stage)
        && f.min_risk.is_none_or(|m| d.risk_score >= m)
        && f.since.is_none_or(|t| d.last_seen >= t)
        && f.until.is_none_or(|t| d.first_seen <= t)
        && f.suppressed.is_none_or(|s| s == d.suppressed)
}

fn evidence_key(e: &Evidence) -> (Timestamp, Option<u16>, Option<IpAddr>, Option<u16>, u8) {
    let k = match e.kind {
        EvidenceKind::DnsLookup | EvidenceKind::DnsBlocked => 0,
        _ => 1,
    };
    (e.ts, e.src_port, e.dst, e.dst_port, k)
}

fn flow_evidence(f: &PoolFlow) -> Evidence {
    let kind = if f.stratum_method.is_some() {
        EvidenceKind::Stratum
    } else if f.sni.is_some() {
        EvidenceKind::TlsSni
    } else {
        EvidenceKind::Flow
    };
    let mut e = Evidence::new(
        f.start,
        kind,
        f.source.clone(),
        format!(
            "{} {}:{} -> {}:{} {}, {} B out / {} B in, {} ms",
            match f.proto {
                crate::model::Proto::Tcp => "tcp",
                crate::model::Proto::Udp => "udp",
            },
            f.client,
            f.src_port,
            f.dst,
            f.dst_port,
            match f.state {
                crate::model::FlowState::Attempted => "attempted",
                crate::model::FlowState::Rejected => "rejected",
                crate::model::FlowState::Established => "established",
                crate::model::FlowState::Closed => "closed",
            },
            f.bytes_out,
            f.bytes_in,
            f.duration_ms
        ),
    );
    e.dst = Some(f.dst);
    e.dst_port = Some(f.dst_port);
    e.src_port = Some(f.src_port);
    e.state = Some(f.state);
    e.bytes_out = Some(f.bytes_out);
    e.bytes_in = Some(f.bytes_in);
    e.duration_ms = Some(f.duration_ms);
    e.agent = f.agent.clone();
    e.method = f.stratum_method.clone();
    e
}
