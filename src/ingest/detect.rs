//! Format detection: which log format a file's first bytes are.

use super::{coredns, dnstap, lex, windows, zeek, LogFormat};

/// Lines of the head looked at to detect a format.
const DETECT_LINES: usize = 50;

/// Guesses the format of a log from its first bytes (a few lines): dnstap by its Frame Streams
/// header, Zeek by its `#fields` header, JSON formats by their keys, text formats by voting over
/// the first lines (blank and `#` comment lines skipped).
pub fn detect_format(head: &[u8]) -> Option<LogFormat> {
    if dnstap::looks_like_fstrm(head) {
        return Some(LogFormat::Dnstap);
    }
    let mut votes = [0u32; 11];
    let mut seen = 0;
    for line in head.split(|c| *c == b'\n').take(DETECT_LINES * 4) {
        let line = lex::trim_end(line);
        if line.starts_with(b"#fields") || line.starts_with(b"#path") {
            if let Some(f) = zeek::detect_header(line) {
                return Some(f);
            }
            continue;
        }
        let t = lex::trim_start(line);
        if t.is_empty() || t.starts_with(b"#") || t.starts_with(b";") {
            continue;
        }
        if line.iter().take(256).filter(|c| **c == 0).count() > 2 {
            // Binary junk.
            continue;
        }
        seen += 1;
        if let Some(f) = detect_line(t) {
            if let Some(i) = LogFormat::ALL.iter().position(|x| *x == f) {
                if let Some(v) = votes.get_mut(i) {
                    *v += 1;
                }
            }
        }
        if seen >= DETECT_LINES {
            break;
        }
    }
    let (best, n) = votes
        .iter()
        .enumerate()
        .max_by_key(|(i, v)| (**v, std::cmp::Reverse(*i)))?;
    if *n == 0 {
        return None;
    }
    LogFormat::ALL.get(best).copied()
}

fn detect_line(line: &[u8]) -> Option<LogFormat> {
    if line.starts_with(b"{") {
        return eve_or_json(line);
    }
    if windows::looks_like(line) {
        return Some(LogFormat::WindowsDns);
    }
    if lex::find(line, b" queries: ").is_some()
        || lex::find(line, b" query-errors: ").is_some()
        || (lex::find(line, b"client ").is_some() && lex::find(line, b": query: ").is_some())
    {
        return Some(LogFormat::Bind);
    }
    if lex::find(line, b"unbound[").is_some() || lex::find(line, b" unbound: [").is_some() {
        return Some(LogFormat::Unbound);
    }
    if lex::find(line, b"dnsmasq[").is_some()
        || lex::find(line, b"pihole-FTL[").is_some()
        || lex::find(line, b" query[").is_some()
    {
        return Some(LogFormat::Dnsmasq);
    }
    if lex::find(line, b"msg=\"").is_some() && lex::find(line, b"subsystem=\"").is_some()
        || lex::find(line, b"PowerDNS Recursor").is_some()
        || lex::find(line, b"pdns_recursor[").is_some()
        || lex::find(line, b"question for '").is_some()
    {
        return Some(LogFormat::Pdns);
    }
    if coredns::looks_like(line) {
        return Some(LogFormat::CoreDns);
    }
    if lex::find(line, b"kresd[").is_some()
        || line.starts_with(b"[system]")
        || line.starts_with(b"[timesk]")
        || line.starts_with(b"[taupd")
        || line.starts_with(b"[plan")
        || line.starts_with(b"[resolv")
    {
        return Some(LogFormat::Knot);
    }
    None
}

fn eve_or_json(line: &[u8]) -> Option<LogFormat> {
    if lex::find(line, b"\"event_type\"").is_some() {
        return Some(LogFormat::Eve);
    }
    if lex::find(line, b"\"id.orig_h\"").is_some()
        || lex::find(line, b"\"id\":{\"orig_h\"").is_some()
    {
        if lex::find(line, b"\"conn_state\"").is_some()
            || lex::find(line, b"\"orig_bytes\"").is_some()
            || lex::find(line, b"\"history\"").is_some()
        {
            return Some(LogFormat::ZeekConn);
        }
        if lex::find(line, b"\"query\"").is_some() || lex::find(line, b"\"trans_id\"").is_some() {
            return Some(LogFormat::ZeekDns);
        }
    }
    if coredns::looks_like(line) {
        return Some(LogFormat::CoreDns);
    }
    None
}
