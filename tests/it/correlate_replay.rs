//! Exactly-once counting through the real pipeline and a real sled store (issue #11, crash
//! loop): positioned observations fed again to a fresh engine over the same store (what a
//! restart that re-reads a followed log does) change no counts, while the engine's
//! cross-source rule (a query seen by a sniffer and a log is one lookup) still holds, also for
//! the log's copy read again when the sniffer's copy is no longer in memory.

use poolwatch::correlate::{DetectionStore, Engine, EngineConfig, Pipeline};
use poolwatch::matcher::{self, Blocklists};
use poolwatch::model::*;
use poolwatch::store::Store;

const T0: f64 = 1_795_724_800.0;
const CLIENT: &str = "10.7.0.5";
const POOL_IP: &str = "203.0.113.9";
/// The followed resolver log and the followed Zeek conn log.
const LOG: SourceId = SourceId(0x1111);
const CONN: SourceId = SourceId(0x2222);

fn lookup(at: f64, source: Source) -> Observation {
    Observation::Dns(DnsObservation {
        ts: Timestamp::from_secs_f64(T0 + at),
        client: CLIENT.parse().unwrap(),
        client_port: Some(40_000),
        server: Some("192.0.2.53".parse().unwrap()),
        server_port: Some(53),
        transport: Transport::Udp,
        id: Some(7),
        qname: "pool.supportxmr.com".into(),
        qtype: RrType::A,
        rcode: Some(Rcode::NOERROR),
        answers: vec![DnsAnswer {
            name: "pool.supportxmr.com".into(),
            rtype: RrType::A,
            ttl: Some(300),
            data: POOL_IP.into(),
        }],
        answers_known: true,
        query_seen: true,
        rtt_us: Some(500),
        truncated: false,
        salvaged: None,
        source,
    })
}

fn flow(at: f64, bytes_out: u64) -> Observation {
    Observation::Flow(FlowObservation {
        ts: Timestamp::from_secs_f64(T0 + at),
        last_ts: Timestamp::from_secs_f64(T0 + at + 30.0),
        src: CLIENT.parse().unwrap(),
        src_port: 50_123,
        dst: POOL_IP.parse().unwrap(),
        dst_port: 3333,
        proto: Proto::Tcp,
        direction: Direction::Originator,
        state: FlowState::Closed,
        report: FlowReport::Final,
        bytes_out,
        bytes_in: 900,
        packets_out: 10,
        packets_in: 10,
        payload_out: vec![],
        payload_in: vec![],
        app: AppInfo::default(),
        source: Source::log("zeek-conn", "/var/log/zeek/conn.log"),
    })
}

fn at(source: SourceId, offset: u64) -> Option<SourcePos> {
    Some(SourcePos {
        source,
        offset,
        seq: 0,
    })
}

fn bind_log() -> Source {
    Source::log("bind", "/var/log/named/query.log")
}

/// Feeds `obs` through a fresh engine and pipeline over `store` (a process start), to the end.
fn run(store: &dyn DetectionStore, obs: &[(Observation, Option<SourcePos>)]) -> Detection {
    let engine = Engine::new(
        EngineConfig::default(),
        matcher::shared(Blocklists::builtin().unwrap()),
    );
    let mut p = Pipeline::with_store(engine, Some(store.clone_handle())).unwrap();
    for (o, pos) in obs {
        p.push_at(o.clone(), *pos).unwrap();
    }
    p.finish().unwrap();
    let mut dets = store.all_detections().unwrap();
    assert_eq!(dets.len(), 1, "one incident: {dets:#?}");
    dets.remove(0)
}

#[test]
fn re_fed_log_lines_change_no_counts_and_cross_source_dedupe_holds() {
    let store = Store::open_temporary().unwrap();
    // First process: a sniffer (unpositioned) and the resolver log see the same query; the log
    // has a second lookup 10 s later; Zeek logs the pool flow.
    let first = vec![
        (lookup(0.0, Source::pcap("span.pcap")), None),
        (lookup(0.3, bind_log()), at(LOG, 0)),
        (lookup(10.0, bind_log()), at(LOG, 120)),
        (flow(12.0, 4_000), at(CONN, 0)),
    ];
    let d = run(&store, &first);
    assert_eq!(
        d.counts.lookups, 2,
        "the sniffed and logged query is one lookup"
    );
    assert_eq!((d.counts.flows, d.counts.bytes_out), (1, 4_000));
    assert_eq!(d.source_marks.len(), 2, "{:?}", d.source_marks);
    let evidence = d.evidence.len();

    // Restart before the offset commit: both logs are read again from the start (the sniffer's
    // packets are gone). Nothing counts twice, not even the log's copy of the de-duplicated
    // query, whose sniffed twin is no longer in memory.
    let replay: Vec<_> = first.iter().skip(1).cloned().collect();
    let d = run(&store, &replay);
    assert_eq!(d.counts.lookups, 2, "re-read lookups counted again");
    assert_eq!((d.counts.flows, d.counts.bytes_out), (1, 4_000));
    assert_eq!(d.evidence.len(), evidence, "re-read lines added evidence");

    // Again, and this time the logs go on: new lines count.
    let mut more = replay.clone();
    more.push((lookup(20.0, bind_log()), at(LOG, 240)));
    more.push((lookup(20.2, Source::pcap("span.pcap")), None));
    let d = run(&store, &more);
    assert_eq!(d.counts.lookups, 3, "one new lookup (seen by both sources)");
    assert_eq!(d.counts.flows, 1);
}

#[test]
fn unpositioned_input_is_counted_as_before() {
    // Without positions (pcaps, stdin, imports) the engine counts what it is given: feeding the
    // same log lines twice without positions counts them twice. This is the behaviour the marks
    // replace for followed logs, and the control for the test above.
    let store = Store::open_temporary().unwrap();
    let obs = vec![
        (lookup(0.0, bind_log()), None),
        (lookup(10.0, bind_log()), None),
    ];
    assert_eq!(run(&store, &obs).counts.lookups, 2);
    assert_eq!(run(&store, &obs).counts.lookups, 4);
}
