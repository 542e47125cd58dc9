//! Live dnstap over real sockets: a writer speaking bidirectional Frame Streams (READY → ACCEPT,
//! START, data, STOP → FINISH) to a `DnstapListener` on a Unix socket and on TCP.

use crate::support::dnstap as dnstap_support;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use poolwatch::ingest::dnstap::{
    self, ControlType, DnstapListener, Frame, FrameDecoder, ListenAddr, CONTENT_TYPE,
};
use poolwatch::model::{DnsObservation, Observation};

/// Reads until one control frame arrives; returns its type.
fn read_control(s: &mut impl Read) -> Option<u32> {
    let mut dec = FrameDecoder::new();
    let mut buf = [0u8; 512];
    loop {
        if let Ok(Some(Frame::Control { ctype, .. })) = dec.next_frame() {
            return Some(ctype);
        }
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        dec.feed(&buf[..n]);
    }
}

/// A writer session as resolvers do it; returns whether FINISH came back.
fn write_session<S: Read + Write>(mut s: S, content_type: &[u8]) -> bool {
    s.write_all(&dnstap::encode_control(
        ControlType::Ready,
        Some(content_type),
    ))
    .unwrap();
    if read_control(&mut s) != Some(ControlType::Accept as u32) {
        return false;
    }
    s.write_all(&dnstap::encode_control(
        ControlType::Start,
        Some(CONTENT_TYPE),
    ))
    .unwrap();
    for f in dnstap_support::frames() {
        // Frames trickle in, split across writes.
        let mut framed = (f.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&f);
        let (a, b) = framed.split_at(framed.len() / 2);
        s.write_all(a).unwrap();
        s.flush().unwrap();
        s.write_all(b).unwrap();
    }
    s.write_all(&dnstap::encode_control(ControlType::Stop, None))
        .unwrap();
    read_control(&mut s) == Some(ControlType::Finish as u32)
}

fn collect(rx: &mpsc::Receiver<Observation>, n: usize) -> Vec<DnsObservation> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        if let Ok(Observation::Dns(d)) = rx.recv_timeout(Duration::from_millis(100)) {
            got.push(d);
        }
    }
    got
}

fn start(addr: &ListenAddr) -> DnstapListener {
    DnstapListener::bind(addr).unwrap()
}

#[test]
fn unix_socket_session() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dnstap.sock");
    let l = start(&ListenAddr::Unix(path.clone()));
    l.set_socket_mode(0o660).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o660);
    }
    let (tx, rx2) = mpsc::channel::<Observation>();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let h = std::thread::spawn(move || l.run(move |o| tx.send(o).is_ok(), s2));

    let conn = std::os::unix::net::UnixStream::connect(&path).unwrap();
    assert!(write_session(conn, CONTENT_TYPE));
    let got = collect(&rx2, 4);
    // Same decoding as the file fixture.
    assert_eq!(got.len(), 4);
    assert_eq!(got[0].qname, "pool.supportxmr.com");
    assert_eq!(got[0].answers[0].data, "203.0.113.17");
    assert_eq!(
        got[1].cname_targets().collect::<Vec<_>>(),
        vec!["xmr-eu1.nanopool.org"]
    );
    assert!(!got[2].query_seen);
    assert!(got[0].source.as_str().starts_with("dnstap:unix:"));

    // A writer offering another content type is turned away; the listener lives on.
    let conn = std::os::unix::net::UnixStream::connect(&path).unwrap();
    assert!(!write_session(conn, b"protobuf:other.Thing"));
    let conn = std::os::unix::net::UnixStream::connect(&path).unwrap();
    assert!(write_session(conn, CONTENT_TYPE));
    assert_eq!(collect(&rx2, 4).len(), 4);

    stop.store(true, Ordering::Relaxed);
    h.join().unwrap().unwrap();
    assert!(!path.exists(), "socket file removed on shutdown");
}

#[test]
fn tcp_session_and_garbage_writer() {
    let l = start(&ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()));
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel::<Observation>();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let h = std::thread::spawn(move || l.run(move |o| tx.send(o).is_ok(), s2));

    // Garbage first: the connection is dropped, nothing panics.
    let mut g = std::net::TcpStream::connect(addr).unwrap();
    g.write_all(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        .unwrap();
    let mut b = [0u8; 16];
    g.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(matches!(g.read(&mut b), Ok(0) | Err(_)));

    let conn = std::net::TcpStream::connect(addr).unwrap();
    assert!(write_session(conn, CONTENT_TYPE));
    let got = collect(&rx, 4);
    assert_eq!(got.len(), 4);
    assert_eq!(got[1].client.to_string(), "2001:db8::10");
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap().unwrap();
}

#[test]
fn listen_addr_parsing() {
    assert_eq!(
        ListenAddr::parse("unix:/run/d.sock"),
        Some(ListenAddr::Unix("/run/d.sock".into()))
    );
    assert_eq!(
        ListenAddr::parse("tcp:127.0.0.1:6000"),
        Some(ListenAddr::Tcp("127.0.0.1:6000".parse().unwrap()))
    );
    assert_eq!(
        ListenAddr::parse("127.0.0.1:6000"),
        Some(ListenAddr::Tcp("127.0.0.1:6000".parse().unwrap()))
    );
    assert_eq!(ListenAddr::parse(""), None);
}
