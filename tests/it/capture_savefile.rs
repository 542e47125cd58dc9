//! Savefiles and streams end to end (issue #10/#11 classes): pcapng with interfaces of different
//! link types and time resolutions, several sections of both byte orders, damage that must end
//! `scan` with exit 2 and the offset, stdin / FIFOs / process substitution read as streams,
//! GRE-in-UDP tunnels, and TCP payload prefixes rebuilt in sequence order.
//!
//! Every capture is built here with `tests/capture_support`; `scan` runs as the real binary.

use crate::support::capture as capture_support;

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use capture_support::*;
use poolwatch::capture::{self, CaptureConfig, CaptureStats};
use poolwatch::model::{Detection, FlowObservation, FlowReport, Observation};

const POOL_NAME: &str = "pool.supportxmr.com";
const POOL_IP: &str = "198.51.100.77";
const MINER: &str = "192.0.2.40";

/// The XMRig login as XMRig 6.21 sends it (one line, `\n`-terminated).
const XMRIG_LOGIN: &[u8] = br#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"48edfHu7V9Z84YzzMa6fUueoELZ9ZRXq9VetWzYGzKt52XU5xvqgzYnDK9URnRoJMk1j8nLwEVsaSWJ4fhdUyZijBGUicoD","pass":"x","agent":"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0","algo":["rx/0","rx/wow","cn/r"]}}
"#;

/// The pool's answer to it.
const POOL_REPLY: &[u8] = br#"{"id":1,"jsonrpc":"2.0","error":null,"result":{"id":"1","job":{"blob":"0707","job_id":"1","target":"b88d0600"},"status":"OK"}}"#;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_poolwatch"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn detections(o: &Output) -> Vec<Detection> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one Detection a line"))
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The pool lookup (query + answer) as Ethernet frames, at `t`.
fn lookup_frames(client: IpAddr, t: u64) -> Vec<(u64, Vec<u8>)> {
    let r = v4(RESOLVER);
    vec![
        (
            t,
            udp_frame(client, 41_000, r, 53, &query(0x4242, POOL_NAME, 1)),
        ),
        (
            t + 2_000,
            udp_frame(
                r,
                53,
                client,
                41_000,
                &response(0x4242, POOL_NAME, 1, 0, &[a(POOL_NAME, 600, POOL_IP)], &[]),
            ),
        ),
    ]
}

/// A pcap with the pool lookup, then a Stratum session (handshake, login, close).
fn pool_session_pcap() -> Pcap {
    let c = v4(MINER);
    let mut p = Pcap::new(LINKTYPE_ETHERNET);
    for (t, f) in lookup_frames(c, 0) {
        p.push(t, &f);
    }
    let mut conn = Conn::new(c, 50_100, v4(POOL_IP), 3333);
    conn.handshake(&mut p, 100_000);
    conn.client(&mut p, 101_000, XMRIG_LOGIN);
    conn.server(&mut p, 120_000, POOL_REPLY);
    conn.close(&mut p, 200_000);
    p
}

fn flows(obs: &[Observation]) -> Vec<&FlowObservation> {
    obs.iter()
        .filter_map(|o| match o {
            Observation::Flow(f) => Some(f),
            _ => None,
        })
        .collect()
}

fn read_all(path: &Path) -> (Vec<Observation>, CaptureStats, Option<String>) {
    let mut r = capture::open_file(path, &CaptureConfig::default()).expect("opens");
    let obs: Vec<Observation> = r.by_ref().collect();
    (obs, r.stats(), r.error().map(|e| e.to_string()))
}

fn assert_stratum_for(dets: &[Detection], client: &str) {
    assert!(
        dets.iter()
            .any(|d| d.client_ip.to_string() == client && d.stage.as_str() == "stratum"),
        "{client} should be graded stratum: {dets:#?}"
    );
}

