//! IBM QRadar Log Event Extended Format, LEEF 2.0 with a tab delimiter. Predefined keys (`src`,
//! `dst`, `dstPort`, `sev`, `cat`, `devTime`) where they exist, custom keys for the rest.

use super::{event_time, primary_dst, stage_title, text};
use crate::output::OutputEvent;

/// `devTime` format (Java SimpleDateFormat, as QRadar reads `devTimeFormat`).
pub const DEV_TIME_FORMAT: &str = "yyyy-MM-dd'T'HH:mm:ss.SSSX";

/// LEEF has no escape: header fields lose `|`, values lose the tab delimiter and line breaks.
fn clean(s: &str, extra: char) -> String {
    s.chars()
        .map(|c| {
            if c == '\t' || c == '\n' || c == '\r' || c == extra {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// QRadar severity 1–10 from the risk score.
pub fn leef_severity(risk: u8) -> u8 {
    (u16::from(risk).div_ceil(10)).clamp(1, 10) as u8
}

pub fn render(ev: &OutputEvent) -> String {
    let t = event_time(ev);
    let dev_time = t
        .to_datetime()
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default();
    let mut attrs: Vec<(&str, String)> = vec![
        ("devTime", dev_time),
        ("devTimeFormat", DEV_TIME_FORMAT.into()),
        ("eventId", ev.event_id()),
        ("action", ev.kind.as_str().into()),
        ("msg", text::summary(ev)),
    ];
    let event_id = match &ev.detection {
        Some(d) => {
            attrs.push(("cat", "Cryptocurrency mining".into()));
            attrs.push(("sev", leef_severity(d.risk_score).to_string()));
            attrs.push(("src", d.client_ip.to_string()));
            if let Some(ip) = primary_dst(d) {
                attrs.push(("dst", ip.to_string()));
            }
            if let Some(p) = d.dst_ports.first() {
                attrs.push(("dstPort", p.to_string()));
            }
            if d.stage.is_contact() {
                attrs.push(("proto", "TCP".into()));
            }
            if let Some(q) = d.query_names.first() {
                attrs.push(("queryName", q.clone()));
            }
            attrs.push(("pool", d.pool_domain.clone()));
            attrs.push(("stage", d.stage.as_str().into()));
            attrs.push(("riskScore", d.risk_score.to_string()));
            attrs.push(("detectionId", d.id.clone()));
            attrs.push(("mitreTechnique", d.mitre.technique.to_string()));
            attrs.push(("mitreTactic", d.mitre.tactic_id.to_string()));
            attrs.push(("title", format!("{}: {}", d.title, stage_title(d.stage))));
            if let Some(a) = d.agents.first() {
                attrs.push(("userAgent", a.clone()));
            }
            if d.suppressed {
                attrs.push(("suppressed", "true".into()));
            }
            format!("mining_{}", d.stage.as_str())
        }
        None => "output_rate_limited".into(),
    };
    let mut out = format!(
        "LEEF:2.0|poolwatch|poolwatch|{}|{}|x09|",
        clean(env!("CARGO_PKG_VERSION"), '|'),
        event_id
    );
    let body: Vec<String> = attrs
        .iter()
        .map(|(k, v)| format!("{k}={}", clean(v, '\t')))
        .collect();
    out.push_str(&body.join("\t"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::format::tests::sample_event;

    #[test]
    fn header_and_attributes() {
        let mut ev = sample_event();
        if let Some(d) = ev.detection.as_mut() {
            d.agents = vec!["a\tb\nc".into()];
        }
        let line = render(&ev);
        let parts: Vec<&str> = line.splitn(7, '|').collect();
        assert_eq!(parts[0], "LEEF:2.0");
        assert_eq!(parts[4], "mining_stratum");
        assert_eq!(parts[5], "x09");
        let attrs: std::collections::BTreeMap<&str, &str> = parts[6]
            .split('\t')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        assert_eq!(attrs["src"], "192.0.2.10");
        assert_eq!(attrs["dst"], "203.0.113.10");
        assert_eq!(attrs["dstPort"], "3333");
        assert_eq!(attrs["sev"], "10");
        assert_eq!(attrs["userAgent"], "a b c");
        assert_eq!(attrs["devTime"], "2026-11-26T20:00:03.000Z");
        assert!(!line.contains('\n'));
    }
}
