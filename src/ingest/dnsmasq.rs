//! dnsmasq `log-queries` and `log-queries=extra` (also Pi-hole's `pihole.log`).
//!
//! ```text
//! Nov 26 20:27:53 dnsmasq[6972]: 81 127.0.10.16/37988 query[A] api.cloud-sync-check.net from 127.0.10.16
//! Nov 26 20:27:53 dnsmasq[6972]: 81 127.0.10.16/37988 reply relay.cloud-sync-check.net is <CNAME>
//! Nov 26 20:27:53 dnsmasq[6972]: 81 127.0.10.16/37988 reply gulf.moneroocean.stream is 127.20.37.200
//! Jan  6 09:00:00 dnsmasq[812]: cached www.gorjinbit.com is <CNAME>
//! ```
//! One transaction spans a `query[TYPE]` line and any number of answer lines (`reply`, `cached`,
//! `cached-stale`, `config`, a hosts file path, Pi-hole's `gravity blocked` …: "`<source> NAME is
//! DATA`"). Answer lines are joined to their query by serial (`=extra`), else by name, and
//! continue along a CNAME chain (dnsmasq writes all lines of one answer back to back, so a line
//! that follows an answer line of the same transaction belongs to it). `<CNAME>` lines carry no
//! target: the next line's name is the target. A transaction is emitted when a line of another
//! transaction follows its answer lines, when it times out unanswered
//! ([`super::PENDING_TIMEOUT_SECS`] of log time), when the pending table is full (oldest first,
//! unanswered) or at flush. dnsmasq logs no TTLs. TCP queries are answered by a forked child
//! (another pid): those are marked `tcp`.
//!
//! With `scan`'s list pre-filter (issue #16, [`super::prefilter`]) a transaction whose query
//! name is not listed is read *lite*: its answer lines are kept raw (`Lite::lines`) with its
//! addresses, and no answer string is built. A line that may name a listed pool (a CNAME
//! target or owner the pre-filter cannot rule out), text data, or anything past the lite caps
//! turns it into a full transaction first: [`apply`] replays the kept lines, so the state is
//! exactly the full reading's; so does emitting it ([`Tx::finish`]). Read through a
//! [`LogSink`] (`scan` of one log), a finished lite transaction whose addresses the engine
//! holds nothing for is handed over as skipped instead of built: its query name and every
//! CNAME target are unlisted and it has no server address, so the engine would only count it
//! and move its clock (`correlate/skip.rs`).

use std::net::IpAddr;

use super::pending::{key_of, Pending};
use super::unbound::name_eq;
use super::{lex, Ctx, LineParser, LogSink, Prefilter, PENDING_TIMEOUT_SECS};
use crate::model::{DnsAnswer, DnsObservation, Observation, Rcode, RrType, Timestamp, Transport};

/// Most addresses a lite transaction keeps; one more turns it into a full transaction.
const MAX_LITE_IPS: usize = 64;
/// Most bytes of answer lines a lite transaction keeps; more turn it into a full transaction.
const MAX_LITE_BYTES: usize = 4096;

struct Tx {
    obs: DnsObservation,
    key: u64,
    /// Owner of a `<CNAME>` line whose target (the next line's name) is not known yet.
    cname_owner: Option<String>,
    replied: bool,
    /// Put back to wait after a partial cached answer (a chain ending in `<CNAME>`, which
    /// dnsmasq completes by forwarding): the next answer lines repeat the chain in full.
    reopened: bool,
    restart: bool,
    /// An address, rcode or NODATA line was seen: the answer is complete even if a `<CNAME>`
    /// line is left without a target.
    terminal: bool,
    /// Read lite (module doc): the query name is not listed, `obs.answers` is empty and these
    /// are the addresses of its answer lines so far, all owned by the queried name.
    lite: Option<Lite>,
}