#[test]
fn pcapng_with_mixed_link_types_is_read_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let c = v4(MINER);
    let c2 = v4("192.0.2.41");
    // Section 1 (little endian): Ethernet at µs, Linux cooked (SLL) at ns, raw IP at 2^-20 s.
    let mut ng = Pcapng::new(false);
    let eth = ng.interface(LINKTYPE_ETHERNET as u16, None);
    let cooked = ng.interface(LINKTYPE_LINUX_SLL, Some(9));
    let raw = ng.interface(LINKTYPE_RAW, Some(0x80 | 20));
    // A name-resolution block and a custom block between packets are skipped.
    ng.block(4, &[0, 0, 0, 0]);
    for (t, f) in lookup_frames(c, 0) {
        ng.packet(eth, t, &f);
    }
    // The Stratum session, captured on the cooked interface.
    let mut p = Pcap::new(LINKTYPE_ETHERNET);
    let mut conn = Conn::new(c, 50_100, v4(POOL_IP), 3333);
    conn.handshake(&mut p, 100_000);
    conn.client(&mut p, 101_000, XMRIG_LOGIN);
    conn.close(&mut p, 200_000);
    for (t, f) in p.records() {
        let (ip, v6) = ether_payload(&f);
        ng.packet(cooked, t, &sll(ip, v6));
    }
    ng.block(0x0000_0BAD, &[1, 2, 3, 4, 5, 6, 7, 8]);
    // Section 2 (big endian) with its own interface numbering: a second miner, raw IP.
    ng.section(true);
    let raw2 = ng.interface(LINKTYPE_RAW, None);
    let mut p = Pcap::new(LINKTYPE_ETHERNET);
    for (t, f) in lookup_frames(c2, 300_000) {
        p.push(t, &f);
    }
    let mut conn = Conn::new(c2, 50_200, v4(POOL_IP), 3333);
    conn.handshake(&mut p, 400_000);
    conn.client(&mut p, 401_000, XMRIG_LOGIN);
    conn.close(&mut p, 500_000);
    for (t, f) in p.records() {
        ng.packet(raw2, t, ether_payload(&f).0);
    }
    let _ = raw; // described, never used: allowed
    let path = write(tmp.path(), "mixed.pcapng", &ng.bytes);

    // Every interface's packets decoded, with the right clock each.
    let (obs, stats, err) = read_all(&path);
    assert_eq!(err, None);
    assert_eq!(stats.decode_error_total(), 0, "{stats:?}");
    let fl = flows(&obs);
    let miner1 = fl
        .iter()
        .find(|f| f.src == c && f.report == FlowReport::Final)
        .expect("flow from the SLL interface");
    assert_eq!(miner1.ts.0 as u64, EPOCH_US + 100_000, "ns interface clock");
    assert_eq!(miner1.app.stratum_method.as_deref(), Some("login"));
    assert_eq!(miner1.bytes_out, XMRIG_LOGIN.len() as u64);
    let miner2 = fl
        .iter()
        .find(|f| f.src == c2 && f.report == FlowReport::Final)
        .expect("flow from section 2");
    assert_eq!(miner2.ts.0 as u64, EPOCH_US + 400_000);
    let dns = obs
        .iter()
        .filter(
            |o| matches!(o, Observation::Dns(d) if d.qname == POOL_NAME && !d.answers.is_empty()),
        )
        .count();
    assert_eq!(dns, 2, "a lookup in each section");

    // And `scan` grades both miners from the one file.
    let o = bin()
        .args(["scan", "--output", "json"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(&o));
    let dets = detections(&o);
    assert_stratum_for(&dets, MINER);
    assert_stratum_for(&dets, "192.0.2.41");
    assert!(dets
        .iter()
        .all(|d| d.pool_domain == "supportxmr.com" && d.counts.lookups >= 1));
}

