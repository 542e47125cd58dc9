//! Security regressions of the API surface (issue #11), each against a real server on
//! 127.0.0.1 with real backends: times outside the representable range, stalled clients,
//! raw-TCP protocol errors, CIDR minimums.

use crate::support::http as http_support;

use std::sync::Arc;
use std::time::Duration;

use poolwatch::api::{ApiOptions, AppState, Tokens};
use poolwatch::config::Secret;
use poolwatch::matcher::{self, Blocklists};
use poolwatch::store::Store;
use reqwest::blocking::Client;
use serde_json::{json, Value};

use http_support::Serving;

const ADMIN: &str = "admin-token-0123456789abcdef";

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A real API over a real sled store in `dir`, with an admin token.
fn store_server(dir: &std::path::Path, opts: ApiOptions) -> (Serving, Store) {
    let store = Store::open(&dir.join("db")).unwrap();
    let (tx, _) = tokio::sync::broadcast::channel(16);
    let lists = matcher::shared(Blocklists::builtin().unwrap());
    let opts = ApiOptions {
        tokens: Tokens {
            admin: Some(Secret::new(ADMIN)),
            read: None,
        },
        ..opts
    };
    let state = AppState::new(Arc::new(store.clone()), lists, tx, opts);
    state.set_ready(true);
    (Serving::start(http_support::runtime(), state), store)
}

fn error_code(resp: reqwest::blocking::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().unwrap();
    (
        status,
        v["error"]["code"].as_str().unwrap_or("").to_string(),
        v["error"]["message"].as_str().unwrap_or("").to_string(),
    )
}

/// Issue #11: `expires` in year 10000 was answered 201 but never stored. Every time the API
/// accepts (`expires`, `since`, `until`) is checked against the representable range at the
/// edge; what is accepted is stored and read back unchanged.
#[test]
fn out_of_range_times_are_refused_at_the_edge() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, _store) = store_server(tmp.path(), ApiOptions::default());
    let c = client();
    let post = |expires: Value| {
        c.post(s.url("/api/v1/suppressions"))
            .bearer_auth(ADMIN)
            .json(&json!({"client": "192.0.2.7", "reason": "lab", "expires": expires}))
            .send()
            .unwrap()
    };
    for bad in [
        json!(253_402_300_800u64), // 10000-01-01T00:00:00Z in Unix seconds
        json!(999_999_999_999.0),  // year 33658
        json!(1e300),              // saturates to i64::MAX microseconds
        json!("+10000-01-01T00:00:00Z"),
        json!("10000-01-01T00:00:00Z"),
        json!(-1),
    ] {
        let (status, code, msg) = error_code(post(bad.clone()));
        assert_eq!(status, 400, "{bad}: {msg}");
        assert!(
            code == "invalid_parameter" || code == "invalid_body",
            "{bad}: {code}"
        );
        assert!(msg.contains("expires"), "{bad}: {msg}");
    }
    let (_, _, msg) = error_code(post(json!(253_402_300_800u64)));
    assert!(
        msg.contains("9999-12-31T23:59:59"),
        "the range is named: {msg}"
    );
    let listed: Value = c
        .get(s.url("/api/v1/suppressions"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        0,
        "nothing stored"
    );

    // The last representable second is accepted, stored and read back as written.
    let ok = post(json!("9999-12-31T23:59:59Z"));
    assert_eq!(ok.status().as_u16(), 201);
    let listed: Value = c
        .get(s.url("/api/v1/suppressions"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    assert!(items[0]["expires"]
        .as_str()
        .unwrap()
        .starts_with("9999-12-31T23:59:59"));

    for q in [
        "since=253402300800",
        "until=999999999999",
        "since=-5",
        "until=-1",
    ] {
        let resp = c
            .get(s.url(&format!("/api/v1/detections?{q}")))
            .send()
            .unwrap();
        let (status, code, msg) = error_code(resp);
        assert_eq!((status, code.as_str()), (400, "invalid_parameter"), "{q}");
        assert!(msg.contains("out of range"), "{q}: {msg}");
    }
    let ok = c
        .get(s.url("/api/v1/detections?since=0&until=253402300799"))
        .send()
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
}

// ---------------------------------------------------------------------------------------------
// Raw TCP helpers
// ---------------------------------------------------------------------------------------------

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::time::Instant;

/// A TCP connection from `src` (any 127.0.0.0/8 address works on Linux loopback) with a small
/// receive buffer, so a client that never reads stalls the server's writes quickly.
fn connect_from(src: Ipv4Addr, dst: SocketAddr, rcvbuf: i32) -> std::io::Result<TcpStream> {
    let SocketAddr::V4(dst) = dst else {
        panic!("IPv4 test server expected");
    };
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns; the descriptor goes to
    // `TcpStream` (which closes it) or is closed here on error.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fail = |fd| {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            Err(e)
        };
        if libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&rcvbuf as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        ) != 0
        {
            return fail(fd);
        }
        let from = sockaddr(src, 0);
        if libc::bind(fd, (&from as *const libc::sockaddr_in).cast(), len) != 0 {
            return fail(fd);
        }
        let to = sockaddr(*dst.ip(), dst.port());
        if libc::connect(fd, (&to as *const libc::sockaddr_in).cast(), len) != 0 {
            return fail(fd);
        }
        Ok(TcpStream::from_raw_fd(fd))
    }
}

