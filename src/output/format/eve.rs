//! Suricata EVE JSON `event_type: "alert"`, as Suricata 7 writes it, so a pipeline that already
//! ingests Suricata alerts takes poolwatch's unchanged. `alert.metadata` values are arrays of
//! strings like Suricata's rule metadata; the poolwatch record is under `poolwatch`.

use serde_json::{json, Value};

use super::{
    event_time, primary_dst, set, signature_id, stage_title, suricata_time, Observer, Severity,
    RATE_LIMIT_SIGNATURE_ID,
};
use crate::model::Stage;
use crate::output::OutputEvent;

/// Suricata's `classification.config` class for mining (`coin-mining`).
pub const CATEGORY: &str = "Crypto Currency Mining Activity Detected";

/// Suricata priorities: 1 is the most severe.
fn priority(s: Severity) -> u8 {
    match s {
        Severity::Critical | Severity::High => 1,
        Severity::Medium => 2,
        Severity::Low => 3,
    }
}

/// A stable 52-bit number from the detection id (EVE `flow_id` is a number; JSON readers keep
/// 53 bits exactly).
fn flow_id(id: &str) -> u64 {
    let hex: String = id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(13)
        .collect();
    u64::from_str_radix(&hex, 16).unwrap_or(0)
}

pub fn render(ev: &OutputEvent, obs: &Observer) -> Value {
    let ts = suricata_time(event_time(ev));
    let Some(d) = &ev.detection else {
        return json!({
            "timestamp": ts,
            "event_type": "alert",
            "host": obs.name,
            "alert": {
                "action": "allowed",
                "gid": 1,
                "signature_id": RATE_LIMIT_SIGNATURE_ID,
                "rev": 1,
                "signature": super::text::summary(ev),
                "category": "Not Suspicious Traffic",
                "severity": 3,
                "metadata": {"poolwatch_event_id": [ev.event_id()]},
            },
            "poolwatch": super::poolwatch::render(ev),
        });
    };
    let mut v = json!({
        "timestamp": ts,
        "flow_id": flow_id(&d.id),
        "event_type": "alert",
        "src_ip": d.client_ip,
        "proto": if d.stage.is_contact() { "TCP" } else { "UDP" },
        "host": obs.name,
        "alert": {
            "action": "allowed",
            "gid": 1,
            "signature_id": signature_id(d.stage),
            "rev": 1,
            "signature": format!("POOLWATCH {} ({})", stage_title(d.stage), d.pool_domain),
            "category": CATEGORY,
            "severity": priority(super::severity(d.risk_score)),
            "metadata": {
                "mitre_technique_id": [d.mitre.technique],
                "mitre_technique_name": [d.mitre.technique_name.replace(' ', "_")],
                "mitre_tactic_id": [d.mitre.tactic_id],
                "mitre_tactic_name": [d.mitre.tactic],
                "poolwatch_event_id": [ev.event_id()],
                "poolwatch_stage": [d.stage.as_str()],
                "poolwatch_risk_score": [d.risk_score.to_string()],
                "poolwatch_pool": [d.pool_domain],
            },
        },
    });
    if let Some(ip) = primary_dst(d) {
        set(&mut v, "dest_ip", json!(ip));
    }
    if let Some(p) = d.dst_ports.first() {
        set(&mut v, "dest_port", json!(p));
    }
    if let Some(q) = d.query_names.first() {
        set(
            &mut v,
            "dns",
            json!({"query": [{"type": "query", "rrname": q, "rrtype": "A"}]}),
        );
    }
    if d.stage == Stage::Stratum {
        set(&mut v, "app_proto", json!("stratum"));
    } else if !d.stage.is_contact() {
        set(&mut v, "app_proto", json!("dns"));
    }
    set(&mut v, "poolwatch", super::poolwatch::render(ev));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::format::tests::{observer, sample_event};

    #[test]
    fn contract_fields() {
        let v = render(&sample_event(), &observer());
        assert_eq!(v["event_type"], "alert");
        assert_eq!(v["src_ip"], "192.0.2.10");
        assert_eq!(v["dest_ip"], "203.0.113.10");
        assert_eq!(v["dest_port"], 3333);
        assert_eq!(v["alert"]["severity"], 1);
        assert_eq!(
            v["alert"]["metadata"]["mitre_technique_id"],
            json!(["T1496"])
        );
        assert!(v["alert"]["signature"]
            .as_str()
            .unwrap()
            .contains("supportxmr.com"));
        assert_eq!(v["timestamp"], "2026-11-26T20:00:03.000000+0000");
        assert_eq!(v["flow_id"], 0x0123456789abc_u64);
    }
}