#[test]
fn pcapng_simple_packet_blocks_and_legacy_packet_blocks_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let c = v4(MINER);
    let mut ng = Pcapng::new(false);
    let eth = ng.interface(LINKTYPE_ETHERNET as u16, None);
    let frames = lookup_frames(c, 0);
    ng.packet(eth, frames[0].0, &frames[0].1);
    // The answer as a Simple Packet Block: no timestamp, it gets the last one seen.
    ng.simple_packet(&frames[1].1);
    // An obsolete Packet Block (type 2) with a second query.
    let q = udp_frame(
        c,
        41_001,
        v4(RESOLVER),
        53,
        &query(0x77, "www.example.com", 1),
    );
    let mut body = Vec::new();
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    let t = EPOCH_US + 50_000;
    body.extend_from_slice(&((t >> 32) as u32).to_le_bytes());
    body.extend_from_slice(&(t as u32).to_le_bytes());
    body.extend_from_slice(&(q.len() as u32).to_le_bytes());
    body.extend_from_slice(&(q.len() as u32).to_le_bytes());
    body.extend_from_slice(&q);
    ng.block(2, &body);
    let path = write(tmp.path(), "spb.pcapng", &ng.bytes);
    let (obs, stats, err) = read_all(&path);
    assert_eq!(err, None);
    assert_eq!(stats.packets, 3);
    let names: Vec<(String, bool)> = obs
        .iter()
        .filter_map(|o| match o {
            Observation::Dns(d) => Some((d.qname.clone(), !d.answers.is_empty())),
            _ => None,
        })
        .collect();
    assert!(names.contains(&(POOL_NAME.to_string(), true)), "{names:?}");
    assert!(
        names.iter().any(|(n, _)| n == "www.example.com"),
        "{names:?}"
    );
}

#[test]
fn pcap_both_byte_orders_and_nanosecond_magic_read_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let le = pool_session_pcap();
    // Rewrite the same records as big-endian nanosecond pcap.
    let mut be = Vec::new();
    be.extend_from_slice(&0xa1b2_3c4du32.to_be_bytes());
    be.extend_from_slice(&2u16.to_be_bytes());
    be.extend_from_slice(&4u16.to_be_bytes());
    be.extend_from_slice(&[0; 8]);
    be.extend_from_slice(&65535u32.to_be_bytes());
    be.extend_from_slice(&1u32.to_be_bytes());
    for (t, f) in le.records() {
        let t = EPOCH_US + t;
        be.extend_from_slice(&((t / 1_000_000) as u32).to_be_bytes());
        be.extend_from_slice(&(((t % 1_000_000) * 1000) as u32).to_be_bytes());
        be.extend_from_slice(&(f.len() as u32).to_be_bytes());
        be.extend_from_slice(&(f.len() as u32).to_be_bytes());
        be.extend_from_slice(&f);
    }
    let a = read_all(&write(tmp.path(), "le.pcap", &le.bytes));
    let b = read_all(&write(tmp.path(), "be-ns.pcap", &be));
    assert_eq!(a.2, None);
    assert_eq!(b.2, None);
    let strip = |v: Vec<Observation>| -> Vec<String> {
        v.into_iter()
            .map(|o| {
                let mut j = serde_json::to_value(&o).unwrap();
                j.as_object_mut().unwrap().remove("source");
                j.to_string()
            })
            .collect()
    };
    assert_eq!(strip(a.0), strip(b.0));
}