/// Sends `request` on a fresh connection and reads the answer until the server closes it (or
/// 10 s pass). Returns (status, head, body).
fn raw_exchange(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut t = TcpStream::connect(addr).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = t.write_all(request);
    let mut out = Vec::new();
    let _ = t.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn assert_json_error(what: &str, got: &(u16, String, String), status: u16, code: &str) {
    let (st, head, body) = got;
    assert_eq!(*st, status, "{what}: {head}\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{what}: not JSON: {head}"
    );
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
    assert_eq!(v["error"]["code"], code, "{what}: {v}");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

fn plain_server(opts: ApiOptions) -> (Serving, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let (s, _store) = store_server(tmp.path(), opts);
    (s, tmp)
}

// ---------------------------------------------------------------------------------------------
// Stalled clients
// ---------------------------------------------------------------------------------------------

/// One GET of the public API description (≈ 40 KiB), pipelined many times per connection.
fn pipelined_gets(n: usize) -> Vec<u8> {
    b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(n)
}

/// `/healthz` from `src` answers 200 within `bound` (a checker retries a 503 "overloaded"
/// refusal, as health checkers do). Returns how long it took.
fn probe(addr: SocketAddr, src: Ipv4Addr, bound: Duration) -> Result<Duration, String> {
    let t = Instant::now();
    let mut last = String::new();
    while t.elapsed() < bound {
        match connect_from(src, addr, 64 * 1024) {
            Ok(mut s) => {
                let left = bound
                    .saturating_sub(t.elapsed())
                    .max(Duration::from_millis(10));
                s.set_read_timeout(Some(left)).unwrap();
                let _ =
                    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut out = Vec::new();
                let read = s.read_to_end(&mut out);
                let text = String::from_utf8_lossy(&out);
                if text.starts_with("HTTP/1.1 200") {
                    return Ok(t.elapsed());
                }
                last = match read {
                    Err(e) => format!("{e} after {:?}", t.elapsed()),
                    Ok(_) => text.lines().next().unwrap_or("(closed)").to_string(),
                };
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("no answer within {bound:?} (last: {last})"))
}

/// Issue #11: ~1,100 unauthenticated sockets that pipeline a public GET and never read held
/// every connection slot; `/healthz` stopped answering and never recovered. Here more sockets
/// than the connection cap do the same, first from one address, then from eight; a probe
/// must get `/healthz` within a bound all along, and the API serves normally afterwards.
#[test]
fn stalled_clients_do_not_take_down_healthz() {
    const CAP: usize = 48;
    const PER_CLIENT: usize = 12;
    /// Attack rounds per phase and the pause between them: bounded in count and in time.
    const ROUNDS: usize = 30;
    const ROUND_PAUSE: Duration = Duration::from_millis(100);
    /// Sockets opened per round.
    const PER_ROUND: usize = 12;
    const BOUND: Duration = Duration::from_secs(3);
    let opts = ApiOptions {
        max_connections: CAP,
        max_connections_per_client: PER_CLIENT,
        probe_connections: 8,
        write_timeout: Duration::from_secs(1),
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        ..ApiOptions::default()
    };
    let (s, _tmp) = plain_server(opts);
    let addr = s.addr;
    let closed_before = poolwatch::metrics::counter_value(
        "poolwatch_api_connections_closed_total",
        &[("reason", "write_timeout")],
    )
    .unwrap_or(0);
    let probe_src = Ipv4Addr::new(127, 0, 0, 250);
    let attack = pipelined_gets(100);
    let idle = probe(addr, probe_src, BOUND).expect("before the attack");
    eprintln!("no attack: /healthz latency {idle:?}");

    for sources in [
        vec![Ipv4Addr::new(127, 0, 0, 1)],
        (2..=9)
            .map(|i| Ipv4Addr::new(127, 0, 0, i))
            .collect::<Vec<_>>(),
    ] {
        let stop = std::sync::atomic::AtomicBool::new(false);
        let opened_now = std::sync::atomic::AtomicUsize::new(0);
        let worst = std::thread::scope(|scope| {
            let attacker = scope.spawn(|| {
                // Every socket is held (never read) until the phase ends: 360 per phase, far
                // over the cap.
                let mut held: Vec<TcpStream> = Vec::new();
                let mut opened = 0usize;
                for round in 0..ROUNDS {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    for i in 0..PER_ROUND {
                        let src = sources[(round + i) % sources.len()];
                        if let Ok(mut c) = connect_from(src, addr, 4096) {
                            let _ = c.write_all(&attack);
                            held.push(c);
                            opened += 1;
                            opened_now.store(opened, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(ROUND_PAUSE);
                }
                opened
            });
            // Let the attack take every slot, then probe while it runs.
            let t = Instant::now();
            while opened_now.load(std::sync::atomic::Ordering::Relaxed) < 2 * CAP {
                assert!(
                    t.elapsed() < Duration::from_secs(20),
                    "the attack does not start"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            let mut worst = Duration::ZERO;
            let mut probes = 0;
            while !attacker.is_finished() && probes < 50 {
                let took = probe(addr, probe_src, BOUND).unwrap_or_else(|e| {
                    panic!("during the attack from {} address(es): {e}", sources.len())
                });
                worst = worst.max(took);
                probes += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let opened = attacker.join().unwrap();
            assert!(opened > CAP, "the attack opened only {opened} sockets");
            assert!(probes >= 3, "only {probes} probes ran during the attack");
            worst
        });
        eprintln!(
            "{} source(s): worst /healthz latency {worst:?}",
            sources.len()
        );
        // After: the stalled sockets are gone (dropped) or cut off; probes and ordinary
        // requests answer again.
        probe(addr, probe_src, BOUND).expect("after the attack");
        let c = client();
        let t = Instant::now();
        loop {
            let ok = c
                .get(s.url("/api/v1/openapi.json"))
                .send()
                .is_ok_and(|r| r.status() == 200);
            if ok {
                break;
            }
            assert!(t.elapsed() < BOUND, "ordinary requests do not recover");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    if std::env::var_os("PW_DEBUG").is_some() {
        eprintln!(
            "{}",
            poolwatch::metrics::render()
                .lines()
                .filter(|l| l.contains("api_conn") || l.contains("probe"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let closed_after = poolwatch::metrics::counter_value(
        "poolwatch_api_connections_closed_total",
        &[("reason", "write_timeout")],
    )
    .unwrap_or(0);
    assert!(
        closed_after > closed_before,
        "stalled connections were cut off by the write timeout ({closed_before} → {closed_after})"
    );
    let text = client()
        .get(s.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for series in [
        "poolwatch_api_connections_refused_total{cap=\"per_client\"}",
        "poolwatch_api_connections_refused_total{cap=\"capacity\"}",
        "poolwatch_api_probe_connections_total",
        "poolwatch_api_connections_open",
    ] {
        assert!(text.contains(series), "{series} missing from /metrics");
    }
}

/// A keep-alive connection idle past `idle_timeout` is closed; a head that is not complete
/// within `header_read_timeout` is cut off; after `max_requests_per_connection` requests the
/// answer says `Connection: close` and pipelined requests beyond it are not served.
#[test]
fn connection_limits_close_idle_slow_and_overlong_connections() {
    let opts = ApiOptions {
        idle_timeout: Duration::from_secs(1),
        header_read_timeout: Duration::from_secs(1),
        max_requests_per_connection: 3,
        ..ApiOptions::default()
    };
    let (s, _tmp) = plain_server(opts);
    // Idle keep-alive connection: one answer, then closed after ~1 s.
    let mut t = TcpStream::connect(s.addr).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    t.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    let _ = t.read_to_end(&mut out);
    let took = start.elapsed();
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(5),
        "idle connection closed after {took:?}"
    );

    // Five pipelined requests, a cap of three: three answers, the last with Connection: close.
    let mut t = TcpStream::connect(s.addr).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    t.write_all(&b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".repeat(5))
        .unwrap();
    let mut out = Vec::new();
    let _ = t.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 3, "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close"));

    // A head trickled in too slowly is cut off.
    let mut t = TcpStream::connect(s.addr).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let start = Instant::now();
    t.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(200));
        if t.write_all(b"X-Slow: 1\r\n").is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = t.read_to_end(&mut out);
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "slow head held open"
    );
}

// ---------------------------------------------------------------------------------------------
// Every error body is JSON
// ---------------------------------------------------------------------------------------------

/// Issue #11: "Every error body is JSON, including 414, 431 and the HTTP layer's own 400s."
/// Raw requests that hyper itself rejects, and ones the API's head limits refuse, all get the
/// `{"error":{"code","message"}}` shape; an oversized `Content-Length` is refused at once with
/// 413, without `100 Continue`.
#[test]
fn protocol_errors_are_json() {
    let opts = ApiOptions {
        max_body: 4096,
        ..ApiOptions::default()
    };
    let (s, _tmp) = plain_server(opts);
    let a = s.addr;
    let long_path = format!("/api/v1/detections?client={}", "1".repeat(10_000));
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "URI over max_uri_len",
            format!("GET {long_path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(),
            414,
            "uri_too_long",
        ),
        (
            "headers over max_header_bytes",
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000))
                .into_bytes(),
            431,
            "headers_too_large",
        ),
        (
            "head over hyper's buffer",
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n",
                "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(4000)
            )
            .into_bytes(),
            431,
            "headers_too_large",
        ),
        (
            "too many header fields",
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n", "X-A: b\r\n".repeat(150)).into_bytes(),
            431,
            "headers_too_large",
        ),
        (
            "header without a colon",
            b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n".to_vec(),
            400,
            "malformed_request",
        ),
        (
            "garbage request line",
            b"BLAH\r\n\r\n".to_vec(),
            400,
            "malformed_request",
        ),
        (
            "TLS ClientHello on the plain port",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
            400,
            "malformed_request",
        ),
        (
            "two Content-Lengths",
            b"POST /api/v1/suppressions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}".to_vec(),
            400,
            "malformed_request",
        ),
        (
            "NUL in a header value",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n".to_vec(),
            400,
            "malformed_request",
        ),
    ];
    for (what, req, status, code) in cases {
        let got = raw_exchange(a, &req);
        assert_json_error(what, &got, status, code);
    }

    // Content-Length over --max-body: 413 at once, no 100 Continue, and the body is never sent.
    let mut t = TcpStream::connect(a).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    t.write_all(
        format!(
            "POST /api/v1/suppressions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\n\
             Content-Type: application/json\r\nContent-Length: 10000000\r\nExpect: 100-continue\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    let _ = t.read_to_end(&mut out);
    assert!(start.elapsed() < Duration::from_secs(3), "413 not at once");
    let text = String::from_utf8_lossy(&out).to_string();
    assert!(!text.contains("100 Continue"), "{text}");
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert_json_error(
        "Content-Length over max_body",
        &(413, head.to_string(), body.to_string()),
        413,
        "payload_too_large",
    );
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");

    // The server still serves.
    let (st, _, _) = raw_exchange(
        a,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(st, 200);
}
