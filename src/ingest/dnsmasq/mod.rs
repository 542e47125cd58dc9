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
//! turns it into a full transaction first: [`tx::apply`] replays the kept lines, so the state is
//! exactly the full reading's; so does emitting it (`Tx::finish`). Read through a
//! [`LogSink`] (`scan` of one log), a finished lite transaction whose addresses the engine
//! holds nothing for is handed over as skipped instead of built: its query name and every
//! CNAME target are unlisted and it has no server address, so the engine would only count it
//! and move its clock (`correlate/skip.rs`).

//!
//! The reading costs no allocation per line (issue #16, "Logs, fourth pass" in
//! docs/performance.md): transactions stay in place in a bounded slab ([`tx`]), the pending
//! table and the current transaction hold slot numbers, the query name is written into the
//! slot's reused buffer, the lite lines into one reused buffer, and an observation is built
//! only when a transaction is emitted. The timestamp and program token of a line are read
//! once per run of lines that start with the same bytes ([`Head`]).

use std::net::IpAddr;

use super::pending::{name_key, Pending};
use super::time::TimeResolver;
use super::unbound::name_eq;
use super::{lex, Ctx, LineParser, LogSink, PENDING_TIMEOUT_SECS};
use crate::model::{Observation, RrType, Source, Timestamp, Transport};

mod tx;

use tx::{apply, apply_lite, classify, fits, Data, Lite, Slab};

/// Longest line head (timestamp, host, program token and the blanks after it) kept for the
/// lines after it; a longer head is read on every line.
const MAX_HEAD: usize = 128;

/// The head of the last line whose head was read: its bytes up to the message and what they
/// gave. A line that starts with the same bytes gives the same timestamp and program token
/// (the head ends in a blank, so the token ended before it), and reading them again would
/// leave the time resolver as it is (its caches already hold this head's day and year). Any
/// other line is read in full, and the head is cleared first, so a line whose head failed
/// after the resolver was asked never leaves a stale head behind.
#[derive(Default)]
struct Head {
    bytes: Vec<u8>,
    seen: Option<(Timestamp, Option<u32>)>,
}

impl Head {
    /// The timestamp, pid and message of `line`; the reason when its head is unreadable.
    fn read<'l>(
        &mut self,
        line: &'l [u8],
        time: &mut TimeResolver,
    ) -> Result<(Timestamp, Option<u32>, &'l [u8]), &'static str> {
        if let Some((ts, pid)) = self.seen {
            if let Some(rest) = line.strip_prefix(self.bytes.as_slice()) {
                return Ok((ts, pid, lex::trim_start(rest)));
            }
        }
        self.seen = None;
        let Some((ts, rest)) = lex::any_ts(line, time) else {
            return Err("bad_timestamp");
        };
        let Some((prog, msg)) = lex::program(rest, b"dnsmasq") else {
            return Err("unrecognized");
        };
        let pid = pid_of(prog);
        // `msg` is a suffix of `line`; the head is what precedes it.
        let at = line.len().saturating_sub(msg.len());
        if let Some(head) = line.get(..at) {
            if at <= MAX_HEAD
                && line.get(at..) == Some(msg)
                && matches!(head.last(), Some(b' ' | b'\t'))
            {
                self.bytes.clear();
                self.bytes.extend_from_slice(head);
                self.seen = Some((ts, pid));
            }
        }
        Ok((ts, pid, msg))
    }
}

/// Where finished transactions go: the parser's output, or skipped through the sink.
struct Emit<'a> {
    out: &'a mut Vec<Observation>,
    sink: Option<&'a mut dyn LogSink>,
}

pub struct Dnsmasq {
    /// Waiting transactions (slots of `slab`), in arrival order.
    pending: Pending<u32>,
    /// Every transaction: at most the pending table's cap plus the current one and one in
    /// transit (a new one before the table evicts for it).
    slab: Slab,
    /// The transaction the previous line answered (its answer lines may continue).
    current: Option<u32>,
    /// The current transaction's kept lines while it is read lite (empty otherwise).
    lite: Lite,
    /// The query name of the line being read, before it moves into its slot.
    qname: String,
    main_pid: Option<u32>,
    head: Head,
}