#[test]
fn truncated_pcap_exits_2_with_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pool_session_pcap();
    let recs = p.records();
    // Cut inside the login record: the offset of that record's header is reported.
    let mut off = 24usize;
    let mut login_at = 0;
    for (_, f) in &recs {
        if f.windows(8).any(|w| w == b"\"login\":") {
            login_at = off;
            break;
        }
        off += 16 + f.len();
    }
    assert!(login_at > 0);
    let cut = write(tmp.path(), "cut.pcap", &p.bytes[..login_at + 16 + 40]);
    let o = bin()
        .args(["scan", "--output", "json"])
        .arg(&cut)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains("cut.pcap"), "{err}");
    assert!(err.contains(&format!("at byte {login_at}")), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // What was read is still reported (the lookup and the attempted connection).
    assert!(!detections(&o).is_empty());

    // A record claiming a 1 GiB frame: an error at its offset, not an allocation.
    let mut huge = p.bytes[..login_at].to_vec();
    huge.extend_from_slice(&[0; 8]);
    huge.extend_from_slice(&(1u32 << 30).to_le_bytes());
    huge.extend_from_slice(&(1u32 << 30).to_le_bytes());
    huge.extend_from_slice(&[0; 64]);
    let huge = write(tmp.path(), "huge.pcap", &huge);
    let o = bin().args(["scan"]).arg(&huge).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("at byte {login_at}")) && err.contains("1073741824"),
        "{err}"
    );

    // A pcapng block whose length trailer is wrong, and one cut short.
    let mut ng = Pcapng::new(false);
    let eth = ng.interface(LINKTYPE_ETHERNET as u16, None);
    for (t, f) in lookup_frames(v4(MINER), 0) {
        ng.packet(eth, t, &f);
    }
    let good_len = ng.bytes.len();
    ng.packet(eth, 10_000, &recs[0].1);
    let mut bad = ng.bytes.clone();
    let n = bad.len();
    bad[n - 4..].copy_from_slice(&999u32.to_le_bytes());
    let bad = write(tmp.path(), "bad.pcapng", &bad);
    let o = bin().args(["inspect"]).arg(&bad).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("at byte {good_len}")) && err.contains("trailer"),
        "{err}"
    );
    // inspect still printed the two lookups before the damage.
    assert!(String::from_utf8_lossy(&o.stdout).contains(POOL_NAME));
    let short = write(tmp.path(), "short.pcapng", &ng.bytes[..ng.bytes.len() - 7]);
    let o = bin().args(["scan"]).arg(&short).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("at byte {good_len}")), "{err}");

    // An empty file and garbage: clear errors, exit 2.
    for (name, bytes) in [
        ("empty.pcap", &b""[..]),
        ("junk.pcap", &b"\xd4\xc3\xb2\xa1 too short"[..]),
    ] {
        let p = write(tmp.path(), name, bytes);
        let o = bin()
            .args(["scan", "--format", "pcap"])
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"));
    }
}

fn run_with_stdin(args: &[&str], input: Vec<u8>) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // The child may stop reading early (an error): a failed write is its answer.
        let _ = stdin.write_all(&input);
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    o
}

fn dnsmasq_sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sample/sample-dnsmasq.log")
}

#[test]
fn scan_reads_stdin_with_and_without_format() {
    let pcap = pool_session_pcap().bytes;
    let log = std::fs::read(dnsmasq_sample()).unwrap();
    let cases: [(&[&str], &Vec<u8>); 4] = [
        (&["scan", "--output", "json", "-"], &pcap),
        (
            &["scan", "--output", "json", "--format", "pcap", "-"],
            &pcap,
        ),
        (&["scan", "--output", "json", "-"], &log),
        (
            &["scan", "--output", "json", "--format", "dnsmasq", "-"],
            &log,
        ),
    ];
    for (args, input) in cases {
        let o = run_with_stdin(args, input.clone());
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(!detections(&o).is_empty(), "{args:?}");
    }
    // Same detections as from the file.
    let tmp = tempfile::tempdir().unwrap();
    let f = write(tmp.path(), "s.pcap", &pcap);
    let from_file = bin()
        .args(["scan", "--output", "json"])
        .arg(&f)
        .output()
        .unwrap();
    let from_stdin = run_with_stdin(&["scan", "--output", "json", "-"], pcap);
    let key = |o: &Output| -> Vec<(String, String, u8)> {
        detections(o)
            .into_iter()
            .map(|d| (d.client_ip.to_string(), d.pool_domain, d.risk_score))
            .collect()
    };
    assert_eq!(key(&from_file), key(&from_stdin));
    assert_stratum_for(&detections(&from_stdin), MINER);
    // inspect too.
    let o = run_with_stdin(&["inspect", "-"], std::fs::read(&f).unwrap());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"stratum_method\":\"login\""));
}

