//! One dnsmasq transaction while its lines are read, and the rules that apply an answer line
//! to it (the full reading, [`apply`], and the lite one, [`apply_lite`]).
//!
//! Transactions live in a [`Slab`] of at most the pending table's cap plus two (the current
//! transaction and one in transit) and stay in place: the pending table, the current
//! transaction and the emitter pass slot numbers, not values (issue #16: a ≈ 250-byte value
//! moved into and out of the table was 5.5 % of a dnsmasq scan). A slot keeps its query-name
//! buffer when it is reused, so a transaction costs no allocation until it is emitted as an
//! observation. The lite reading's kept lines ([`Lite`]) belong to the current transaction
//! alone: only it reads answer lines, so one buffer serves every transaction in turn.

use std::net::{IpAddr, Ipv4Addr};

use super::super::unbound::name_eq;
use super::super::{lex, Prefilter};
use crate::model::{DnsAnswer, DnsObservation, Rcode, RrType, Source, Timestamp, Transport};

/// Most addresses a lite transaction keeps; one more turns it into a full transaction.
pub(super) const MAX_LITE_IPS: usize = 64;
/// Most bytes of answer lines a lite transaction keeps; more turn it into a full transaction.
pub(super) const MAX_LITE_BYTES: usize = 4096;

/// A transaction: what its query line said and what its answer lines said so far.
pub(super) struct Tx {
    pub ts: Timestamp,
    pub client: IpAddr,
    pub client_port: Option<u16>,
    pub transport: Transport,
    pub qtype: RrType,
    pub query_seen: bool,
    /// The normalised query name (`lex::name`); the buffer is kept when the slot is reused.
    pub qname: String,
    pub key: u64,
    pub rcode: Option<Rcode>,
    pub answers: Vec<DnsAnswer>,
    /// Owner of a `<CNAME>` line whose target (the next line's name) is not known yet.
    pub cname_owner: Option<String>,
    pub replied: bool,
    /// Put back to wait after a partial cached answer (a chain ending in `<CNAME>`, which
    /// dnsmasq completes by forwarding): the next answer lines repeat the chain in full.
    pub reopened: bool,
    pub restart: bool,
    /// An address, rcode or NODATA line was seen: the answer is complete even if a `<CNAME>`
    /// line is left without a target.
    pub terminal: bool,
    /// Read lite (module doc of `dnsmasq`): the query name is not listed, `answers` is empty
    /// and, while it is the current transaction, its answer lines are in the reader's [`Lite`].
    pub lite: bool,
}

impl Tx {
    fn empty() -> Tx {
        Tx {
            ts: Timestamp(0),
            client: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            client_port: None,
            transport: Transport::Unknown,
            qtype: RrType(0),
            query_seen: true,
            qname: String::new(),
            key: 0,
            rcode: None,
            answers: Vec::new(),
            cname_owner: None,
            replied: false,
            reopened: false,
            restart: false,
            terminal: false,
            lite: false,
        }
    }

    /// A new transaction in this slot (the name buffer is kept, emptied).
    fn reset(&mut self) {
        let mut qname = std::mem::take(&mut self.qname);
        qname.clear();
        *self = Tx {
            qname,
            ..Tx::empty()
        };
    }

    /// The observation as it stands (what the query line and the applied lines gave).
    pub fn observation(&mut self, source: &Source) -> DnsObservation {
        DnsObservation {
            ts: self.ts,
            client: self.client,
            client_port: self.client_port,
            server: None,
            server_port: None,
            transport: self.transport,
            id: None,
            qname: self.qname.clone(),
            qtype: self.qtype,
            rcode: self.rcode,
            answers: std::mem::take(&mut self.answers),
            answers_known: false,
            query_seen: self.query_seen,
            rtt_us: None,
            truncated: false,
            salvaged: None,
            source: source.clone(),
        }
    }

