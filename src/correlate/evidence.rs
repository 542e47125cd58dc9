//! Evidence of one incident: bounded lists (first few kept, then the strongest) and the
//! summaries of DNS and flow evidence.

use super::attribution::Attribution;
use super::engine::{EVIDENCE_KEEP_FIRST, MAX_EVIDENCE, MAX_LISTS};
use crate::model::{
    DnsObservation, Evidence, EvidenceKind, FlowObservation, FlowState, ListHit, Proto, Rcode,
};

pub(super) fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T, cap: usize) {
    if v.len() < cap && !v.contains(&x) {
        v.push(x);
    }
}

/// Adds a list hit unless the same (list, entry) is already there.
pub(super) fn push_hit(v: &mut Vec<ListHit>, hit: &ListHit) {
    if v.len() < MAX_LISTS && !v.iter().any(|h| h.list == hit.list && h.entry == hit.entry) {
        v.push(hit.clone());
    }
}

pub(super) fn strength(e: &Evidence) -> u8 {
    match e.kind {
        EvidenceKind::Stratum => 5,
        EvidenceKind::Flow | EvidenceKind::TlsSni
            if matches!(e.state, Some(FlowState::Established | FlowState::Closed)) =>
        {
            4
        }
        EvidenceKind::TlsSni => 3,
        EvidenceKind::Flow => 2,
        EvidenceKind::DnsLookup => 1,
        EvidenceKind::DnsBlocked => 0,
    }
}

/// Keeps the first few items and, in the remaining slots, the strongest.
pub(super) fn add_evidence(v: &mut Vec<Evidence>, ev: Evidence) {
    if v.len() < MAX_EVIDENCE {
        v.push(ev);
        return;
    }
    let new_s = strength(&ev);
    let weakest = v
        .iter()
        .enumerate()
        .skip(EVIDENCE_KEEP_FIRST)
        .min_by_key(|(_, e)| strength(e))
        .map(|(i, e)| (i, strength(e)));
    if let Some((i, s)) = weakest {
        if s < new_s {
            v.remove(i);
            v.push(ev);
        }
    }
}

/// A later report of the same flow replaces the earlier item; otherwise the item is added.
pub(super) fn supersede_or_add(v: &mut Vec<Evidence>, ev: Evidence) {
    let same = v.iter_mut().find(|e| {
        matches!(
            e.kind,
            EvidenceKind::Flow | EvidenceKind::TlsSni | EvidenceKind::Stratum
        ) && e.ts == ev.ts
            && e.src_port == ev.src_port
            && e.dst == ev.dst
            && e.dst_port == ev.dst_port
    });
    let Some(e) = same else {
        add_evidence(v, ev);
        return;
    };
    // Keep the strongest kind seen for this flow (an interim Stratum stays Stratum).
    let keep_kind = (strength(e) > strength(&ev)).then_some(e.kind);
    let method = e.method.take();
    let agent = e.agent.take();
    *e = ev;
    if let Some(k) = keep_kind {
        e.kind = k;
    }
    if e.method.is_none() {
        e.method = method;
    }
    if e.agent.is_none() {
        e.agent = agent;
    }
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("").to_string()
}

pub(super) fn dns_summary(d: &DnsObservation, hit: &ListHit, via_cname: bool) -> String {
    let mut s = format!("{} {}", d.qtype, d.qname);
    match d.rcode {
        Some(r) if r != Rcode::NOERROR => s.push_str(&format!(" -> {r}")),
        Some(_) => {
            let ips: Vec<String> = d.answer_ips().take(4).map(|i| i.to_string()).collect();
            if !ips.is_empty() {
                s.push_str(&format!(" -> {}", ips.join(", ")));
            }
            if let Some(ttl) = d.answers.iter().find_map(|a| a.ttl) {
                s.push_str(&format!(" (ttl {ttl})"));
            }
        }
        None => s.push_str(" (no answer seen)"),
    }
    if via_cname {
        s.push_str(&format!(" via CNAME under {}", hit.entry));
    }
    s
}

pub(super) fn flow_summary(f: &FlowObservation, att: &Attribution, method: Option<&str>) -> String {
    let state = match f.state {
        FlowState::Attempted => "attempted",
        FlowState::Rejected => "rejected",
        FlowState::Established => "established",
        FlowState::Closed => "closed",
    };
    let proto = match f.proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    };
    let mut s = format!(
        "{proto} {}:{} -> {}:{} {state} ({}), {} B out / {} B in",
        f.src,
        f.src_port,
        f.dst,
        f.dst_port,
        att.how.as_str(),
        f.bytes_out,
        f.bytes_in
    );
    if let Some(m) = method {
        s.push_str(&format!(", stratum {m}"));
    }
    if let Some(a) = &f.app.stratum_agent {
        s.push_str(&format!(", agent {}", truncate(a, 64)));
    }
    if let Some(sni) = &f.app.sni {
        s.push_str(&format!(", sni {sni}"));
    } else if let Some(host) = &f.app.http_host {
        s.push_str(&format!(", host {host}"));
    }
    s
}
