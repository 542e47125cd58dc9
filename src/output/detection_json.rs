//! A detection's JSON (`scan --output json`, one line each), written by hand: the same bytes as
//! `serde_json::to_writer(w, detection)` (the derived `Serialize` of `model::Detection` stays
//! the contract; `tests::same_bytes_as_serde` compares the two on varied detections).
//!
//! Why (issue #11): a 65 536-client flood prints 179 MB of JSON, and serde_json spent about a
//! quarter of the run's instructions on it — escaping every key and every string byte by byte
//! through its escape table, and a call chain per field. Here the keys are constants, a string
//! with nothing to escape (nearly all: names, summaries, ids) is copied as it is after one scan,
//! and numbers, IPv4 addresses, timestamps and enum names are written from stack buffers
//! (`util::decimal`, `Timestamp::rfc3339_bytes`, the enums' `as_str`) with the text their
//! `Display`/`Serialize` gives. What is rare — a string that needs escapes, IPv6, a timestamp
//! outside years 0000–9999, source marks — is still written by serde_json itself.

use std::io::{self, Write};
use std::net::IpAddr;

use serde::Serialize;

use crate::model::{Detection, Evidence, ListHit, Rcode, Timestamp};
use crate::util::decimal;

/// Writes `d` as serde_json does (no trailing newline).
pub fn write_detection<W: Write>(w: &mut W, d: &Detection) -> io::Result<()> {
    w.write_all(b"{\"id\":")?;
    string(w, &d.id)?;
    w.write_all(b",\"client_ip\":")?;
    ip(w, d.client_ip)?;
    w.write_all(b",\"stage\":")?;
    quoted(w, d.stage.as_str())?;
    w.write_all(b",\"risk_score\":")?;
    uint(w, u64::from(d.risk_score))?;
    w.write_all(b",\"pool_domain\":")?;
    string(w, &d.pool_domain)?;
    w.write_all(b",\"query_names\":")?;
    list(w, &d.query_names, |w, s| string(w, s))?;
    w.write_all(b",\"pool_ips\":")?;
    list(w, &d.pool_ips, |w, a| ip(w, *a))?;
    w.write_all(b",\"dst_ports\":")?;
    list(w, &d.dst_ports, |w, p| uint(w, u64::from(*p)))?;
    w.write_all(b",\"first_seen\":")?;
    timestamp(w, d.first_seen)?;
    w.write_all(b",\"last_seen\":")?;
    timestamp(w, d.last_seen)?;
    w.write_all(b",\"is_new\":")?;
    boolean(w, d.is_new)?;
    w.write_all(b",\"evidence\":")?;
    list(w, &d.evidence, evidence)?;
    w.write_all(b",\"sources\":")?;
    list(w, &d.sources, |w, s| string(w, s.as_str()))?;
    w.write_all(b",\"lists\":")?;
    list(w, &d.lists, list_hit)?;
    w.write_all(b",\"mitre\":{\"technique\":")?;
    string(w, &d.mitre.technique)?;
    w.write_all(b",\"technique_name\":")?;
    string(w, &d.mitre.technique_name)?;
    w.write_all(b",\"tactic\":")?;
    string(w, &d.mitre.tactic)?;
    w.write_all(b",\"tactic_id\":")?;
    string(w, &d.mitre.tactic_id)?;
    w.write_all(b"},\"kill_chain\":")?;
    string(w, &d.kill_chain)?;
    w.write_all(b",\"title\":")?;
    string(w, &d.title)?;
    let c = &d.counts;
    w.write_all(b",\"counts\":{\"lookups\":")?;
    uint(w, c.lookups)?;
    w.write_all(b",\"blocked_lookups\":")?;
    uint(w, c.blocked_lookups)?;
    w.write_all(b",\"flows\":")?;
    uint(w, c.flows)?;
    w.write_all(b",\"established_flows\":")?;
    uint(w, c.established_flows)?;
    w.write_all(b",\"stratum_flows\":")?;
    uint(w, c.stratum_flows)?;
    w.write_all(b",\"bytes_out\":")?;
    uint(w, c.bytes_out)?;
    w.write_all(b",\"bytes_in\":")?;
    uint(w, c.bytes_in)?;
    w.write_all(b"}")?;
    if !d.agents.is_empty() {
        w.write_all(b",\"agents\":")?;
        list(w, &d.agents, |w, s| string(w, s))?;
    }
    w.write_all(b",\"suppressed\":")?;
    boolean(w, d.suppressed)?;
    if let Some(id) = &d.suppression_id {
        w.write_all(b",\"suppression_id\":")?;
        string(w, id)?;
    }
    if let Some(t) = &d.stage_changed {
        w.write_all(b",\"stage_changed\":")?;
        timestamp(w, *t)?;
    }
    w.write_all(b",\"schema_version\":")?;
    uint(w, u64::from(d.schema_version))?;
    if d.retro {
        w.write_all(b",\"retro\":true")?;
    }
    if !d.source_marks.is_empty() {
        w.write_all(b",\"source_marks\":")?;
        serde(w, &d.source_marks)?;
    }
    w.write_all(b"}")
}

