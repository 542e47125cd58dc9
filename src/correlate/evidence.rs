//! Evidence of one incident: bounded lists (first few kept, then the strongest) and the
//! summaries of DNS and flow evidence.

use std::net::IpAddr;

use super::attribution::{Attribution, SharedHit};
use super::engine::{EVIDENCE_KEEP_FIRST, MAX_EVIDENCE, MAX_LISTS};
use crate::model::{
    DnsObservation, Evidence, EvidenceKind, FlowObservation, FlowState, ListHit, Proto, Rcode,
};
use crate::util::decimal;

pub(super) fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T, cap: usize) {
    if v.len() < cap && !v.contains(&x) {
        v.push(x);
    }
}

/// [`push_unique`] of a borrowed value: cloned only when it is added (a flood's events repeat
/// the same source and names; each clone was an allocation or a refcount bump, issue #11).
pub(super) fn push_unique_ref<T: PartialEq + Clone>(v: &mut Vec<T>, x: &T, cap: usize) {
    if v.len() < cap && !v.contains(x) {
        v.push(x.clone());
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

/// [`push_hit`] of an attribution's shared hit: an owned copy only when it is added.
pub(super) fn push_shared_hit(v: &mut Vec<ListHit>, hit: &SharedHit) {
    if v.len() < MAX_LISTS && !v.iter().any(|h| hit.same_entry(h)) {
        v.push(hit.to_list_hit());
    }
}

/// Keeps the first few items and, in the remaining slots, the strongest.
pub(super) fn add_evidence(v: &mut Vec<Evidence>, ev: Evidence) {
    if v.len() < MAX_EVIDENCE {
        if v.len() == v.capacity() {
            v.reserve_exact(evidence_growth(v.len()));
        }
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

/// How many evidence slots to add to a full list of `len`: half again (at least 3), never past
/// [`MAX_EVIDENCE`] — capacities 3, 6, 9, 12. `Vec`'s doubling gave a typical six-item list
/// eight ~220-byte slots (issue #11: ≈ 29 MB over a 65 536-client flood), and twelve items
/// sixteen; starting at 2 (2, 4, 6) cost a six-item list two reallocations (≈ 8 M of a
/// 8 192-client flood's 730 M instructions, for 224 bytes more in a one-item list).
pub(super) fn evidence_growth(len: usize) -> usize {
    (len / 2)
        .max(3)
        .min(MAX_EVIDENCE.saturating_sub(len).max(1))
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

/// Decimal `n`, as `Display` writes it, without the formatting machinery (a flood renders a
/// summary per event with several numbers and addresses each: through `write!` they cost
/// ≈ 3 600 instructions per flow summary, issue #11).
pub(super) fn push_u64(s: &mut Vec<u8>, n: u64) {
    s.extend_from_slice(decimal::u64_text(n, &mut [0; decimal::U64_DIGITS]));
}

/// `ip` as `Display` writes it: IPv4 without `core::fmt`, IPv6 through `Display` (rare).
pub(super) fn push_ip(s: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => s.extend_from_slice(decimal::ipv4_text(a, &mut [0; decimal::IPV4_BUF])),
        IpAddr::V6(a) => s.extend_from_slice(a.to_string().as_bytes()),
    }
}

/// A summary's text: its pieces are `str`s and ASCII digits, so the bytes are UTF-8; they are
/// checked once, here, not piece by piece (issue #11: ≈ 65 instructions per piece).
fn summary_text(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Summaries are written into one buffer, not assembled from `format!` pieces: a flood renders
/// one per event (issue #11), and every piece was an allocation.
/// `ips`: the A/AAAA answers' addresses, in order (`d.answer_ips()`, parsed once by the caller).
pub(super) fn dns_summary(
    d: &DnsObservation,
    ips: impl Iterator<Item = IpAddr>,
    hit: &ListHit,
    via_cname: bool,
) -> String {
    let mut s = Vec::with_capacity(d.qname.len() + 48);
    // `RrType`'s `Display` without the formatting machinery for the named types.
    match d.qtype.name() {
        Some(n) => s.extend_from_slice(n.as_bytes()),
        None => s.extend_from_slice(d.qtype.to_string().as_bytes()),
    }
    s.push(b' ');
    s.extend_from_slice(d.qname.as_bytes());
    match d.rcode {
        Some(r) if r != Rcode::NOERROR => {
            s.extend_from_slice(b" -> ");
            s.extend_from_slice(r.to_string().as_bytes());
        }
        Some(_) => {
            for (i, ip) in ips.take(4).enumerate() {
                s.extend_from_slice(if i == 0 { b" -> " } else { b", " });
                push_ip(&mut s, ip);
            }
            if let Some(ttl) = d.answers.iter().find_map(|a| a.ttl) {
                s.extend_from_slice(b" (ttl ");
                push_u64(&mut s, u64::from(ttl));
                s.push(b')');
            }
        }
        None => s.extend_from_slice(b" (no answer seen)"),
    }
    if via_cname {
        s.extend_from_slice(b" via CNAME under ");
        s.extend_from_slice(hit.entry.as_bytes());
    }
    summary_text(s)
}

pub(super) fn flow_summary(f: &FlowObservation, att: &Attribution, method: Option<&str>) -> String {
    let state: &[u8] = match f.state {
        FlowState::Attempted => b"attempted",
        FlowState::Rejected => b"rejected",
        FlowState::Established => b"established",
        FlowState::Closed => b"closed",
    };
    let proto: &[u8] = match f.proto {
        Proto::Tcp => b"tcp ",
        Proto::Udp => b"udp ",
    };
    // "{proto} {src}:{port} -> {dst}:{port} {state} ({how}), {out} B out / {in} B in"
    let mut s = Vec::with_capacity(96);
    s.extend_from_slice(proto);
    push_ip(&mut s, f.src);
    s.push(b':');
    push_u64(&mut s, u64::from(f.src_port));
    s.extend_from_slice(b" -> ");
    push_ip(&mut s, f.dst);
    s.push(b':');
    push_u64(&mut s, u64::from(f.dst_port));
    s.push(b' ');
    s.extend_from_slice(state);
    s.extend_from_slice(b" (");
    s.extend_from_slice(att.how.as_str().as_bytes());
    s.extend_from_slice(b"), ");
    push_u64(&mut s, f.bytes_out);
    s.extend_from_slice(b" B out / ");
    push_u64(&mut s, f.bytes_in);
    s.extend_from_slice(b" B in");
    if let Some(m) = method {
        s.extend_from_slice(b", stratum ");
        s.extend_from_slice(m.as_bytes());
    }
    if let Some(a) = &f.app.stratum_agent {
        s.extend_from_slice(b", agent ");
        s.extend_from_slice(truncate(a, 64).as_bytes());
    }
    if let Some(sni) = &f.app.sni {
        s.extend_from_slice(b", sni ");
        s.extend_from_slice(sni.as_bytes());
    } else if let Some(host) = &f.app.http_host {
        s.extend_from_slice(b", host ");
        s.extend_from_slice(host.as_bytes());
    }
    summary_text(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Source, Timestamp};

    fn item(i: i64, kind: EvidenceKind) -> Evidence {
        Evidence::new(Timestamp(i), kind, Source::new("t"), format!("item {i}"))
    }

    /// Issue #11: a flood's detection has six items (three lookups, three SYNs); `Vec`'s
    /// doubling gave them eight ~220-byte slots each. The list grows by half, to the cap.
    #[test]
    fn evidence_lists_grow_to_what_they_hold() {
        let mut v = Vec::new();
        let mut caps = Vec::new();
        for i in 0..20 {
            add_evidence(&mut v, item(i, EvidenceKind::DnsLookup));
            caps.push(v.capacity());
        }
        assert_eq!(v.len(), MAX_EVIDENCE);
        assert_eq!(caps.get(5), Some(&6), "six items, six slots: {caps:?}");
        assert!(caps.iter().all(|&c| c <= MAX_EVIDENCE), "{caps:?}");
        let mut w = Vec::new();
        for i in 0..6 {
            add_evidence(&mut w, item(i, EvidenceKind::Flow));
        }
        assert_eq!(w.capacity(), 6);
    }

    /// The summaries' numbers and addresses are `Display`'s text exactly.
    #[test]
    fn fast_numbers_and_addresses_are_display_text() {
        let mut nums = vec![
            0u64,
            1,
            9,
            10,
            99,
            100,
            3333,
            65_535,
            u64::from(u32::MAX),
            u64::MAX,
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            nums.push(x >> (x % 64));
        }
        // Every octet and the first numbers past one (the `u8` shortcut's edge).
        nums.extend(0..=300);
        for n in nums {
            let mut s = b"x".to_vec();
            push_u64(&mut s, n);
            assert_eq!(s, format!("x{n}").into_bytes());
            let v4 = IpAddr::from((n as u32).to_be_bytes());
            let v6 = IpAddr::from(std::net::Ipv6Addr::from(u128::from(n) << (n % 64)));
            for ip in [v4, v6] {
                let mut s = Vec::new();
                push_ip(&mut s, ip);
                assert_eq!(s, ip.to_string().into_bytes());
            }
        }
    }

    /// Whatever the list's length, the next step ends on the cap exactly.
    #[test]
    fn growth_steps_stay_within_the_cap() {
        let steps: Vec<usize> = (0..MAX_EVIDENCE).map(evidence_growth).collect();
        assert!(steps.iter().all(|&s| s >= 1));
        let mut cap = 0;
        while cap < MAX_EVIDENCE {
            cap += evidence_growth(cap);
        }
        assert_eq!(cap, MAX_EVIDENCE);
    }
}
