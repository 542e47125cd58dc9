//! The value encodings of the history rows: per-name summaries and client rows, their blocks,
//! flow summaries and blocks, server rows and the per-day byte counts (`docs/hunt.md`).

use std::net::IpAddr;

use super::*;
/// Per (day, name): what the name was and resolved to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameSummary {
    pub first_ms: u32,
    pub last_ms: u32,
    pub count: u64,
    /// Distinct clients that looked the name up (in this block; exact once the day is
    /// compacted).
    pub clients: u64,
    /// Smallest A/AAAA TTL seen (0: none carried).
    pub min_ttl: u32,
    /// A response with answers was seen (the answers are known, not merely absent).
    pub answered: bool,
    /// Last response code (`None`: never seen).
    pub rcode: Option<u16>,
    /// CNAME/DNAME chain from this name, in order (bounded).
    pub cnames: Vec<String>,
    /// A/AAAA answer addresses (bounded sample, first seen kept).
    pub answers: Vec<IpAddr>,
}

impl NameSummary {
    fn put(&self, v: &mut Vec<u8>) {
        v.extend_from_slice(&self.first_ms.to_be_bytes());
        put_varint(v, u64::from(self.last_ms.saturating_sub(self.first_ms)));
        put_varint(v, self.count);
        put_varint(v, self.clients);
        put_varint(v, u64::from(self.min_ttl));
        v.push(u8::from(self.answered));
        put_rcode(v, self.rcode);
        v.push(self.cnames.len().min(255) as u8);
        for c in self.cnames.iter().take(255) {
            put_str(v, c, MAX_NAME_LEN);
        }
        v.push(self.answers.len().min(255) as u8);
        for a in self.answers.iter().take(255) {
            put_ip(v, *a);
        }
    }

    fn get(r: &mut Reader<'_>) -> Option<NameSummary> {
        let first_ms = r.u32()?;
        let last_ms = first_ms.saturating_add(u32::try_from(r.varint()?).ok()?);
        let count = r.varint()?;
        let clients = r.varint()?;
        let min_ttl = u32::try_from(r.varint()?).ok()?;
        let answered = r.u8()? != 0;
        let rcode = get_rcode(r)?;
        let n = r.u8()?;
        let mut cnames = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            cnames.push(r.string()?);
        }
        let n = r.u8()?;
        let mut answers = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            answers.push(r.ip()?);
        }
        Some(NameSummary {
            first_ms,
            last_ms,
            count,
            clients,
            min_ttl,
            answered,
            rcode,
            cnames,
            answers,
        })
    }
}

fn put_rcode(v: &mut Vec<u8>, rcode: Option<u16>) {
    match rcode {
        None => put_varint(v, 0),
        Some(c) => put_varint(v, u64::from(c) + 1),
    }
}

fn get_rcode(r: &mut Reader<'_>) -> Option<Option<u16>> {
    match r.varint()? {
        0 => Some(None),
        n => Some(Some(u16::try_from(n - 1).ok()?)),
    }
}

/// Per (day, name, client): a lookup, a lookup through a CNAME, or a flow that named it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientRow {
    pub first_ms: u32,
    pub last_ms: u32,
    pub count: u64,
    /// Lookups: last response code; `None` when no response was seen.
    pub rcode: Option<u16>,
    /// Lookups: query types asked (bit 0 A, bit 1 AAAA, bit 2 anything else).
    pub qtypes: u8,
    /// [`KIND_VIA_CNAME`]: the name the client asked for.
    pub qname: Option<String>,
    /// [`KIND_FLOW_NAME`]: the flow (destination, port, TCP) and whether the name was the SNI
    /// (else the HTTP Host).
    pub flow: Option<(IpAddr, u16, bool)>,
    pub sni: bool,
}

pub const QTYPE_A: u8 = 1;
pub const QTYPE_AAAA: u8 = 2;
pub const QTYPE_OTHER: u8 = 4;

impl ClientRow {
    fn put(&self, kind: u8, v: &mut Vec<u8>) {
        v.extend_from_slice(&self.first_ms.to_be_bytes());
        put_varint(v, u64::from(self.last_ms.saturating_sub(self.first_ms)));
        put_varint(v, self.count);
        match kind {
            KIND_FLOW_NAME => {
                let (dst, port, tcp) =
                    self.flow
                        .unwrap_or((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0, true));
                put_ip(v, dst);
                v.extend_from_slice(&port.to_be_bytes());
                v.push(u8::from(tcp) | (u8::from(self.sni) << 1));
            }
            _ => {
                put_rcode(v, self.rcode);
                v.push(self.qtypes);
                if kind == KIND_VIA_CNAME {
                    put_str(v, self.qname.as_deref().unwrap_or(""), MAX_NAME_LEN);
                }
            }
        }
    }