fn evidence<W: Write>(w: &mut W, e: &Evidence) -> io::Result<()> {
    w.write_all(b"{\"ts\":")?;
    timestamp(w, e.ts)?;
    w.write_all(b",\"kind\":")?;
    quoted(w, e.kind.as_str())?;
    w.write_all(b",\"source\":")?;
    string(w, e.source.as_str())?;
    w.write_all(b",\"summary\":")?;
    string(w, &e.summary)?;
    if let Some(q) = &e.qname {
        w.write_all(b",\"qname\":")?;
        string(w, q)?;
    }
    if let Some(r) = &e.rcode {
        w.write_all(b",\"rcode\":")?;
        rcode(w, *r)?;
    }
    if !e.answers.is_empty() {
        w.write_all(b",\"answers\":")?;
        list(w, &e.answers, |w, a| ip(w, *a))?;
    }
    if let Some(x) = e.dst {
        w.write_all(b",\"dst\":")?;
        ip(w, x)?;
    }
    if let Some(x) = e.dst_port {
        w.write_all(b",\"dst_port\":")?;
        uint(w, u64::from(x))?;
    }
    if let Some(x) = e.src_port {
        w.write_all(b",\"src_port\":")?;
        uint(w, u64::from(x))?;
    }
    if let Some(x) = e.state {
        w.write_all(b",\"state\":")?;
        quoted(w, x.as_str())?;
    }
    if let Some(x) = e.bytes_out {
        w.write_all(b",\"bytes_out\":")?;
        uint(w, x)?;
    }
    if let Some(x) = e.bytes_in {
        w.write_all(b",\"bytes_in\":")?;
        uint(w, x)?;
    }
    if let Some(x) = e.duration_ms {
        w.write_all(b",\"duration_ms\":")?;
        uint(w, x)?;
    }
    if let Some(x) = &e.agent {
        w.write_all(b",\"agent\":")?;
        string(w, x)?;
    }
    if let Some(x) = &e.method {
        w.write_all(b",\"method\":")?;
        string(w, x)?;
    }
    w.write_all(b"}")
}

fn list_hit<W: Write>(w: &mut W, h: &ListHit) -> io::Result<()> {
    w.write_all(b"{\"list\":")?;
    string(w, &h.list)?;
    w.write_all(b",\"entry\":")?;
    string(w, &h.entry)?;
    w.write_all(b",\"category\":")?;
    quoted(w, h.category.as_str())?;
    w.write_all(b",\"line\":")?;
    uint(w, u64::from(h.line))?;
    w.write_all(b"}")
}

/// `[a,b,…]` with `item` writing each element.
fn list<W: Write, T>(
    w: &mut W,
    items: &[T],
    mut item: impl FnMut(&mut W, &T) -> io::Result<()>,
) -> io::Result<()> {
    w.write_all(b"[")?;
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        item(w, x)?;
    }
    w.write_all(b"]")
}

