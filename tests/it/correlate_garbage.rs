//! Hostile input for the correlation layer, as an ordinary test (the fuzz target
//! `correlate_observe` does the same at scale): random and truncated payloads for the Stratum
//! rule (`capture::payload`), hostile observations for the engine, garbage cursors and ids for the store.

use crate::support::rng as common;

use poolwatch::capture::payload::classify_client;
use poolwatch::correlate::{Engine, EngineConfig};
use poolwatch::matcher::{self, Blocklists};
use poolwatch::model::{AppInfo, Observation};
use poolwatch::query::DetectionFilter;
use poolwatch::store::{Store, StoreError};

use common::Rng;

#[test]
fn stratum_rule_survives_garbage_and_truncation() {
    // The one Stratum rule (capture::payload); the engine has no sniffer of its own.
    let method = |p: &[u8]| {
        let mut app = AppInfo::default();
        classify_client(p, &mut app);
        app.stratum_method
    };
    let good = br#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"4A","pass":"x","agent":"XMRig/6.21.0"}}"#;
    assert_eq!(method(good).as_deref(), Some("login"));
    assert_eq!(
        method(br#" {"method" : "mining.subscribe"}"#).as_deref(),
        Some("mining.subscribe")
    );
    assert_eq!(method(b"GET /status HTTP/1.1\r\n"), None);
    assert_eq!(method(br#"{"method":"loginx"}"#), None);
    assert_eq!(
        method(br#"{"method":"login","params":{"login":"bob"}}"#),
        None
    );
    assert_eq!(method(br#"{"method":"#), None);
    for i in 0..=good.len() {
        let _ = method(&good[..i]);
    }
    let mut r = Rng(42);
    for _ in 0..20_000 {
        let len = (r.next() % 300) as usize;
        let mut v = r.bytes(len);
        if r.next() % 2 == 0 {
            v.splice(0..0, br#"{"method":""#.iter().copied());
        }
        let _ = method(&v);
    }
}

#[test]
fn engine_survives_hostile_observations() {
    let mut e = Engine::new(
        EngineConfig::default(),
        matcher::shared(Blocklists::builtin().unwrap()),
    );
    let long = "a.".repeat(2000) + "supportxmr.com";
    let lines = [
        // Absurd TTL, extreme timestamps, empty/garbage answers, long names.
        format!(r#"{{"observation":"dns","ts":"1970-01-01T00:00:00Z","client":"10.0.0.1","transport":"udp","qname":"{long}","qtype":"A","rcode":"NOERROR","answers":[{{"name":"x","type":"A","ttl":4294967295,"data":"not-an-ip"}},{{"name":"x","type":"A","ttl":4294967295,"data":"198.51.100.1"}}],"source":"t"}}"#),
        r#"{"observation":"dns","ts":-9.0e11,"client":"::","transport":"tcp","qname":"pool.supportxmr.com","qtype":"TYPE65535","rcode":"RCODE4095","source":""}"#.to_string(),
        r#"{"observation":"flow","ts":"2262-01-01T00:00:00Z","last_ts":"1970-01-01T00:00:00Z","src":"10.0.0.1","src_port":0,"dst":"198.51.100.1","dst_port":0,"proto":"udp","direction":"inferred","state":"rejected","bytes_out":18446744073709551615,"bytes_in":18446744073709551615,"packets_out":0,"packets_in":0,"payload_out":"7b226d6574686f64223a226c6f67696e227d","app":{"stratum_agent":"ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀ü€😀"},"source":"t"}"#.to_string(),
    ];
    for l in &lines {
        let o: Observation = serde_json::from_str(l).expect(l);
        for _ in 0..3 {
            let _ = e.observe(&o);
        }
    }
    let d = e.drain();
    let _ = d;
}

#[test]
fn store_rejects_garbage_cursors_and_ids() {
    let s = Store::open_temporary().unwrap();
    let mut r = Rng(7);
    for _ in 0..2_000 {
        let len = (r.next() % 80) as usize;
        let c: String = (0..len)
            .map(|_| char::from(32 + (r.next() % 95) as u8))
            .collect();
        match s.list_detections(&DetectionFilter::default(), 10, Some(&c)) {
            Ok(_) | Err(StoreError::BadCursor) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
        assert!(s.get_detection(&c).unwrap().is_none());
        assert!(!s.delete_suppression(&c).unwrap());
    }
}