    fn get(kind: u8, r: &mut Reader<'_>) -> Option<ClientRow> {
        let first_ms = r.u32()?;
        let last_ms = first_ms.saturating_add(u32::try_from(r.varint()?).ok()?);
        let count = r.varint()?;
        let mut row = ClientRow {
            first_ms,
            last_ms,
            count,
            ..ClientRow::default()
        };
        match kind {
            KIND_FLOW_NAME => {
                let dst = r.ip()?;
                let port = r.u16()?;
                let flags = r.u8()?;
                row.flow = Some((dst, port, flags & 1 != 0));
                row.sni = flags & 2 != 0;
            }
            KIND_LOOKUP | KIND_VIA_CNAME => {
                row.rcode = get_rcode(r)?;
                row.qtypes = r.u8()?;
                if kind == KIND_VIA_CNAME {
                    row.qname = Some(r.string()?);
                }
            }
            _ => return None,
        }
        Some(row)
    }
}

/// One client entry of a name block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientEntry {
    /// [`KIND_LOOKUP`], [`KIND_VIA_CNAME`] or [`KIND_FLOW_NAME`].
    pub kind: u8,
    pub client: IpAddr,
    pub row: ClientRow,
}

/// The value of a names-tree row: the name's summary (when it was looked up itself) and its
/// client entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameBlock {
    pub summary: Option<NameSummary>,
    pub clients: Vec<ClientEntry>,
}

impl NameBlock {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(32 + self.clients.len() * 16);
        v.push(VALUE_V2);
        match &self.summary {
            Some(s) => {
                v.push(1);
                s.put(&mut v);
            }
            None => v.push(0),
        }
        put_varint(&mut v, self.clients.len() as u64);
        for e in &self.clients {
            v.push(e.kind);
            put_ip(&mut v, e.client);
            e.row.put(e.kind, &mut v);
        }
        v
    }

    pub fn decode(b: &[u8]) -> Option<NameBlock> {
        let mut r = Reader::new(b);
        if r.u8()? != VALUE_V2 {
            return None;
        }
        let summary = match r.u8()? {
            0 => None,
            1 => Some(NameSummary::get(&mut r)?),
            _ => return None,
        };
        let n = r.varint()?;
        // Every entry takes at least 8 bytes: a count beyond that is corrupt, not an allocation.
        if n > (b.len() / 8) as u64 {
            return None;
        }
        let mut clients = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let kind = r.u8()?;
            let client = r.ip()?;
            let row = ClientRow::get(kind, &mut r)?;
            clients.push(ClientEntry { kind, client, row });
        }
        Some(NameBlock { summary, clients })
    }
}

/// Per (day, destination, port, protocol, client): the flows' summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowSummary {
    pub first_ms: u32,
    pub last_ms: u32,
    /// Flows (final reports; a flow seen only in progress counts once).
    pub count: u64,
    pub established: bool,
    pub rejected: bool,
    pub stratum: bool,
    pub tls: bool,
    pub bytes_out: u64,
    pub bytes_in: u64,
    /// Source port of the first flow.
    pub src_port: u16,
    pub sni: Option<String>,
    pub http_host: Option<String>,
    pub stratum_method: Option<String>,
    pub agent: Option<String>,
}

impl FlowSummary {
    fn put(&self, v: &mut Vec<u8>) {
        v.extend_from_slice(&self.first_ms.to_be_bytes());
        put_varint(v, u64::from(self.last_ms.saturating_sub(self.first_ms)));
        put_varint(v, self.count);
        let flags = u8::from(self.established)
            | u8::from(self.rejected) << 1
            | u8::from(self.stratum) << 2
            | u8::from(self.tls) << 3
            | u8::from(self.sni.is_some()) << 4
            | u8::from(self.http_host.is_some()) << 5
            | u8::from(self.stratum_method.is_some()) << 6
            | u8::from(self.agent.is_some()) << 7;
        v.push(flags);
        put_varint(v, self.bytes_out);
        put_varint(v, self.bytes_in);
        v.extend_from_slice(&self.src_port.to_be_bytes());
        for s in [&self.sni, &self.http_host, &self.stratum_method]
            .into_iter()
            .flatten()
        {
            put_str(v, s, MAX_FLOW_NAME_LEN);
        }
        if let Some(a) = &self.agent {
            put_str(v, a, MAX_AGENT_LEN);
        }
    }