    /// The finished observation; `lines` are its kept lite lines (empty unless it is the
    /// current transaction).
    pub fn finish(&mut self, lines: &[u8], source: &Source) -> DnsObservation {
        self.upgrade(lines);
        let mut obs = self.observation(source);
        obs.answers_known = self.replied;
        if self.replied && obs.rcode.is_none() {
            obs.rcode = Some(Rcode::NOERROR);
        }
        obs
    }

    /// Whether a `<CNAME>` line waits for its target (`lite`: the current transaction's).
    pub fn chain_open(&self, lite: &Lite) -> bool {
        self.cname_owner.is_some() || (self.lite && lite.owner.is_some())
    }

    /// Whether the last answer (the full reading's) is named `name`.
    pub fn last_answer_is(&self, lite: &Lite, name: &[u8]) -> bool {
        if self.lite {
            lite.last.is_some_and(|r| same_name(lite.name(r), name))
        } else {
            self.answers.last().is_some_and(|a| name_eq(&a.name, name))
        }
    }

    /// A lite transaction becomes a full one: its kept `lines` are applied from the state its
    /// query line left (nothing answered), which gives the full reading's state. The caller
    /// empties the [`Lite`] the lines came from.
    pub fn upgrade(&mut self, lines: &[u8]) {
        if !self.lite {
            return;
        }
        self.lite = false;
        self.replied = false;
        self.terminal = false;
        self.cname_owner = None;
        self.rcode = None;
        self.answers.clear();
        let mut tokens = lines.split(|c| *c == b' ');
        while let (Some(name), Some(data)) = (tokens.next(), tokens.next()) {
            apply(self, name, &classify(data));
        }
    }
}

/// What the current lite transaction keeps of its answer lines.
#[derive(Default)]
pub(super) struct Lite {
    /// The addresses of its address lines, in order (the engine is asked about them).
    pub ips: Vec<IpAddr>,
    /// Its answer lines as `NAME DATA ` (neither token holds a space), in order: replayed by
    /// [`Tx::upgrade`]. At most [`MAX_LITE_BYTES`].
    pub lines: Vec<u8>,
    /// The name (a range of `lines`) of a `<CNAME>` owner whose target is not known yet: the
    /// full reading's `Tx::cname_owner`.
    pub owner: Option<(usize, usize)>,
    /// The name of the last answer the full reading holds (`answers.last().name`).
    pub last: Option<(usize, usize)>,
}

impl Lite {
    fn name(&self, r: (usize, usize)) -> &[u8] {
        self.lines.get(r.0..r.1).unwrap_or(&[])
    }

    /// Emptied for the next transaction (the buffers are kept).
    pub fn clear(&mut self) {
        self.ips.clear();
        self.lines.clear();
        self.owner = None;
        self.last = None;
    }
}

/// The transactions of one reader, in place; a slot number is a transaction's handle.
pub(super) struct Slab {
    txs: Vec<Tx>,
    free: Vec<u32>,
    cap: usize,
}

impl Slab {
    /// At most `cap` transactions at once.
    pub fn new(cap: usize) -> Slab {
        Slab {
            txs: Vec::new(),
            free: Vec::new(),
            cap: cap.clamp(1, u32::MAX as usize),
        }
    }

    /// A slot holding an empty transaction (its name buffer kept); `None` when `cap` slots are
    /// in use.
    pub fn alloc(&mut self) -> Option<u32> {
        if let Some(i) = self.free.pop() {
            if let Some(tx) = self.txs.get_mut(i as usize) {
                tx.reset();
                return Some(i);
            }
        }
        if self.txs.len() >= self.cap {
            return None;
        }
        let i = u32::try_from(self.txs.len()).ok()?;
        self.txs.push(Tx::empty());
        Some(i)
    }

    pub fn get(&self, i: u32) -> Option<&Tx> {
        self.txs.get(i as usize)
    }

    pub fn get_mut(&mut self, i: u32) -> Option<&mut Tx> {
        self.txs.get_mut(i as usize)
    }

    /// Slots made so far (in use or free): never more than the cap.
    #[cfg(test)]
    pub fn txs_len(&self) -> usize {
        self.txs.len()
    }