impl Dnsmasq {
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Dnsmasq {
            pending: Pending::new(cap),
            slab: Slab::new(cap.saturating_add(2)),
            current: None,
            lite: Lite::default(),
            qname: String::new(),
            main_pid: None,
            head: Head::default(),
        }
    }

    /// A free slot. The slab has room for the whole pending table, the current transaction
    /// and one more, and a new transaction is made only while there is no current one, so
    /// this does not fail; if it did, the oldest waiting transaction would be emitted
    /// unanswered for it, as a full pending table does.
    fn alloc(&mut self, src: &Source, out: &mut Emit<'_>) -> Option<u32> {
        if let Some(i) = self.slab.alloc() {
            return Some(i);
        }
        if let Some(old) = self.pending.pop_oldest() {
            self.emit(old, false, src, out);
        }
        self.slab.alloc()
    }

    /// Emits the transaction in slot `i` and frees the slot (`current`: the current
    /// transaction, whose lite lines are in `self.lite`). A lite transaction is skipped when
    /// nothing of this line is queued before it (so the engine has seen every earlier
    /// observation) and the engine holds nothing for its addresses; everything else is
    /// emitted as the full reading emits it.
    fn emit(&mut self, i: u32, current: bool, src: &Source, out: &mut Emit<'_>) {
        if let Some(tx) = self.slab.get_mut(i) {
            let (ips, lines): (&[IpAddr], &[u8]) = if current {
                (&self.lite.ips, &self.lite.lines)
            } else {
                (&[], &[])
            };
            let skip = tx.lite
                && out.out.is_empty()
                && out
                    .sink
                    .as_deref_mut()
                    .is_some_and(|sink| !sink.answers_matter(tx.client, ips));
            match (skip, out.sink.as_deref_mut()) {
                (true, Some(sink)) => sink.skipped(tx.ts),
                _ => out.out.push(Observation::Dns(tx.finish(lines, src))),
            }
        }
        if current {
            self.lite.clear();
        }
        self.slab.release(i);
    }

    fn finish_current(&mut self, src: &Source, out: &mut Emit<'_>) {
        let Some(i) = self.current.take() else {
            return;
        };
        let Some(tx) = self.slab.get_mut(i) else {
            self.lite.clear();
            return;
        };
        let key = tx.key;
        if tx.chain_open(&self.lite) && !tx.reopened && !tx.terminal {
            tx.upgrade(&self.lite.lines);
            self.lite.clear();
            tx.reopened = true;
            tx.restart = true;
            if let Some(old) = self.pending.insert(key, i) {
                self.emit(old, false, src, out);
            }
            return;
        }
        if tx.client_port.is_none() {
            // Without serials, one upstream answer serves every client waiting for that name
            // and type: give each of them the answer (built: the answer is copied).
            let slab = &self.slab;
            let waiting = |o: &u32| match (slab.get(*o), slab.get(i)) {
                (Some(o), Some(t)) => {
                    o.qtype == t.qtype && o.qname == t.qname && o.client_port.is_none()
                }
                _ => false,
            };
            if let Some(first) = self.pending.take(key, waiting) {
                let Some(tx) = self.slab.get_mut(i) else {
                    return;
                };
                let obs = tx.finish(&self.lite.lines, src);
                self.lite.clear();
                self.slab.release(i);
                let mut next = Some(first);
                while let Some(other) = next {
                    if let Some(t) = self.slab.get_mut(other) {
                        let mut o = t.observation(src);
                        o.answers = obs.answers.clone();
                        o.rcode = obs.rcode;
                        o.answers_known = obs.answers_known;
                        out.out.push(Observation::Dns(o));
                    }
                    self.slab.release(other);
                    let slab = &self.slab;
                    next = self.pending.take(key, |o| {
                        slab.get(*o).is_some_and(|o| {
                            o.qtype == obs.qtype && o.qname == obs.qname && o.client_port.is_none()
                        })
                    });
                }
                out.out.push(Observation::Dns(obs));
                return;
            }
        }
        self.emit(i, true, src, out);
    }

    /// Emits, oldest first, every waiting transaction older than the time-out at `now`
    /// (entries are in arrival order: the first one still waiting ends the sweep).
    fn expire(&mut self, now: Timestamp, src: &Source, out: &mut Emit<'_>) {
        let cutoff = now.plus_secs(-PENDING_TIMEOUT_SECS);
        while let Some(&i) = self.pending.oldest() {
            match self.slab.get(i) {
                Some(t) if t.ts < cutoff => {}
                _ => break,
            }
            match self.pending.pop_oldest() {
                Some(i) => self.emit(i, false, src, out),
                None => break,
            }
        }
    }
}

