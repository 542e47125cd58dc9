//! Live capture on the loopback interface: a real DNS exchange between two UDP sockets is
//! captured (BPF-filtered), paired and delivered through the channel; `stop` ends the thread.
//! Skips when the process may not capture (no CAP_NET_RAW).

use crate::support::capture as capture_support;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use poolwatch::capture::live::{self, LiveConfig};
use poolwatch::capture::CaptureError;
use poolwatch::model::Observation;

#[test]
fn loopback_dns_exchange_is_observed() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut cfg = LiveConfig::new("lo");
    cfg.bpf_filter = Some(format!("udp port {port}"));
    cfg.capture.dns_ports = vec![port];
    cfg.buffer_size = 4 << 20;
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let stop = Arc::new(AtomicBool::new(false));
    let handle = match live::spawn(cfg, tx, stop.clone()) {
        Ok(h) => h,
        Err(e @ CaptureError::Permission { .. }) => {
            println!("skipping: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    std::thread::sleep(Duration::from_millis(300));
    let q = capture_support::query(0x4242, "pool.supportxmr.com", 1);
    client.send_to(&q, ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 512];
    let (_, from) = server.recv_from(&mut buf).unwrap();
    let r = capture_support::response(
        0x4242,
        "pool.supportxmr.com",
        1,
        0,
        &[capture_support::a(
            "pool.supportxmr.com",
            60,
            "127.20.141.17",
        )],
        &[],
    );
    server.send_to(&r, from).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let obs = loop {
        match rx.try_recv() {
            Ok(o) => break o,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                panic!("no observation ({e}); stats {:?}", handle.stats());
            }
        }
    };
    stop.store(true, Ordering::Relaxed);
    let Observation::Dns(d) = obs else {
        panic!("{obs:?}")
    };
    assert_eq!(d.qname, "pool.supportxmr.com");
    assert_eq!(d.id, Some(0x4242));
    assert_eq!(d.client_port, Some(client.local_addr().unwrap().port()));
    assert_eq!(d.answers[0].data, "127.20.141.17");
    assert!(d.rtt_us.is_some());
    assert_eq!(d.source.as_str(), "live:lo");
    let st = handle.join();
    assert!(st.packets >= 2, "{st:?}");
    assert_eq!(st.kernel_drops, 0);
}

#[test]
fn unknown_interface_and_bad_filter_are_clear_errors() {
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let stop = Arc::new(AtomicBool::new(true));
    let err = live::spawn(LiveConfig::new("no-such-if0"), tx.clone(), stop.clone())
        .err()
        .expect("error");
    assert!(err.to_string().contains("no-such-if0"), "{err}");
    let mut cfg = LiveConfig::new("lo");
    cfg.bpf_filter = Some("udp port".into());
    match live::spawn(cfg, tx, stop) {
        Err(CaptureError::Filter { .. }) | Err(CaptureError::Permission { .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("bad filter accepted"),
    }
}