#[test]
fn scan_reads_fifo_and_process_substitution() {
    let tmp = tempfile::tempdir().unwrap();
    let pcap = pool_session_pcap().bytes;
    let file = write(tmp.path(), "s.pcap", &pcap);
    let log = dnsmasq_sample();
    for (name, content, format) in [
        ("cap.fifo", pcap.clone(), None),
        ("cap2.fifo", pcap.clone(), Some("pcap")),
        ("log.fifo", std::fs::read(&log).unwrap(), None),
        ("log2.fifo", std::fs::read(&log).unwrap(), Some("dnsmasq")),
    ] {
        let fifo = tmp.path().join(name);
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                // Blocks until poolwatch opens the FIFO (exactly once).
                let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
                let _ = f.write_all(&content);
            })
        };
        let mut cmd = bin();
        cmd.args(["scan", "--output", "json"]);
        if let Some(f) = format {
            cmd.args(["--format", f]);
        }
        let o = cmd.arg(&fifo).output().unwrap();
        writer.join().unwrap();
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        assert!(!detections(&o).is_empty(), "{name}");
    }
    // Process substitution: bash hands over /dev/fd/N, a pipe.
    let have_bash = Command::new("bash").arg("-c").arg("true").status().is_ok();
    if !have_bash {
        eprintln!("skipping: no bash for process substitution");
        return;
    }
    let script = format!(
        "exec {} scan --output json <(cat {}) <(cat {})",
        env!("CARGO_BIN_EXE_poolwatch"),
        file.display(),
        log.display()
    );
    let o = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let dets = detections(&o);
    assert_stratum_for(&dets, MINER);
    assert!(dets.len() >= 2, "pcap and log both read: {dets:#?}");
}

/// Frames of a TCP connection with explicit sequence numbers (for reordering).
struct Tcp {
    c: IpAddr,
    s: IpAddr,
    cp: u16,
    sp: u16,
    isn_c: u32,
    isn_s: u32,
}

impl Tcp {
    fn client(&self, off: u32, flags: u8, data: &[u8]) -> Vec<u8> {
        tcp_frame(
            self.c,
            self.cp,
            self.s,
            self.sp,
            self.isn_c.wrapping_add(1 + off),
            self.isn_s.wrapping_add(1),
            flags,
            data,
        )
    }
    fn server(&self, off: u32, flags: u8, data: &[u8]) -> Vec<u8> {
        tcp_frame(
            self.s,
            self.sp,
            self.c,
            self.cp,
            self.isn_s.wrapping_add(1 + off),
            self.isn_c.wrapping_add(1),
            flags,
            data,
        )
    }
    fn handshake(&self, p: &mut Pcap, t: u64) {
        p.push(
            t,
            &tcp_frame(self.c, self.cp, self.s, self.sp, self.isn_c, 0, SYN, &[]),
        );
        p.push(
            t + 100,
            &tcp_frame(
                self.s,
                self.sp,
                self.c,
                self.cp,
                self.isn_s,
                self.isn_c.wrapping_add(1),
                SYN | ACK,
                &[],
            ),
        );
        p.push(t + 200, &self.client(0, ACK, &[]));
    }
}

/// The login split in `parts` segments: (offset, bytes).
fn split(data: &[u8], parts: usize) -> Vec<(u32, Vec<u8>)> {
    let step = data.len().div_ceil(parts);
    data.chunks(step)
        .enumerate()
        .map(|(i, c)| ((i * step) as u32, c.to_vec()))
        .collect()
}

/// A pool session whose first client segments arrive out of order and retransmitted, and whose
/// server reply is reordered too. The ISN sits just below 2^32 so the sequence numbers wrap.
fn reordered_session() -> (Pcap, Tcp) {
    let c = v4(MINER);
    let mut p = Pcap::new(LINKTYPE_ETHERNET);
    for (t, f) in lookup_frames(c, 0) {
        p.push(t, &f);
    }
    let tcp = Tcp {
        c,
        s: v4(POOL_IP),
        cp: 50_300,
        sp: 3333,
        isn_c: u32::MAX - 100,
        isn_s: 7_000,
    };
    tcp.handshake(&mut p, 100_000);
    let seg = split(XMRIG_LOGIN, 3);
    let t = 101_000;
    // Order on the wire: 3rd, 1st, 1st again (retransmission), 2nd, 3rd again.
    for (i, k) in [2usize, 0, 0, 1, 2].iter().enumerate() {
        let (off, d) = &seg[*k];
        p.push(t + i as u64 * 100, &tcp.client(*off, PSH | ACK, d));
    }
    let reply = POOL_REPLY;
    let sseg = split(reply, 2);
    p.push(120_000, &tcp.server(sseg[1].0, PSH | ACK, &sseg[1].1));
    p.push(120_100, &tcp.server(sseg[0].0, PSH | ACK, &sseg[0].1));
    let (cl, sl) = (XMRIG_LOGIN.len() as u32, reply.len() as u32);
    p.push(200_000, &tcp.client(cl, FIN | ACK, &[]));
    p.push(200_100, &tcp.server(sl, FIN | ACK, &[]));
    p.push(200_200, &tcp.client(cl + 1, ACK, &[]));
    (p, tcp)
}