/// Whether the raw `name` is the normalised query name `qname`: `name_eq`, with a plain byte
/// comparison first (an answer line usually spells the name as its query line did, and that
/// is mostly lowercase already; the case-blind comparison was ≈ 110 instructions a line).
#[inline]
fn qname_is(qname: &str, name: &[u8]) -> bool {
    let raw = name.strip_suffix(b".").unwrap_or(name);
    (!raw.is_empty() && qname.as_bytes() == raw) || name_eq(qname, name)
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

/// `lex::find(hay, b" is ")`, searched from `from` on (no match may start before it): the
/// first ` is `, with the spaces found eight bytes at a time.
fn find_is(hay: &[u8], from: usize) -> Option<usize> {
    let mut from = from;
    while let Some(at) = hay.get(from..).and_then(lex::space_at).map(|p| from + p) {
        if hay.get(at + 1..at + 4) == Some(b"is ") {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The last two of the space-separated words of `s` (`s.rsplit(' ')` without empty words):
/// the name, and whether a word (the source) precedes it.
fn name_word(s: &[u8]) -> Option<(&[u8], bool)> {
    let end = s.iter().rposition(|c| *c != b' ')? + 1;
    let s = s.get(..end)?;
    let start = s.iter().rposition(|c| *c == b' ').map_or(0, |p| p + 1);
    let before = s.get(..start)?;
    Some((s.get(start..)?, before.iter().any(|c| *c != b' ')))
}

/// An answer line's name and data: `None` when the message holds no ` is ` after the verb
/// (`msg` starts with the verb, `verb_len` bytes, and `args` is the rest after the blanks that
/// follow it), else the name (`None` when no source word precedes it) and the data after
/// ` is `. The rule is [`find_is`] from the verb's end, then [`name_word`] on what precedes
/// it. The common shape `VERB NAME is DATA` (a space before the name, none in it, and the
/// name not `is` itself, which would make the space before it the first ` is `) is read
/// without the backward word scan (`tests::answer_parts_is_the_word_rule`).
fn answer_parts<'m>(
    msg: &'m [u8],
    verb_len: usize,
    args: &'m [u8],
) -> Option<(Option<&'m [u8]>, &'m [u8])> {
    let at = msg.len().saturating_sub(args.len());
    if at > verb_len && msg.get(at - 1) == Some(&b' ') && !args.starts_with(b"is ") {
        if let Some(j) = lex::space_at(args) {
            if args.get(j..j + 4) == Some(b" is ") {
                return Some((args.get(..j), args.get(j + 4..).unwrap_or(&[])));
            }
        }
    }
    // No ` is ` starts inside the verb (it holds no space).
    let i = find_is(msg, verb_len)?;
    let name = match name_word(msg.get(..i).unwrap_or(&[])) {
        Some((name, true)) => Some(name),
        _ => None,
    };
    Some((name, msg.get(i + 4..).unwrap_or(&[])))
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

    fn flush(&mut self, ctx: &mut Ctx, out: &mut Vec<Observation>) {
        self.flush_all(&ctx.source, &mut Emit { out, sink: None });
    }

    fn flush_into(&mut self, ctx: &mut Ctx, out: &mut Vec<Observation>, sink: &mut dyn LogSink) {
        self.flush_all(
            &ctx.source,
            &mut Emit {
                out,
                sink: Some(sink),
            },
        );
    }
}

impl Dnsmasq {
    fn flush_all(&mut self, src: &Source, out: &mut Emit<'_>) {
        self.finish_current(src, out);
        while let Some(i) = self.pending.pop_oldest() {
            self.emit(i, false, src, out);
        }
    }

    fn read(&mut self, line: &[u8], ctx: &mut Ctx, out: &mut Emit<'_>) {
        let (ts, pid, msg) = match self.head.read(line, &mut ctx.time) {
            Ok(h) => h,
            Err(reason) => return ctx.stats.error(reason, line),
        };
        if self.main_pid.is_none() {
            self.main_pid = pid;
        }
        self.expire(ts, &ctx.source, out);
        let Some((first, after_first)) = lex::next_token(msg) else {
            return ctx.stats.ignored();
        };
        // log-queries=extra: "<serial> <addr>/<port> …".
        let mut serial = None;
        let mut port = None;
        let mut extra_client = None;
        let mut msg = msg;
        let mut verb_args = Some((first, after_first));
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
                    verb_args = lex::next_token(msg);
                }
            }
        }
        let Some((verb, args)) = verb_args else {
            return ctx.stats.ignored();
        };

        if verb.starts_with(b"query[") {
            self.finish_current(&ctx.source, out);
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
            if !lex::name_into(name, &mut self.qname) {
                return ctx.stats.error("bad_name", line);
            }
            // Lite when the pre-filter says the name is certainly not listed.
            let lite = ctx.prefilter.as_ref().is_some_and(|p| !p.may_match(name));
            let transport = match (self.main_pid, pid) {
                (Some(m), Some(p)) if m != p => Transport::Tcp,
                (Some(_), Some(_)) => Transport::Udp,
                _ => Transport::Unknown,
            };
            let key = match serial {
                Some(s) => s,
                None => name_key(name.strip_suffix(b".").unwrap_or(name)),
            };
            if serial.is_some() {
                // A reused serial (restart): the old transaction is over.
                if let Some(old) = self.pending.take(key, |_| true) {
                    self.emit(old, false, &ctx.source, out);
                }
            }
            let Some(i) = self.alloc(&ctx.source, out) else {
                return;
            };
            if let Some(tx) = self.slab.get_mut(i) {
                tx.ts = ts;
                tx.client = client;
                tx.client_port = port;
                tx.transport = transport;
                tx.qtype = qtype;
                std::mem::swap(&mut tx.qname, &mut self.qname);
                tx.key = key;
                tx.lite = lite;
            }
            if let Some(old) = self.pending.insert(key, i) {
                self.emit(old, false, &ctx.source, out);
            }
            return;
        }

        // "<source…> NAME is DATA"
        if verb == b"forwarded" {
            if serial.is_none() {
                self.finish_current(&ctx.source, out);
            }
            return ctx.stats.ignored();
        }
        if let Some((name, data)) = answer_parts(msg, verb.len(), args) {
            let Some(name) = name else {
                return ctx.stats.ignored();
            };
            let data = lex::trim_end(data);
            let d = classify(data);
            // Whether `name` is the query name of the transaction the line goes to, when the
            // join already compared them (`apply_lite` compares them otherwise).
            let mut is_qname = None;
            // Continue the current transaction?
            let continues = match (self.current.and_then(|c| self.slab.get(c)), serial) {
                (Some(c), Some(s)) => c.key == s,
                (Some(c), None) => {
                    let same = qname_is(&c.qname, name);
                    is_qname = Some(same);
                    c.client_port.is_none()
                        && (c.chain_open(&self.lite)
                            || same
                            || c.last_answer_is(&self.lite, name)
                            || name == b"error")
                }
                _ => false,
            };
            if !continues {
                self.finish_current(&ctx.source, out);
                is_qname = None;
                let found = match serial {
                    Some(s) => self.pending.take(s, |_| true),
                    None => {
                        let key = name_key(name.strip_suffix(b".").unwrap_or(name));
                        let slab = &self.slab;
                        let found = self.pending.take(key, |t| {
                            slab.get(*t)
                                .is_some_and(|t| qname_is(&t.qname, name) && fits(t.qtype, &d))
                        });
                        // Found by its query name.
                        is_qname = found.map(|_| true);
                        found
                    }
                };
                match (found, serial, extra_client) {
                    (Some(i), _, _) => self.current = Some(i),
                    (None, Some(s), Some(client)) => {
                        // With =extra an answer names its client: keep it even though its query
                        // is gone (emitted early by a quiet-period flush, or rotated away).
                        if !lex::name_into(name, &mut self.qname) {
                            return ctx.stats.error("bad_name", line);
                        }
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
                        let Some(i) = self.alloc(&ctx.source, out) else {
                            return;
                        };
                        if let Some(tx) = self.slab.get_mut(i) {
                            tx.ts = ts;
                            tx.client = client;
                            tx.client_port = port;
                            tx.qtype = qtype;
                            std::mem::swap(&mut tx.qname, &mut self.qname);
                            tx.query_seen = false;
                            tx.key = s;
                            tx.reopened = true;
                        }
                        self.current = Some(i);
                    }
                    _ => {
                        // An answer whose query line we never saw and without a client (plain
                        // log-queries; DHCP-registered names logged by dnsmasq itself).
                        return ctx.stats.error("unmatched_reply", line);
                    }
                }
            }
            let cur = self.current;
            if let Some(tx) = cur.and_then(|c| self.slab.get_mut(c)) {
                let is_qname = tx.lite && is_qname.unwrap_or_else(|| qname_is(&tx.qname, name));
                let pre = ctx.prefilter.as_deref();
                if !apply_lite(tx, &mut self.lite, pre, (name, is_qname), data, &d) {
                    tx.upgrade(&self.lite.lines);
                    self.lite.clear();
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

#[cfg(test)]
mod tests;