/// What a lite transaction keeps of its answer lines.
#[derive(Default)]
struct Lite {
    /// The addresses of its address lines, in order (the engine is asked about them).
    ips: Vec<IpAddr>,
    /// Its answer lines as `NAME DATA ` (neither token holds a space), in order: replayed by
    /// [`Tx::upgrade`].
    lines: Vec<u8>,
    /// The name (a range of `lines`) of a `<CNAME>` owner whose target is not known yet: the
    /// full reading's `Tx::cname_owner`.
    owner: Option<(usize, usize)>,
    /// The name of the last answer the full reading holds (`obs.answers.last().name`).
    last: Option<(usize, usize)>,
}

impl Lite {
    fn name(&self, r: (usize, usize)) -> &[u8] {
        self.lines.get(r.0..r.1).unwrap_or(&[])
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

impl Tx {
    fn finish(mut self) -> DnsObservation {
        self.upgrade();
        self.obs.answers_known = self.replied;
        if self.replied && self.obs.rcode.is_none() {
            self.obs.rcode = Some(Rcode::NOERROR);
        }
        self.obs
    }

    /// Whether a `<CNAME>` line waits for its target.
    fn chain_open(&self) -> bool {
        self.cname_owner.is_some() || self.lite.as_ref().is_some_and(|l| l.owner.is_some())
    }

    /// Whether the last answer (the full reading's) is named `name`.
    fn last_answer_is(&self, name: &[u8]) -> bool {
        match &self.lite {
            Some(l) => l.last.is_some_and(|r| same_name(l.name(r), name)),
            None => self
                .obs
                .answers
                .last()
                .is_some_and(|a| name_eq(&a.name, name)),
        }
    }

    /// A lite transaction becomes a full one: its kept lines are applied from the state its
    /// query line left (nothing answered), which gives the full reading's state.
    fn upgrade(&mut self) {
        let Some(l) = self.lite.take() else {
            return;
        };
        self.replied = false;
        self.terminal = false;
        self.cname_owner = None;
        self.obs.rcode = None;
        self.obs.answers.clear();
        let mut tokens = l.lines.split(|c| *c == b' ');
        while let (Some(name), Some(data)) = (tokens.next(), tokens.next()) {
            apply(self, name, &classify(data));
        }
    }
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

/// Where finished transactions go: the parser's output, or skipped through the sink.
struct Emit<'a> {
    out: &'a mut Vec<Observation>,
    sink: Option<&'a mut dyn LogSink>,
}

impl Emit<'_> {
    /// A lite transaction is skipped when nothing of this line is queued before it (so the
    /// engine has seen every earlier observation) and the engine holds nothing for its
    /// addresses; everything else is emitted as the full reading emits it.
    fn emit(&mut self, tx: Tx) {
        if let (Some(l), Some(sink)) = (&tx.lite, self.sink.as_deref_mut()) {
            if self.out.is_empty() && !sink.answers_matter(tx.obs.client, &l.ips) {
                sink.skipped(tx.obs.ts);
                return;
            }
        }
        self.out.push(Observation::Dns(tx.finish()));
    }
}

pub struct Dnsmasq {
    pending: Pending<Tx>,
    /// The transaction the previous line answered (its answer lines may continue).
    current: Option<Tx>,
    main_pid: Option<u32>,
}

impl Dnsmasq {
    pub fn new(cap: usize) -> Self {
        Dnsmasq {
            pending: Pending::new(cap),
            current: None,
            main_pid: None,
        }
    }

    fn finish_current(&mut self, out: &mut Emit<'_>) {
        let Some(mut tx) = self.current.take() else {
            return;
        };
        let key = tx.key;
        if tx.chain_open() && !tx.reopened && !tx.terminal {
            tx.upgrade();
            tx.reopened = true;
            tx.restart = true;
            if let Some(old) = self.pending.insert(key, tx) {
                out.emit(old);
            }
            return;
        }
        if tx.obs.client_port.is_none() {
            // Without serials, one upstream answer serves every client waiting for that name
            // and type: give each of them the answer (built: the answer is copied).
            let waiting = |o: &Tx, t: &Tx| {
                o.obs.qtype == t.obs.qtype
                    && o.obs.qname == t.obs.qname
                    && o.obs.client_port.is_none()
            };
            if let Some(first) = self.pending.take(key, |o| waiting(o, &tx)) {
                let obs = tx.finish();
                let mut next = Some(first);
                while let Some(other) = next {
                    let mut o = other.obs;
                    o.answers = obs.answers.clone();
                    o.rcode = obs.rcode;
                    o.answers_known = obs.answers_known;
                    out.out.push(Observation::Dns(o));
                    next = self.pending.take(key, |o| {
                        o.obs.qtype == obs.qtype
                            && o.obs.qname == obs.qname
                            && o.obs.client_port.is_none()
                    });
                }
                out.out.push(Observation::Dns(obs));
                return;
            }
        }
        out.emit(tx);
    }

