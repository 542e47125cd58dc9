//! `poolwatch` shape: the Detection JSON of `docs/detections.md`, unchanged, plus one added
//! object `event` = `{id, kind, sequence, created}` so receivers can dedupe. A rate-limit
//! summary is `{"event": {…, "kind": "rate_limited"}, "rate_limit": {…}}`.

use serde_json::{json, Value};

use crate::output::OutputEvent;

pub fn render(ev: &OutputEvent) -> Value {
    let event = json!({
        "id": ev.event_id(),
        "kind": ev.kind.as_str(),
        "sequence": ev.seq,
        "created": ev.created,
    });
    let mut v = match &ev.detection {
        Some(d) => serde_json::to_value(d).unwrap_or_else(|_| json!({})),
        None => json!({ "rate_limit": ev.rate_limit }),
    };
    if let Some(o) = v.as_object_mut() {
        o.insert("event".into(), event);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Detection;
    use crate::output::format::tests::sample_event;

    #[test]
    fn detection_fields_are_unchanged_and_event_is_added() {
        let ev = sample_event();
        let v = render(&ev);
        assert_eq!(v["event"]["id"], "0123456789abcdef01234567-42");
        assert_eq!(v["event"]["kind"], "upgrade");
        assert_eq!(v["event"]["sequence"], 42);
        // Still a Detection for anyone who parses today's JSON.
        let back: Detection = serde_json::from_value(v).unwrap();
        assert_eq!(Some(back), ev.detection);
    }
}
