//! Live capture through the service: `poolwatch serve --interface lo` sees a real DNS exchange
//! on UDP 53 and the client's Stratum session to the answered address, and serves a `stratum`
//! detection. Skips when the process may not capture (no CAP_NET_RAW) or port 53 is taken.

use crate::support::capture as capture_support;
use crate::support::service as service_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use service_support::*;

const RESOLVER: &str = "127.77.0.53";
const CLIENT: &str = "127.77.0.10";
const POOL: &str = "127.77.1.1";

#[test]
fn live_capture_on_loopback_becomes_a_stratum_detection() {
    let server = match UdpSocket::bind((RESOLVER, 53)) {
        Ok(s) => s,
        Err(e) => {
            println!("skipping: cannot bind {RESOLVER}:53 ({e})");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let bpf = format!("host {RESOLVER} or host {POOL}");
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        db.to_str().unwrap(),
        "--interface",
        "lo",
        "--bpf",
        &bpf,
    ];
    let s = {
        // A missing capability is a start-up error: skip then.
        let probe = std::process::Command::new(bin())
            .args(args)
            .arg("--check-config")
            .output()
            .unwrap();
        assert!(probe.status.success());
        Svc::start(&args, None)
    };
    let c = client();
    let t = std::time::Instant::now();
    loop {
        if c.get(s.url("/readyz"))
            .send()
            .map(|r| r.status() == 200)
            .unwrap_or(false)
        {
            break;
        }
        let log = s.stderr();
        if log.contains("permission") || log.contains("Permission") {
            println!("skipping: {log}");
            return;
        }
        assert!(t.elapsed() < WAIT, "never ready:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // pcap needs a moment after activation before packets flow.
    std::thread::sleep(Duration::from_millis(300));

    let pool = TcpListener::bind((POOL, 3333)).unwrap();
    let resolver = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let (_, from) = server.recv_from(&mut buf).unwrap();
        let r = capture_support::response(
            0x5151,
            "pool.supportxmr.com",
            1,
            0,
            &[capture_support::a("pool.supportxmr.com", 60, POOL)],
            &[],
        );
        server.send_to(&r, from).unwrap();
    });
    let client_sock = UdpSocket::bind((CLIENT, 0)).unwrap();
    client_sock
        .send_to(
            &capture_support::query(0x5151, "pool.supportxmr.com", 1),
            (RESOLVER, 53),
        )
        .unwrap();
    let mut buf = [0u8; 512];
    client_sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client_sock.recv_from(&mut buf).unwrap();
    resolver.join().unwrap();

    // The miner connects to the answered address and logs in (XMRig's Stratum `login`).
    let pool_side = std::thread::spawn(move || {
        let (mut s, _) = pool.accept().unwrap();
        let mut b = [0u8; 1024];
        let _ = s.read(&mut b);
        let _ = s.write_all(b"{\"id\":1,\"jsonrpc\":\"2.0\",\"error\":null,\"result\":{\"id\":\"1\",\"job\":{\"blob\":\"00\",\"job_id\":\"1\",\"target\":\"ffff\"},\"status\":\"OK\"}}\n");
        std::thread::sleep(Duration::from_millis(500));
    });
    let mut sock = socket2_bind_connect(CLIENT, format!("{POOL}:3333").parse().unwrap());
    sock.write_all(b"{\"id\":1,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"wallet\",\"pass\":\"x\",\"agent\":\"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0\"}}\n").unwrap();
    let mut b = [0u8; 1024];
    let _ = sock.read(&mut b);
    pool_side.join().unwrap();
    drop(sock);

    let dets = wait_for(&c, &s, None, "the live miner", |d| {
        d.iter()
            .any(|x| x["client_ip"] == CLIENT && x["stage"] == "stratum")
    });
    let d = dets.iter().find(|x| x["client_ip"] == CLIENT).unwrap();
    assert_eq!(d["pool_domain"], "supportxmr.com");
    assert!(d["sources"].to_string().contains("lo"), "{d}");
}

/// A TCP connection from a chosen local address (std has no bind-before-connect).
fn socket2_bind_connect(local: &str, to: SocketAddr) -> TcpStream {
    // SAFETY: plain socket/bind/connect; the fd is owned by the returned TcpStream.
    unsafe {
        use std::os::fd::FromRawFd;
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let mk = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let l = mk(local.parse().unwrap(), 0);
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::bind(fd, &l as *const _ as *const libc::sockaddr, len),
            0
        );
        let SocketAddr::V4(to) = to else {
            panic!("v4 only")
        };
        let r = mk(*to.ip(), to.port());
        assert_eq!(
            libc::connect(fd, &r as *const _ as *const libc::sockaddr, len),
            0
        );
        TcpStream::from_raw_fd(fd)
    }
}