    fn expire(&mut self, now: Timestamp, out: &mut Emit<'_>) {
        let cutoff = now.plus_secs(-PENDING_TIMEOUT_SECS);
        self.pending
            .drain_expired(|t| t.obs.ts < cutoff, |t| out.emit(t));
    }
}

/// What an answer line says.
enum Data<'a> {
    Cname,
    /// The address and its text as logged (inet_ntop output: already canonical).
    Ip(IpAddr, &'a [u8]),
    Rcode(Rcode),
    /// `NODATA`, `NODATA-IPv4`, `<SRV>`-style placeholders: an answer without data to keep.
    Nothing(Option<RrType>),
    Text(&'a [u8]),
}

fn classify(data: &[u8]) -> Data<'_> {
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
fn fits(qtype: RrType, d: &Data<'_>) -> bool {
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
/// with the line kept raw instead of answer strings built. It stays lite when its name is
/// the queried one or one the pre-filter rules out (owners and CNAME targets), its data is
/// an address, `<CNAME>`, rcode or NODATA token, and the caps hold. False (nothing changed)
/// for every other line: the caller upgrades and applies.
fn apply_lite(
    tx: &mut Tx,
    pre: Option<&Prefilter>,
    name: &[u8],
    data: &[u8],
    d: &Data<'_>,
) -> bool {
    let Some(l) = tx.lite.as_mut() else {
        return false;
    };
    let raw = name.strip_suffix(b".").unwrap_or(name);
    let unlisted = name_eq(&tx.obs.qname, name)
        || (!raw.is_empty()
            && !raw.ends_with(b".")
            && raw.is_ascii()
            && pre.is_some_and(|p| !p.may_match(name)));
    if tx.restart
        || !unlisted
        || matches!(d, Data::Text(_))
        || (matches!(d, Data::Ip(..)) && l.ips.len() >= MAX_LITE_IPS)
        || l.lines.len() + name.len() + data.len() + 2 > MAX_LITE_BYTES
        || name.contains(&b' ')
        || data.contains(&b' ')
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
            tx.obs.rcode.get_or_insert(Rcode::NOERROR);
        }
        Data::Rcode(r) => tx.obs.rcode = Some(*r),
        Data::Nothing(_) => {
            tx.obs.rcode.get_or_insert(Rcode::NOERROR);
        }
        Data::Text(_) => return false,
    }
    true
}

fn apply(tx: &mut Tx, name: &[u8], d: &Data<'_>) {
    if tx.restart {
        // First line after the forward: the chain starts again.
        tx.restart = false;
        tx.obs.answers.clear();
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
            tx.obs.answers.push(DnsAnswer {
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
            let name = norm.unwrap_or_else(|| tx.obs.qname.clone());
            tx.obs.answers.push(answer(name, ip, text));
            tx.obs.rcode.get_or_insert(Rcode::NOERROR);
        }
        Data::Rcode(r) => tx.obs.rcode = Some(*r),
        Data::Nothing(_) => {
            tx.obs.rcode.get_or_insert(Rcode::NOERROR);
        }
        Data::Text(t) => {
            let qtype = tx.obs.qtype;
            let text = String::from_utf8_lossy(t);
            let data = match qtype {
                RrType::PTR | RrType::NS | RrType::CNAME => crate::model::normalize_name(&text),
                _ => text.into_owned(),
            };
            tx.obs.answers.push(DnsAnswer {
                name: norm.unwrap_or_else(|| tx.obs.qname.clone()),
                rtype: qtype,
                ttl: None,
                data,
            });
            tx.obs.rcode.get_or_insert(Rcode::NOERROR);
        }
    }
}

/// `query[A]`, `query[type=65]` → the type.
fn query_type(tok: &[u8]) -> Option<RrType> {
    let inner = tok.strip_prefix(b"query[")?.strip_suffix(b"]")?;
    let inner = inner.strip_prefix(b"type=").unwrap_or(inner);
    lex::rrtype(inner)
}

fn pid_of(prog: &[u8]) -> Option<u32> {
    let open = memchr::memchr(b'[', prog)?;
    let inner = prog.get(open + 1..)?.strip_suffix(b"]")?;
    u32::try_from(lex::parse_u64(inner)?).ok()
}

impl LineParser for Dnsmasq {
    fn line(&mut self, line: &[u8], ctx: &mut Ctx, out: &mut Vec<Observation>) {
        self.read(line, ctx, &mut Emit { out, sink: None });
    }

    fn line_into(
        &mut self,
        line: &[u8],
        ctx: &mut Ctx,
        out: &mut Vec<Observation>,
        sink: &mut dyn LogSink,
    ) {
        self.read(
            line,
            ctx,
            &mut Emit {
                out,
                sink: Some(sink),
            },
        );
    }

    fn flush(&mut self, _ctx: &mut Ctx, out: &mut Vec<Observation>) {
        self.flush_all(&mut Emit { out, sink: None });
    }

    fn flush_into(&mut self, _ctx: &mut Ctx, out: &mut Vec<Observation>, sink: &mut dyn LogSink) {
        self.flush_all(&mut Emit {
            out,
            sink: Some(sink),
        });
    }
}

impl Dnsmasq {
    fn flush_all(&mut self, out: &mut Emit<'_>) {
        self.finish_current(out);
        while let Some(t) = self.pending.pop_oldest() {
            out.emit(t);
        }
    }

    fn read(&mut self, line: &[u8], ctx: &mut Ctx, out: &mut Emit<'_>) {
        let Some((ts, rest)) = lex::any_ts(line, &mut ctx.time) else {
            return ctx.stats.error("bad_timestamp", line);
        };
        let Some((prog, msg)) = lex::program(rest, b"dnsmasq") else {
            return ctx.stats.error("unrecognized", line);
        };
        let pid = pid_of(prog);
        if self.main_pid.is_none() {
            self.main_pid = pid;
        }
        self.expire(ts, out);
        let Some((first, after_first)) = lex::next_token(msg) else {
            return ctx.stats.ignored();
        };
        // log-queries=extra: "<serial> <addr>/<port> …".
        let mut serial = None;
        let mut port = None;
        let mut extra_client = None;
        let mut msg = msg;
        if let Some(s) = lex::parse_u64(first) {
            if let Some((addr, rest)) = lex::next_token(after_first) {
                if let Some(slash) = memchr::memrchr(b'/', addr) {
                    serial = Some(s);
                    extra_client = addr.get(..slash).and_then(lex::parse_ip);
                    port = addr
                        .get(slash + 1..)
                        .and_then(lex::parse_u64)
                        .and_then(|p| u16::try_from(p).ok());
                    msg = rest;
                }
            }
        }
        let Some((verb, args)) = lex::next_token(msg) else {
            return ctx.stats.ignored();
        };

        if verb.starts_with(b"query[") {
            self.finish_current(out);
            let Some(qtype) = query_type(verb) else {
                return ctx.stats.error("bad_qtype", line);
            };
            let mut it = lex::tokens(args);
            let (Some(name), Some(b"from"), Some(client)) = (it.next(), it.next(), it.next())
            else {
                return ctx.stats.error("truncated", line);
            };
            let Some(client) = lex::parse_ip(client) else {
                return ctx.stats.error("bad_client", line);
            };
            let Some(qname) = lex::name(name) else {
                return ctx.stats.error("bad_name", line);
            };
            // Lite when the pre-filter says the name is certainly not listed.
            let lite = ctx
                .prefilter
                .as_ref()
                .is_some_and(|p| !p.may_match(name))
                .then(Lite::default);
            let mut obs = ctx.dns(ts, client, qname, qtype);
            obs.client_port = port;
            obs.transport = match (self.main_pid, pid) {
                (Some(m), Some(p)) if m != p => Transport::Tcp,
                (Some(_), Some(_)) => Transport::Udp,
                _ => Transport::Unknown,
            };
            let key = match serial {
                Some(s) => s,
                None => key_of(&[name.strip_suffix(b".").unwrap_or(name)], 0),
            };
            if serial.is_some() {
                // A reused serial (restart): the old transaction is over.
                if let Some(old) = self.pending.take(key, |_| true) {
                    out.emit(old);
                }
            }
            let tx = Tx {
                obs,
                key,
                cname_owner: None,
                replied: false,
                reopened: false,
                restart: false,
                terminal: false,
                lite,
            };
            if let Some(old) = self.pending.insert(key, tx) {
                out.emit(old);
            }
            return;
        }

        // "<source…> NAME is DATA"
        if verb == b"forwarded" {
            if serial.is_none() {
                self.finish_current(out);
            }
            return ctx.stats.ignored();
        }
        if let Some(i) = lex::find(msg, b" is ") {
            let src_and_name = msg.get(..i).unwrap_or(&[]);
            let data = msg.get(i + 4..).unwrap_or(&[]);
            let mut words = src_and_name
                .rsplit(|c| *c == b' ')
                .filter(|t| !t.is_empty());
            let (Some(name), Some(_source)) = (words.next(), words.next()) else {
                return ctx.stats.ignored();
            };
            let data = lex::trim_end(data);
            let d = classify(data);
            // Continue the current transaction?
            let continues = match (&self.current, serial) {
                (Some(c), Some(s)) => c.key == s,
                (Some(c), None) => {
                    c.obs.client_port.is_none()
                        && (c.chain_open()
                            || name_eq(&c.obs.qname, name)
                            || c.last_answer_is(name)
                            || name == b"error")
                }
                _ => false,
            };
            if !continues {
                self.finish_current(out);
                let found = match serial {
                    Some(s) => self.pending.take(s, |_| true),
                    None => {
                        let key = key_of(&[name.strip_suffix(b".").unwrap_or(name)], 0);
                        self.pending.take(key, |t| {
                            name_eq(&t.obs.qname, name) && fits(t.obs.qtype, &d)
                        })
                    }
                };
                match (found, serial, extra_client) {
                    (Some(tx), _, _) => self.current = Some(tx),
                    (None, Some(s), Some(client)) => {
                        // With =extra an answer names its client: keep it even though its query
                        // is gone (emitted early by a quiet-period flush, or rotated away).
                        let Some(qname) = lex::name(name) else {
                            return ctx.stats.error("bad_name", line);
                        };
                        let qtype = match &d {
                            Data::Ip(IpAddr::V4(_), _) | Data::Nothing(Some(RrType::A)) => {
                                RrType::A
                            }
                            Data::Ip(IpAddr::V6(_), _) | Data::Nothing(Some(RrType::AAAA)) => {
                                RrType::AAAA
                            }
                            // Unknown: TYPE0 (reserved) rather than a guess.
                            _ => RrType(0),
                        };
                        let mut obs = ctx.dns(ts, client, qname, qtype);
                        obs.client_port = port;
                        obs.query_seen = false;
                        self.current = Some(Tx {
                            obs,
                            key: s,
                            cname_owner: None,
                            replied: false,
                            reopened: true,
                            restart: false,
                            terminal: false,
                            lite: None,
                        });
                    }
                    _ => {
                        // An answer whose query line we never saw and without a client (plain
                        // log-queries; DHCP-registered names logged by dnsmasq itself).
                        return ctx.stats.error("unmatched_reply", line);
                    }
                }
            }
            if let Some(tx) = self.current.as_mut() {
                if !apply_lite(tx, ctx.prefilter.as_deref(), name, data, &d) {
                    tx.upgrade();
                    apply(tx, name, &d);
                }
            }
            return;
        }

        // dnssec-query / validation / daemon messages.
        if verb == b"started," {
            self.main_pid = pid;
        }
        ctx.stats.ignored();
    }
}