    fn get(r: &mut Reader<'_>) -> Option<FlowSummary> {
        let first_ms = r.u32()?;
        let last_ms = first_ms.saturating_add(u32::try_from(r.varint()?).ok()?);
        let count = r.varint()?;
        let flags = r.u8()?;
        let bytes_out = r.varint()?;
        let bytes_in = r.varint()?;
        let src_port = r.u16()?;
        let mut opt = |bit: u8| -> Option<Option<String>> {
            if flags & (1 << bit) != 0 {
                Some(Some(r.string()?))
            } else {
                Some(None)
            }
        };
        let sni = opt(4)?;
        let http_host = opt(5)?;
        let stratum_method = opt(6)?;
        let agent = opt(7)?;
        Some(FlowSummary {
            first_ms,
            last_ms,
            count,
            established: flags & 1 != 0,
            rejected: flags & 2 != 0,
            stratum: flags & 4 != 0,
            tls: flags & 8 != 0,
            bytes_out,
            bytes_in,
            src_port,
            sni,
            http_host,
            stratum_method,
            agent,
        })
    }
}

/// One entry of a flow block: a client's flows to the block's destination on one port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowEntry {
    pub port: u16,
    pub tcp: bool,
    pub client: IpAddr,
    pub summary: FlowSummary,
}

impl FlowEntry {
    /// From the (port, tcp, client) key the recorder and the compaction aggregate under.
    pub fn from_keyed(((port, tcp, client), summary): ((u16, bool, IpAddr), FlowSummary)) -> Self {
        FlowEntry {
            port,
            tcp,
            client,
            summary,
        }
    }
}

/// The value of a flows-tree row: every (port, protocol, client) summary of one destination.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowBlock {
    pub flows: Vec<FlowEntry>,
}

impl FlowBlock {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(8 + self.flows.len() * 24);
        v.push(VALUE_V2);
        put_varint(&mut v, self.flows.len() as u64);
        for f in &self.flows {
            v.extend_from_slice(&f.port.to_be_bytes());
            v.push(u8::from(f.tcp));
            put_ip(&mut v, f.client);
            f.summary.put(&mut v);
        }
        v
    }

    pub fn decode(b: &[u8]) -> Option<FlowBlock> {
        let mut r = Reader::new(b);
        if r.u8()? != VALUE_V2 {
            return None;
        }
        let n = r.varint()?;
        if n > (b.len() / 16) as u64 {
            return None;
        }
        let mut flows = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let port = r.u16()?;
            let tcp = r.u8()? != 0;
            let client = r.ip()?;
            let summary = FlowSummary::get(&mut r)?;
            flows.push(FlowEntry {
                port,
                tcp,
                client,
                summary,
            });
        }
        Some(FlowBlock { flows })
    }
}

/// Per (day, DNS server): distinct clients it answered (bounded sample; enough to apply the
/// resolver rule, which needs a handful).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerRow {
    pub clients: Vec<IpAddr>,
}

impl ServerRow {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![VALUE_V1, self.clients.len().min(255) as u8];
        for c in self.clients.iter().take(255) {
            put_ip(&mut v, *c);
        }
        v
    }
    pub fn decode(b: &[u8]) -> Option<ServerRow> {
        let mut r = Reader::new(b);
        if r.u8()? != VALUE_V1 {
            return None;
        }
        let n = r.u8()?;
        let mut clients = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            clients.push(r.ip()?);
        }
        Some(ServerRow { clients })
    }
}

/// A `hist_days` row: the day's counted bytes (keys + values + per-row overhead, the byte
/// cap's measure), whether it was compacted since it last took rows, the generation of its
/// pages (0: none) and the highest block number those pages cover (blocks numbered at or
/// below it are superseded and ignored by readers until the compaction removes them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayValue {
    pub bytes: u64,
    pub compacted: bool,
    pub gen: u32,
    pub covered: u64,
}

/// The value of a `hist_days` row (21 bytes; 8 in schema 2, 9 in schema 3).
pub fn day_value(d: &DayValue) -> Vec<u8> {
    let mut v = d.bytes.to_be_bytes().to_vec();
    v.push(u8::from(d.compacted));
    v.extend_from_slice(&d.gen.to_be_bytes());
    v.extend_from_slice(&d.covered.to_be_bytes());
    v
}

/// A `hist_days` value of any schema (8 bytes: schema 2, never compacted; 9: schema 3, no
/// pages).
pub fn parse_day_value(v: &[u8]) -> Option<DayValue> {
    let bytes = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
    let compacted = v.get(8).is_some_and(|&b| b != 0);
    let (gen, covered) = match v.get(9..21) {
        Some(t) => (
            u32::from_be_bytes(t.get(..4)?.try_into().ok()?),
            u64::from_be_bytes(t.get(4..)?.try_into().ok()?),
        ),
        None => (0, 0),
    };
    Some(DayValue {
        bytes,
        compacted,
        gen,
        covered,
    })
}
