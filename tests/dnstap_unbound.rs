//! Real Unbound (Debian's `unbound`, built with dnstap) writing bidirectional Frame Streams to
//! our Unix-socket listener. Skips when `/usr/sbin/unbound` is not installed (`.ci/deps`
//! installs it). Unbound answers from `local-data`, so no network beyond loopback is needed.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use poolwatch::ingest::dnstap::{DnstapListener, ListenAddr};
use poolwatch::model::Observation;

const UNBOUND: &str = "/usr/sbin/unbound";

fn dns_query(id: u16, qname: &str) -> Vec<u8> {
    let mut m = Vec::new();
    for v in [id, 0x0100, 1, 0, 0, 0] {
        m.extend_from_slice(&v.to_be_bytes());
    }
    for l in qname.split('.') {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m
}

#[test]
fn unbound_writes_dnstap_to_our_socket() {
    if !Path::new(UNBOUND).exists() {
        println!("skipping: {UNBOUND} not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("dnstap.sock");
    let port = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let conf = dir.path().join("unbound.conf");
    std::fs::write(
        &conf,
        format!(
            r#"server:
  interface: 127.0.0.1
  port: {port}
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{dir}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  do-ip6: no
  do-tcp: no
  access-control: 127.0.0.0/8 allow
  local-zone: "supportxmr.com." static
  local-data: "pool.supportxmr.com. 60 IN A 203.0.113.17"
  module-config: "iterator"
  num-threads: 1
dnstap:
  dnstap-enable: yes
  dnstap-bidirectional: yes
  dnstap-socket-path: "{sock}"
  dnstap-send-identity: yes
  dnstap-send-version: yes
  dnstap-log-client-query-messages: yes
  dnstap-log-client-response-messages: yes
"#,
            dir = dir.path().display(),
            sock = sock.display()
        ),
    )
    .unwrap();

    let listener = DnstapListener::bind(&ListenAddr::Unix(sock.clone())).unwrap();
    let (tx, rx) = mpsc::channel::<Observation>();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let h = std::thread::spawn(move || listener.run(move |o| tx.send(o).is_ok(), s2));

    let mut child = Command::new(UNBOUND)
        .arg("-d")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let client_port = udp.local_addr().unwrap().port();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut found = None;
    let mut id = 0x5000u16;
    while found.is_none() && Instant::now() < deadline {
        id += 1;
        let _ = udp.send_to(&dns_query(id, "pool.supportxmr.com"), ("127.0.0.1", port));
        let mut buf = [0u8; 512];
        let _ = udp.recv_from(&mut buf);
        while let Ok(Observation::Dns(d)) = rx.recv_timeout(Duration::from_millis(300)) {
            if d.qname == "pool.supportxmr.com"
                && d.rcode.is_some()
                && d.client_port == Some(client_port)
            {
                found = Some(d);
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap().unwrap();
    let d = found.expect("no CLIENT_RESPONSE from unbound over the dnstap socket");
    assert_eq!(d.client.to_string(), "127.0.0.1");
    assert_eq!(d.server_port, Some(port));
    assert_eq!(
        d.answer_ips().map(|i| i.to_string()).collect::<Vec<_>>(),
        vec!["203.0.113.17"]
    );
    assert!(d.source.as_str().starts_with("dnstap:unix:"));
    // Unbound logged the CLIENT_QUERY too: paired into one observation.
    assert!(d.query_seen);
    assert!(d.rtt_us.is_some());
}