#[test]
fn reordered_xmrig_login_grades_stratum() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, _) = reordered_session();
    let path = write(tmp.path(), "reordered.pcap", &p.bytes);
    let (obs, stats, err) = read_all(&path);
    assert_eq!(err, None);
    let f = flows(&obs)
        .into_iter()
        .find(|f| f.report == FlowReport::Final && f.dst_port == 3333)
        .expect("final flow report")
        .clone();
    // The prefix is the stream from its initial sequence number, in order, without duplicates.
    let n = XMRIG_LOGIN.len().min(capture::PAYLOAD_PREFIX_MAX);
    assert_eq!(f.payload_out, XMRIG_LOGIN[..n].to_vec());
    assert_eq!(f.app.stratum_method.as_deref(), Some("login"));
    assert_eq!(
        f.app.stratum_agent.as_deref(),
        Some("XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0")
    );
    assert!(f
        .payload_in
        .starts_with(br#"{"id":1,"jsonrpc":"2.0","error":null"#));
    assert_eq!(f.payload_in.len(), POOL_REPLY.len());
    assert_eq!(stats.flow_ooo_dropped, 0);
    let o = bin()
        .args(["scan", "--output", "json"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let dets = detections(&o);
    assert_stratum_for(&dets, MINER);
    assert!(dets
        .iter()
        .any(|d| d.agents.iter().any(|a| a.starts_with("XMRig/6.21.0"))));
}

#[test]
fn retransmitted_segments_counted_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (p, _) = reordered_session();
    let path = write(tmp.path(), "reordered.pcap", &p.bytes);
    let (obs, _, _) = read_all(&path);
    let f = flows(&obs)
        .into_iter()
        .find(|f| f.report == FlowReport::Final && f.dst_port == 3333)
        .unwrap()
        .clone();
    assert_eq!(
        f.bytes_out,
        XMRIG_LOGIN.len() as u64,
        "two retransmissions not counted"
    );
    assert_eq!(f.bytes_in, POOL_REPLY.len() as u64);
    // Packets are packets: every segment is counted (SYN, ACK, 5 data, FIN; the last ACK
    // follows the close and falls on the closed flow's tombstone).
    assert_eq!(f.packets_out, 8);
}

#[test]
fn out_of_order_segments_beyond_the_cap_are_dropped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let c = v4(MINER);
    let mut p = Pcap::new(LINKTYPE_ETHERNET);
    let tcp = Tcp {
        c,
        s: v4(POOL_IP),
        cp: 50_400,
        sp: 3333,
        isn_c: 1_000,
        isn_s: 9_000,
    };
    tcp.handshake(&mut p, 0);
    // 32 segments of 16 bytes, delivered last first: the first one arrives last.
    let data: Vec<u8> = (0..512).map(|i| b'a' + (i % 26) as u8).collect();
    let seg = split(&data, 32);
    for (i, (off, d)) in seg.iter().rev().enumerate() {
        p.push(1_000 + i as u64 * 10, &tcp.client(*off, PSH | ACK, d));
    }
    let path = write(tmp.path(), "deep.pcap", &p.bytes);
    let (obs, stats, _) = read_all(&path);
    assert!(stats.flow_ooo_dropped > 0, "{stats:?}");
    let f = flows(&obs)
        .into_iter()
        .find(|f| f.report == FlowReport::Final)
        .unwrap()
        .clone();
    // Bytes still count whole; the prefix holds what was kept, in order, from the start.
    assert_eq!(f.bytes_out, 512);
    assert!(data.starts_with(&f.payload_out), "prefix is in order");
    assert!(f.payload_out.len() >= 16);
}

#[test]
fn gre_in_udp_tunnel_is_decoded() {
    let tmp = tempfile::tempdir().unwrap();
    let (outer_a, outer_b) = (v4("203.0.113.1"), v4("203.0.113.2"));
    let mut p = Pcap::new(LINKTYPE_ETHERNET);
    let mut t = 0;
    // Inner IPv4 (protocol type 0x0800): the pool lookup and the session.
    let session = pool_session_pcap();
    for (ts, f) in session.records() {
        let (ip, v6) = ether_payload(&f);
        let ptype = if v6 { 0x86dd } else { 0x0800 };
        p.push(ts, &gre_in_udp_frame(outer_a, outer_b, ptype, ip));
        t = ts;
    }
    // Inner Ethernet (TEB, 0x6558): a second client's lookup.
    for (ts, f) in lookup_frames(v4("192.0.2.41"), t + 1_000) {
        p.push(ts, &gre_in_udp_frame(outer_b, outer_a, 0x6558, &f));
    }
    // Inner IPv6.
    let q6 = ipv6(
        v6("2001:db8::41"),
        v6("2001:db8::53"),
        17,
        &udp(41_000, 53, &query(9, POOL_NAME, 28)),
    );
    p.push(t + 5_000, &gre_in_udp_frame(outer_a, outer_b, 0x86dd, &q6));
    // Nested past the tunnel depth limit: counted, not decoded.
    let mut nested = ipv4(
        v4("10.9.9.9"),
        v4("10.9.9.10"),
        17,
        1,
        0x4000,
        &udp(1, 53, &query(10, "deep.example", 1)),
    );
    for _ in 0..6 {
        let mut g = vec![0, 0, 0x08, 0x00];
        g.extend_from_slice(&nested);
        nested = ipv4(outer_a, outer_b, 17, 2, 0x4000, &udp(49_152, 4754, &g));
    }
    p.push(t + 6_000, &ether(&nested, false, &[]));
    // Something else on port 4754 (not a GRE header): an ordinary flow.
    p.push(
        t + 7_000,
        &udp_frame(outer_a, 40_000, outer_b, 4754, b"\xff\xff\xff\xffhello"),
    );
    let path = write(tmp.path(), "gre-udp.pcap", &p.bytes);
    let (obs, stats, err) = read_all(&path);
    assert_eq!(err, None);
    let names: Vec<(String, String)> = obs
        .iter()
        .filter_map(|o| match o {
            Observation::Dns(d) => Some((d.client.to_string(), d.qname.clone())),
            _ => None,
        })
        .collect();
    assert!(
        names.contains(&(MINER.to_string(), POOL_NAME.to_string())),
        "{names:?}"
    );
    assert!(
        names.contains(&("192.0.2.41".to_string(), POOL_NAME.to_string())),
        "{names:?}"
    );
    assert!(
        names.contains(&("2001:db8::41".to_string(), POOL_NAME.to_string())),
        "{names:?}"
    );
    assert!(!names.iter().any(|(_, n)| n == "deep.example"), "{names:?}");
    assert!(
        stats
            .decode_errors
            .iter()
            .any(|(r, n)| *r == "tunnel_too_deep" && *n == 1),
        "{stats:?}"
    );
    let fl = flows(&obs);
    assert!(fl.iter().any(|f| f.src.to_string() == MINER
        && f.dst_port == 3333
        && f.app.stratum_method.as_deref() == Some("login")));
    assert!(
        fl.iter().any(|f| f.dst_port == 4754 && f.src == outer_a),
        "non-GRE payload stays a flow"
    );
    let o = bin()
        .args(["scan", "--output", "json"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_stratum_for(&detections(&o), MINER);
}
