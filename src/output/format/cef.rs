//! ArcSight Common Event Format (CEF:0), the syslog message for ArcSight and Microsoft Sentinel
//! (CommonSecurityLog). Keys are from the ArcSight extension dictionary; the detection's own
//! fields travel in the labelled custom strings/numbers (`cs1Label=pool cs1=…`).

use std::fmt::Write as _;

use super::{event_time, primary_dst, signature_id, stage_title, text, RATE_LIMIT_SIGNATURE_ID};
use crate::output::OutputEvent;

/// CEF header fields escape `\` and `|`.
fn header(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '|' => o.push_str("\\|"),
            '\n' | '\r' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// Extension values escape `\`, `=` and line breaks.
fn value(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '=' => o.push_str("\\="),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            c => o.push(c),
        }
    }
    o
}

/// CEF severity 0–10 from the risk score (0–100).
pub fn cef_severity(risk: u8) -> u8 {
    (u16::from(risk).div_ceil(10)).min(10) as u8
}

pub fn render(ev: &OutputEvent) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let rt = event_time(ev).as_micros() / 1000;
    let mut ext: Vec<(&str, String)> = vec![
        ("rt", rt.to_string()),
        ("externalId", ev.event_id()),
        ("act", ev.kind.as_str().to_string()),
        ("msg", text::summary(ev)),
    ];
    let (sig, name, sev) = match &ev.detection {
        Some(d) => {
            ext.push(("src", d.client_ip.to_string()));
            if let Some(ip) = primary_dst(d) {
                ext.push(("dst", ip.to_string()));
            }
            if let Some(p) = d.dst_ports.first() {
                ext.push(("dpt", p.to_string()));
            }
            if let Some(q) = d.query_names.first() {
                ext.push(("dhost", q.clone()));
            }
            if d.stage.is_contact() {
                ext.push(("proto", "TCP".into()));
            }
            ext.push(("start", (d.first_seen.as_micros() / 1000).to_string()));
            ext.push(("end", (d.last_seen.as_micros() / 1000).to_string()));
            ext.push(("cat", "Cryptocurrency mining".into()));
            ext.push(("cs1Label", "pool".into()));
            ext.push(("cs1", d.pool_domain.clone()));
            ext.push(("cs2Label", "stage".into()));
            ext.push(("cs2", d.stage.as_str().into()));
            ext.push(("cs3Label", "mitreTechnique".into()));
            ext.push(("cs3", d.mitre.technique.to_string()));
            ext.push(("cs4Label", "mitreTactic".into()));
            ext.push(("cs4", d.mitre.tactic_id.to_string()));
            ext.push(("cs5Label", "detectionId".into()));
            ext.push(("cs5", d.id.clone()));
            ext.push(("cn1Label", "riskScore".into()));
            ext.push(("cn1", d.risk_score.to_string()));
            ext.push(("cn2Label", "eventSequence".into()));
            ext.push(("cn2", ev.seq.to_string()));
            if let Some(a) = d.agents.first() {
                ext.push(("requestClientApplication", a.clone()));
            }
            if d.suppressed {
                ext.push(("cs6Label", "suppression".into()));
                ext.push(("cs6", d.suppression_id.clone().unwrap_or_default()));
            }
            (
                signature_id(d.stage),
                format!("{}: {}", d.title, stage_title(d.stage)),
                cef_severity(d.risk_score),
            )
        }
        None => (
            RATE_LIMIT_SIGNATURE_ID,
            "poolwatch output rate limit".into(),
            3,
        ),
    };
    let mut out = format!(
        "CEF:0|poolwatch|poolwatch|{}|{sig}|{}|{sev}|",
        header(version),
        header(&name)
    );
    for (i, (k, v)) in ext.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{k}={}", value(v));
    }
    out
}

/// Parses a CEF line back into (header fields, extension map): for tests and for checking
/// that escaping round-trips.
pub fn parse(line: &str) -> Option<(Vec<String>, std::collections::BTreeMap<String, String>)> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars();
    while fields.len() < 7 {
        match chars.next()? {
            '\\' => cur.push(chars.next()?),
            '|' => fields.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    let rest: String = chars.collect();
    // Split on ` key=` boundaries: a key is [A-Za-z0-9]+ followed by an unescaped `=`.
    let mut map = std::collections::BTreeMap::new();
    let mut key = String::new();
    let mut val = String::new();
    let mut in_key = true;
    let mut it = rest.chars().peekable();
    while let Some(c) = it.next() {
        if in_key {
            if c == '=' {
                in_key = false;
            } else {
                key.push(c);
            }
            continue;
        }
        match c {
            '\\' => match it.next()? {
                'n' => val.push('\n'),
                'r' => val.push('\r'),
                o => val.push(o),
            },
            ' ' => {
                // Is the next token `key=`?
                let ahead: String = it.clone().take_while(|c| *c != ' ' && *c != '=').collect();
                let next_is_key = !ahead.is_empty()
                    && ahead.chars().all(|c| c.is_ascii_alphanumeric())
                    && it.clone().nth(ahead.chars().count()) == Some('=');
                if next_is_key {
                    map.insert(std::mem::take(&mut key), std::mem::take(&mut val));
                    in_key = true;
                } else {
                    val.push(' ');
                }
            }
            c => val.push(c),
        }
    }
    if !key.is_empty() {
        map.insert(key, val);
    }
    Some((fields, map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::format::tests::sample_event;

    #[test]
    fn header_and_extension_round_trip() {
        let mut ev = sample_event();
        if let Some(d) = ev.detection.as_mut() {
            d.pool_domain = "a|b=c\\d".into();
            d.agents = vec!["XMRig key=value\nnext".into()];
        }
        let line = render(&ev);
        assert!(line.starts_with("CEF:0|poolwatch|poolwatch|"), "{line}");
        assert!(!line.contains('\n'));
        let (h, ext) = parse(&line).unwrap();
        assert_eq!(h[4], "9496005");
        assert_eq!(h[6], "10");
        assert_eq!(ext["src"], "192.0.2.10");
        assert_eq!(ext["dst"], "203.0.113.10");
        assert_eq!(ext["dpt"], "3333");
        assert_eq!(ext["cs1"], "a|b=c\\d");
        assert_eq!(ext["requestClientApplication"], "XMRig key=value\nnext");
        assert_eq!(ext["externalId"], "0123456789abcdef01234567-42");
        assert_eq!(ext["cs3"], "T1496");
        assert_eq!(cef_severity(45), 5);
        assert_eq!(cef_severity(0), 0);
    }
}