/// A JSON string: copied between quotes when no byte needs an escape (serde_json escapes `"`,
/// `\` and the control characters below 0x20, nothing else); otherwise serde_json writes it.
fn string<W: Write>(w: &mut W, s: &str) -> io::Result<()> {
    if needs_escape(s.as_bytes()) {
        serde(w, s)
    } else {
        w.write_all(b"\"")?;
        w.write_all(s.as_bytes())?;
        w.write_all(b"\"")
    }
}

/// Whether any byte of `s` is one serde_json escapes (`"`, `\`, below 0x20): eight bytes per
/// step (issue #11: a flood's result writes ≈ 32 strings per detection, and a byte-wise fold
/// was ≈ 130 instructions per string). Per 8-byte word, "some byte below n" is
/// `(w - n·0x01…) & !w & 0x80…` (exact for the word as a whole, n ≤ 0x80); a byte equal to
/// `c` is a zero byte of `w ^ c·0x01…`. Bytes ≥ 0x80 (UTF-8) never match.
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let word = |c: &[u8]| {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        let w = u64::from_le_bytes(b);
        let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w;
        let (quote, slash) = (w ^ (ONES * u64::from(b'"')), w ^ (ONES * u64::from(b'\\')));
        below(w, 0x20) | below(quote, 1) | below(slash, 1)
    };
    if s.len() < 8 {
        return s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
    }
    let mut hits = 0u64;
    let mut words = s.chunks_exact(8);
    for c in &mut words {
        hits |= word(c);
    }
    // The tail as the last eight bytes (overlapping the last whole word): no byte loop.
    if !words.remainder().is_empty() {
        hits |= s.get(s.len() - 8..).map_or(0, word);
    }
    hits & HIGH != 0
}

/// A string known to need no escapes (enum names), between quotes.
fn quoted<W: Write>(w: &mut W, s: &str) -> io::Result<()> {
    quoted_bytes(w, s.as_bytes())
}

/// ASCII text known to need no escapes (enum names, digits, dotted quads, RFC 3339), between
/// quotes.
fn quoted_bytes<W: Write>(w: &mut W, text: &[u8]) -> io::Result<()> {
    w.write_all(b"\"")?;
    w.write_all(text)?;
    w.write_all(b"\"")
}

/// An unsigned integer: serde_json writes its decimal digits (`itoa`), as `Display` does.
fn uint<W: Write>(w: &mut W, n: u64) -> io::Result<()> {
    w.write_all(decimal::u64_text(n, &mut [0; decimal::U64_DIGITS]))
}

/// An address: serde_json writes `Display`'s text as a string (IPv6, rare here, through it).
fn ip<W: Write>(w: &mut W, a: IpAddr) -> io::Result<()> {
    match a {
        IpAddr::V4(v4) => quoted_bytes(w, decimal::ipv4_text(v4, &mut [0; decimal::IPV4_BUF])),
        IpAddr::V6(_) => serde(w, &a),
    }
}

/// A timestamp: `Timestamp`'s `Serialize` writes its RFC 3339 text (ASCII), or for years
/// outside 0000–9999 chrono's, through serde.
fn timestamp<W: Write>(w: &mut W, t: Timestamp) -> io::Result<()> {
    match t.rfc3339_bytes(&mut [0; Timestamp::RFC3339_LEN]) {
        Some(text) => quoted_bytes(w, text),
        None => serde(w, &t),
    }
}

/// An rcode: its mnemonic or `RCODEnn`, as its `Display` (and so its `Serialize`) writes it.
fn rcode<W: Write>(w: &mut W, r: Rcode) -> io::Result<()> {
    match r.name() {
        Some(n) => quoted(w, n),
        None => {
            w.write_all(b"\"RCODE")?;
            uint(w, u64::from(r.0))?;
            w.write_all(b"\"")
        }
    }
}

fn boolean<W: Write>(w: &mut W, b: bool) -> io::Result<()> {
    w.write_all(if b { b"true" } else { b"false" })
}

/// One value as serde_json writes it.
fn serde<W: Write, T: Serialize + ?Sized>(w: &mut W, v: &T) -> io::Result<()> {
    serde_json::to_writer(&mut *w, v).map_err(io::Error::other)
}

#[cfg(test)]
#[path = "detection_json_tests.rs"]
mod tests;