    /// The slot is free again (its transaction was emitted or skipped).
    pub fn release(&mut self, i: u32) {
        if (i as usize) < self.txs.len() {
            self.free.push(i);
        }
    }
}

/// Whether two raw names normalise to the same name, for `a` a name the lite reading admitted
/// (ASCII; without its trailing dot non-empty and not ending in a dot, so it normalises to
/// its lowercase form without that dot) and any `b` — `name_eq(&normalize_name(a), b)`.
fn same_name(a: &[u8], b: &[u8]) -> bool {
    let a = a.strip_suffix(b".").unwrap_or(a);
    let b = b.strip_suffix(b".").unwrap_or(b);
    a.eq_ignore_ascii_case(b)
}

/// The answer of an address line (the address's text kept as logged when it is canonical).
fn answer(name: String, ip: &IpAddr, text: &[u8]) -> DnsAnswer {
    let data = match lex::as_str(text) {
        Some(t) if ip.is_ipv4() || !t.contains(|c: char| c.is_ascii_uppercase()) => t.to_string(),
        _ => ip.to_string(),
    };
    DnsAnswer {
        name,
        rtype: if ip.is_ipv4() {
            RrType::A
        } else {
            RrType::AAAA
        },
        ttl: None,
        data,
    }
}

/// What an answer line says.
pub(super) enum Data<'a> {
    Cname,
    /// The address and its text as logged (inet_ntop output: already canonical).
    Ip(IpAddr, &'a [u8]),
    Rcode(Rcode),
    /// `NODATA`, `NODATA-IPv4`, `<SRV>`-style placeholders: an answer without data to keep.
    Nothing(Option<RrType>),
    Text(&'a [u8]),
}

pub(super) fn classify(data: &[u8]) -> Data<'_> {
    match data {
        b"<CNAME>" => Data::Cname,
        b"NXDOMAIN" => Data::Rcode(Rcode::NXDOMAIN),
        b"SERVFAIL" => Data::Rcode(Rcode::SERVFAIL),
        b"REFUSED" => Data::Rcode(Rcode::REFUSED),
        b"NOTIMP" => Data::Rcode(Rcode(4)),
        b"NODATA" => Data::Nothing(None),
        b"NODATA-IPv4" => Data::Nothing(Some(RrType::A)),
        b"NODATA-IPv6" => Data::Nothing(Some(RrType::AAAA)),
        [b'<', .., b'>'] => Data::Nothing(None),
        _ => match lex::parse_ip(data) {
            Some(ip) => Data::Ip(ip, data),
            None => Data::Text(data),
        },
    }
}

/// Whether an answer of this shape can belong to a query of `qtype` (A and AAAA queries for one
/// name are usually pending together).
pub(super) fn fits(qtype: RrType, d: &Data<'_>) -> bool {
    match d {
        Data::Ip(IpAddr::V4(_), _) | Data::Nothing(Some(RrType::A)) => {
            qtype == RrType::A || qtype == RrType::ANY
        }
        Data::Ip(IpAddr::V6(_), _) | Data::Nothing(Some(RrType::AAAA)) => {
            qtype == RrType::AAAA || qtype == RrType::ANY
        }
        _ => true,
    }
}

