//! Real resolvers writing bidirectional Frame Streams to our Unix-socket listener: Debian's
//! Unbound (its own fstrm implementation) and BIND `named` (libfstrm, as Knot Resolver uses).
//! Each test skips when the binary is not installed (`.ci/deps` installs unbound; `apt-get
//! install bind9` for named). Both answer from local data, so only loopback is used.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use poolwatch::ingest::dnstap::{DnstapListener, ListenAddr};
use poolwatch::model::{DnsObservation, Observation};

const UNBOUND: &str = "/usr/sbin/unbound";
const NAMED: &str = "/usr/sbin/named";

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

/// Starts the listener on `sock`, the resolver (`cmd args`, answering pool.supportxmr.com on
/// 127.0.0.1:`port`), queries it over UDP until an answered observation for our query arrives.
fn observe_through(cmd: &str, args: &[&str], sock: &Path, port: u16) -> Option<DnsObservation> {
    let listener = DnstapListener::bind(&ListenAddr::Unix(sock.to_path_buf())).unwrap();
    let (tx, rx) = mpsc::channel::<Observation>();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let h = std::thread::spawn(move || listener.run(move |o| tx.send(o).is_ok(), s2));

    let mut child = Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let client_port = udp.local_addr().unwrap().port();
    let deadline = Instant::now() + Duration::from_secs(20);
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
    // Only the resolver we started, by its handle.
    let _ = child.kill();
    let _ = child.wait();
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap().unwrap();
    found
}

fn check(d: &DnsObservation, port: u16) {
    assert_eq!(d.client.to_string(), "127.0.0.1");
    assert_eq!(d.server_port, Some(port));
    assert_eq!(
        d.answer_ips().map(|i| i.to_string()).collect::<Vec<_>>(),
        vec!["203.0.113.17"]
    );
    assert!(d.source.as_str().starts_with("dnstap:unix:"));
    // The resolver logged the CLIENT_QUERY too: paired into one observation.
    assert!(d.query_seen);
    assert!(d.rtt_us.is_some());
}

fn free_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

#[test]
fn unbound_writes_dnstap_to_our_socket() {
    if !Path::new(UNBOUND).exists() {
        println!("skipping: {UNBOUND} not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("dnstap.sock");
    let port = free_port();
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
    let conf = conf.display().to_string();
    let d = observe_through(UNBOUND, &["-d", "-c", &conf], &sock, port)
        .expect("no CLIENT_RESPONSE from unbound over the dnstap socket");
    check(&d, port);
}

#[test]
fn bind_writes_dnstap_to_our_socket() {
    if !Path::new(NAMED).exists() {
        println!("skipping: {NAMED} not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("dnstap.sock");
    let port = free_port();
    let d = dir.path().display();
    std::fs::write(
        dir.path().join("db"),
        "$TTL 60\n@ IN SOA ns. h. 1 60 60 60 60\n@ IN NS ns.invalid.\npool IN A 203.0.113.17\n",
    )
    .unwrap();
    let conf = dir.path().join("named.conf");
    std::fs::write(
        &conf,
        format!(
            r#"options {{
  directory "{d}";
  listen-on port {port} {{ 127.0.0.1; }};
  listen-on-v6 {{ none; }};
  recursion yes;
  allow-recursion {{ 127.0.0.1; }};
  dnssec-validation no;
  pid-file none;
  dnstap {{ client; }};
  dnstap-output unix "{sock}";
}};
zone "supportxmr.com" {{ type primary; file "{d}/db"; }};
"#,
            sock = sock.display()
        ),
    )
    .unwrap();
    let conf = conf.display().to_string();
    let d = observe_through(NAMED, &["-g", "-n", "1", "-c", &conf], &sock, port)
        .expect("no CLIENT_RESPONSE from named over the dnstap socket");
    check(&d, port);
}
