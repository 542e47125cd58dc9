//! Unit tests of the flow table (`flows.rs`).

use super::*;

/// Issue #11: a table entry (key and flow) of a SYN-only flow stays compact. With the
/// whole `FlowObservation` and the held-segment lists inline it was ≈ 420 bytes, and the
/// hash table of a 196 k-flow capture 111 MB.
#[test]
fn flow_entries_are_compact() {
    let entry = std::mem::size_of::<(Key, Flow)>();
    println!("flow entry: {entry} bytes");
    assert!(entry <= MAX_ENTRY_BYTES, "{entry} bytes a flow entry");
}

/// A SYN from `src:sport` to `dst:3333` at `ts`.
fn syn(ts: i64, src: IpAddr, sport: u16, dst: IpAddr) -> Segment<'static> {
    Segment {
        ts,
        src,
        sport,
        dst,
        dport: 3333,
        proto: Proto::Tcp,
        flags: SYN,
        seq: 7,
        payload: &[],
    }
}

/// The report built from the compact entry has the key's endpoints, oriented.
#[test]
fn reports_rebuild_the_endpoints_from_the_key() {
    let a: IpAddr = "10.0.0.9".parse().unwrap_or(IpAddr::from([0; 4]));
    let b: IpAddr = "10.0.0.1".parse().unwrap_or(IpAddr::from([0; 4]));
    let mut t = FlowTable::new(16, 60_000_000, 60_000_000, Source::new("t"));
    let mut out = VecDeque::new();
    t.packet(&syn(1, a, 40_000, b), &mut out);
    t.finish(&mut out);
    let Some(Observation::Flow(f)) = out.pop_front() else {
        panic!("no flow report: {out:?}");
    };
    assert_eq!((f.src, f.src_port, f.dst, f.dst_port), (a, 40_000, b, 3333));
    assert_eq!(
        (f.state, f.report, f.packets_out),
        (FlowState::Attempted, FlowReport::Final, 1)
    );
}

/// Finishing in steps gives the same reports, in the same order, as finishing at once.
#[test]
fn finishing_in_steps_is_finishing_at_once() {
    let b: IpAddr = IpAddr::from([10, 0, 0, 1]);
    let table = || {
        let mut t = FlowTable::new(64, 60_000_000, 60_000_000, Source::new("t"));
        let mut out = VecDeque::new();
        for i in 0..50u16 {
            // Starts out of order.
            let ts = i64::from((i * 37) % 50);
            let a = IpAddr::from([10, 0, 1, (i % 7) as u8]);
            t.packet(&syn(ts, a, 40_000 + i, b), &mut out);
        }
        (t, out.len())
    };
    let (mut whole, pre) = table();
    let mut all = VecDeque::new();
    whole.finish(&mut all);
    let (mut steps, _) = table();
    let mut stepped = VecDeque::new();
    let mut calls = 0;
    loop {
        let before = stepped.len();
        let done = steps.finish_some(&mut stepped, 7);
        assert!(stepped.len() - before <= 7);
        calls += 1;
        if done {
            break;
        }
    }
    assert_eq!(pre, 0);
    assert_eq!(calls, 8, "50 flows in steps of 7");
    assert_eq!(format!("{all:?}"), format!("{stepped:?}"));
    assert!(steps.is_empty() && steps.finish_some(&mut stepped, 7));
}