/// [`apply`] for a lite transaction, when the line keeps it lite: the same changes of state,
/// with the line kept raw in `l` instead of answer strings built. It stays lite when its name
/// is the queried one or one the pre-filter rules out (owners and CNAME targets), its data is
/// an address, `<CNAME>`, rcode or NODATA token, and the caps hold. False (nothing changed)
/// for every other line: the caller upgrades and applies. `(name, is_qname)`: the line's name
/// and whether it is the query name (`name_eq(&tx.qname, name)`, which the caller's join has
/// mostly computed already).
pub(super) fn apply_lite(
    tx: &mut Tx,
    l: &mut Lite,
    pre: Option<&Prefilter>,
    (name, is_qname): (&[u8], bool),
    data: &[u8],
    d: &Data<'_>,
) -> bool {
    if !tx.lite {
        return false;
    }
    let raw = name.strip_suffix(b".").unwrap_or(name);
    let unlisted = is_qname
        || (!raw.is_empty()
            && !raw.ends_with(b".")
            && raw.is_ascii()
            && pre.is_some_and(|p| !p.may_match(name)));
    if tx.restart
        || !unlisted
        || matches!(d, Data::Text(_))
        || (matches!(d, Data::Ip(..)) && l.ips.len() >= MAX_LITE_IPS)
        || l.lines.len() + name.len() + data.len() + 2 > MAX_LITE_BYTES
        || lex::space_at(name).is_some()
        // An address, `<CNAME>`, an rcode or a `NODATA` token holds no space; `<…>` may.
        || (matches!(d, Data::Nothing(_)) && lex::space_at(data).is_some())
    {
        return false;
    }
    let at = l.lines.len();
    l.lines.extend_from_slice(name);
    l.lines.push(b' ');
    l.lines.extend_from_slice(data);
    l.lines.push(b' ');
    let this = (at, at + name.len());
    tx.replied = true;
    if !matches!(d, Data::Cname) {
        tx.terminal = true;
    }
    // The pending `<CNAME>`: this line's name is its target (see `apply`).
    if let Some(owner) = l.owner {
        if same_name(l.name(owner), name) {
            if !matches!(d, Data::Cname) {
                l.owner = None;
            }
        } else {
            l.last = Some(owner);
            l.owner = None;
        }
    }
    match d {
        Data::Cname => {
            if l.owner.is_none() {
                l.owner = Some(this);
            }
        }
        Data::Ip(ip, _) => {
            l.ips.push(*ip);
            l.last = Some(this);
            tx.rcode.get_or_insert(Rcode::NOERROR);
        }
        Data::Rcode(r) => tx.rcode = Some(*r),
        Data::Nothing(_) => {
            tx.rcode.get_or_insert(Rcode::NOERROR);
        }
        Data::Text(_) => return false,
    }
    true
}

/// The full reading of an answer line.
pub(super) fn apply(tx: &mut Tx, name: &[u8], d: &Data<'_>) {
    if tx.restart {
        // First line after the forward: the chain starts again.
        tx.restart = false;
        tx.answers.clear();
        tx.cname_owner = None;
    }
    tx.replied = true;
    if !matches!(d, Data::Cname) {
        tx.terminal = true;
    }
    let norm = lex::name(name);
    // Resolve a pending `<CNAME>`: this line's name is its target.
    if let (Some(owner), Some(n)) = (&tx.cname_owner, &norm) {
        if owner == n && !matches!(d, Data::Cname) {
            // Older dnsmasq logs the chain's records under the queried name: the target is
            // not in the log.
            tx.cname_owner = None;
        } else if owner != n {
            tx.answers.push(DnsAnswer {
                name: owner.clone(),
                rtype: RrType::CNAME,
                ttl: None,
                data: n.clone(),
            });
            tx.cname_owner = None;
        }
    }
    match d {
        Data::Cname => {
            if tx.cname_owner.is_none() {
                tx.cname_owner = norm;
            }
        }
        Data::Ip(ip, text) => {
            let name = norm.unwrap_or_else(|| tx.qname.clone());
            tx.answers.push(answer(name, ip, text));
            tx.rcode.get_or_insert(Rcode::NOERROR);
        }
        Data::Rcode(r) => tx.rcode = Some(*r),
        Data::Nothing(_) => {
            tx.rcode.get_or_insert(Rcode::NOERROR);
        }
        Data::Text(t) => {
            let qtype = tx.qtype;
            let text = String::from_utf8_lossy(t);
            let data = match qtype {
                RrType::PTR | RrType::NS | RrType::CNAME => crate::model::normalize_name(&text),
                _ => text.into_owned(),
            };
            tx.answers.push(DnsAnswer {
                name: norm.unwrap_or_else(|| tx.qname.clone()),
                rtype: qtype,
                ttl: None,
                data,
            });
            tx.rcode.get_or_insert(Rcode::NOERROR);
        }
    }
}
