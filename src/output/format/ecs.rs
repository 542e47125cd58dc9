//! Elastic Common Schema 8.x alert (`event.kind: alert`). Every field used is an ECS field of
//! the documented type (`tests/it/output_file.rs` checks the types); the poolwatch record rides
//! along under the custom `poolwatch.*` namespace.

use serde_json::{json, Map, Value};

use super::{event_time, primary_dst, rule_id, set, stage_title, text, Observer};
use crate::output::{EventKind, OutputEvent};

/// The ECS version the records follow.
pub const ECS_VERSION: &str = "8.11.0";
const TECHNIQUE_REF: &str = "https://attack.mitre.org/techniques/T1496/";
const TACTIC_REF: &str = "https://attack.mitre.org/tactics/TA0040/";

pub fn render(ev: &OutputEvent, obs: &Observer) -> Value {
    let mut event = json!({
        "kind": "alert",
        "category": ["network", "intrusion_detection"],
        "type": ["info"],
        "action": ev.kind.as_str(),
        "id": ev.event_id(),
        "sequence": ev.seq,
        "created": ev.created,
        "module": "poolwatch",
        "dataset": "poolwatch.detection",
        "provider": "poolwatch",
    });
    let mut root = json!({
        "@timestamp": event_time(ev),
        "ecs": {"version": ECS_VERSION},
        "message": text::summary(ev),
        "observer": {
            "type": "ids",
            "vendor": "poolwatch",
            "product": "poolwatch",
            "version": obs.version,
            "hostname": obs.hostname,
            "name": obs.name,
        },
        "tags": ["poolwatch", "cryptomining"],
    });
    let Some(d) = &ev.detection else {
        // A rate-limit summary: an operational event, not an alert.
        set(&mut event, "kind", json!("event"));
        set(&mut event, "category", json!(["network"]));
        set(&mut event, "action", json!("rate_limited"));
        set(&mut event, "dataset", json!("poolwatch.output"));
        set(&mut root, "event", event);
        set(&mut root, "poolwatch", super::poolwatch::render(ev));
        return root;
    };
    let risk = f64::from(d.risk_score);
    set(&mut event, "risk_score", json!(risk));
    set(&mut event, "risk_score_norm", json!(risk));
    set(&mut event, "severity", json!(d.risk_score));
    set(&mut event, "start", json!(d.first_seen));
    set(&mut event, "end", json!(d.last_seen));
    set(&mut event, "reason", json!(stage_title(d.stage)));
    let Some(obj) = root.as_object_mut() else {
        return root;
    };
    obj.insert("event".into(), event);
    obj.insert("source".into(), json!({"ip": d.client_ip}));
    let mut dst = Map::new();
    if let Some(ip) = primary_dst(d) {
        dst.insert("ip".into(), json!(ip));
    }
    if let Some(p) = d.dst_ports.first() {
        dst.insert("port".into(), json!(p));
    }
    if let Some(q) = d.query_names.first() {
        dst.insert("domain".into(), json!(q));
    }
    if !dst.is_empty() {
        obj.insert("destination".into(), Value::Object(dst));
    }
    if let Some(q) = d.query_names.first() {
        obj.insert("dns".into(), json!({"question": {"name": q}}));
    }
    obj.insert(
        "threat".into(),
        json!({
            "framework": "MITRE ATT&CK",
            "technique": {
                "id": [d.mitre.technique],
                "name": [d.mitre.technique_name],
                "reference": [TECHNIQUE_REF],
            },
            "tactic": {
                "id": [d.mitre.tactic_id],
                "name": [d.mitre.tactic],
                "reference": [TACTIC_REF],
            },
        }),
    );
    obj.insert(
        "rule".into(),
        json!({
            "id": rule_id(d.stage),
            "name": format!("{}: {}", d.title, stage_title(d.stage)),
            "category": "Cryptocurrency mining",
            "ruleset": "poolwatch",
            "description": d.title,
            "reference": TECHNIQUE_REF,
        }),
    );
    let mut related_ip = vec![json!(d.client_ip)];
    related_ip.extend(d.pool_ips.iter().map(|ip| json!(ip)));
    let mut related = json!({"ip": related_ip});
    if !d.query_names.is_empty() {
        set(&mut related, "hosts", json!(d.query_names));
    }
    obj.insert("related".into(), related);
    if let Some(a) = d.agents.first() {
        obj.insert("user_agent".into(), json!({"original": a}));
    }
    if d.stage == crate::model::Stage::Stratum {
        obj.insert("network".into(), json!({"protocol": "stratum"}));
    }
    obj.insert("poolwatch".into(), super::poolwatch::render(ev));
    if ev.kind == EventKind::New && d.is_new {
        if let Some(t) = obj.get_mut("tags").and_then(Value::as_array_mut) {
            t.push(json!("new_host"));
        }
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::format::tests::{observer, sample_event};

    #[test]
    fn contract_fields() {
        let v = render(&sample_event(), &observer());
        assert_eq!(v["event"]["kind"], "alert");
        assert_eq!(
            v["event"]["category"],
            json!(["network", "intrusion_detection"])
        );
        assert_eq!(v["event"]["risk_score"], 97.0);
        assert_eq!(v["source"]["ip"], "192.0.2.10");
        assert_eq!(v["destination"]["ip"], "203.0.113.10");
        assert_eq!(v["destination"]["port"], 3333);
        assert_eq!(v["dns"]["question"]["name"], "pool.supportxmr.com");
        assert_eq!(v["threat"]["technique"]["id"], json!(["T1496"]));
        assert_eq!(v["threat"]["tactic"]["id"], json!(["TA0040"]));
        assert_eq!(v["observer"]["hostname"], "sensor-1");
        assert_eq!(v["@timestamp"], "2026-11-26T20:00:03.000000Z");
        assert_eq!(v["poolwatch"]["client_ip"], "192.0.2.10");
        assert!(v["rule"]["name"].as_str().unwrap().contains("Stratum"));
    }
}
