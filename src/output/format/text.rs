//! A one-line human summary of an event (Slack text, CEF/LEEF `msg`).

use super::stage_title;
use crate::output::{EventKind, OutputEvent};

pub fn summary(ev: &OutputEvent) -> String {
    if let Some(d) = &ev.detection {
        let what = match ev.kind {
            EventKind::New => "new",
            EventKind::Upgrade => "upgraded to",
            _ => "update:",
        };
        let dst = match (d.pool_ips.first(), d.dst_ports.first()) {
            (Some(ip), Some(p)) => format!(" -> {ip}:{p}"),
            (Some(ip), None) => format!(" -> {ip}"),
            _ => String::new(),
        };
        let sup = if d.suppressed { " [suppressed]" } else { "" };
        return format!(
            "poolwatch: {what} {} by {} ({}{dst}), risk {}{sup}",
            stage_title(d.stage),
            d.client_ip,
            d.pool_domain,
            d.risk_score
        );
    }
    match &ev.rate_limit {
        Some(r) if r.suppressed == 0 => format!(
            "poolwatch: rate limit of {} records per {} s reached on sink {}; further records are \
             counted, not sent, until the window ends",
            r.limit, r.window_secs, r.sink
        ),
        Some(r) => format!(
            "poolwatch: rate limit of {} records per {} s on sink {}: {} record(s) not sent since {}",
            r.limit,
            r.window_secs,
            r.sink,
            r.suppressed,
            r.since.to_rfc3339()
        ),
        None => "poolwatch: event".into(),
    }
}
