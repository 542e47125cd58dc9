//! DNS observations from the shared third-party captures agree with Wireshark (tshark 4.0.17
//! field dumps), Zeek's dns.log baselines and suricata-verify's expectations, except for the
//! deliberate differences listed (with reasons) in this file.
//!
//! Needs `../shared/data` (skips with a message when absent).

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use poolwatch::capture::{self, CaptureConfig};
use poolwatch::model::{DnsObservation, Observation};

fn shared() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if p.is_dir() {
        Some(p)
    } else {
        println!("skipping: ../shared/data not present");
        None
    }
}

fn dns_of(path: &Path) -> Vec<DnsObservation> {
    let r = capture::open_file(path, &CaptureConfig::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    r.filter_map(|o| match o {
        Observation::Dns(d) => Some(d),
        _ => None,
    })
    .collect()
}

/// Deliberate difference: names with bytes outside printable ASCII. We print them `\DDD`
/// (RFC 1035 master-file style, unambiguous and ASCII-only, safe in logs and JSON); Wireshark
/// prints control bytes `\ooo` and high bytes as raw (invalid UTF-8 → U+FFFD). Both sides are
/// reduced to `?` for those bytes before comparing. Wireshark's `<root>` is our `.` (the model's
/// spelling of the root).
fn canon(name: &str) -> String {
    let name = name.trim_end_matches('.');
    if name.is_empty() || name.eq_ignore_ascii_case("<root>") {
        return ".".into();
    }
    let mut out = String::new();
    let b: Vec<char> = name.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == '\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|d| d.is_ascii_digit()) {
            push_unknown(&mut out);
            i += 4;
            continue;
        }
        if !c.is_ascii() {
            push_unknown(&mut out);
        } else {
            out.push(c.to_ascii_lowercase());
        }
        i += 1;
    }
    out
}

/// Runs of undecodable bytes collapse to one `?`: Wireshark shows a valid UTF-8 sequence as
/// one character and each invalid byte as U+FFFD; we show each byte as `\DDD`.
fn push_unknown(out: &mut String) {
    if !out.ends_with('?') {
        out.push('?');
    }
}

/// Captures whose DNS messages have no readable question: we report nothing for them (and
/// count `poolwatch_dns_parse_errors_total{reason="no_question"|"question"}`), since an
/// observation without a query name gives the detector nothing to match. Wireshark still lists
/// the packets.
/// Messages without a question at all (inverse queries, opcode 1) are skipped the same way
/// (tshark's `dns.qry.name` is empty for them).
const NO_QUESTION_CAPTURES: &[&str] = &[
    // Empty and pointer-loop names in the question: the question itself is malformed.
    "pcaps/zeek/dns/dns-invalid-names.pcap",
];

#[test]
fn dns_agrees_with_tshark() {
    let Some(root) = shared() else { return };
    let dir = root.join("peer-expected/tshark-4.0.17");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let (mut checked_files, mut checked_rows) = (0, 0);
    let mut problems = Vec::new();
    for tsv in files {
        let fname = tsv.file_name().unwrap().to_string_lossy().to_string();
        let Some(rel) = fname.strip_suffix(".dns.tsv") else {
            continue;
        };
        let rel = rel.replace("__", "/");
        let pcap = root.join(&rel);
        if !pcap.exists() {
            problems.push(format!("{rel}: capture missing"));
            continue;
        }
        let obs = dns_of(&pcap);
        let text = fs::read_to_string(&tsv).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let first = |row: &[&str], name: &str| -> String {
            row.get(col(name))
                .unwrap_or(&"")
                .split(',')
                .next()
                .unwrap_or("")
                .to_string()
        };
        let set = |row: &[&str], name: &str| -> BTreeSet<String> {
            row.get(col(name))
                .unwrap_or(&"")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(canon)
                .collect()
        };
        checked_files += 1;
        for line in lines {
            let row: Vec<&str> = line.split('\t').collect();
            let sport = first(&row, "udp.srcport") + &first(&row, "tcp.srcport");
            let dport = first(&row, "udp.dstport") + &first(&row, "tcp.dstport");
            // Our DNS ports are [53]: mDNS/LLMNR rows are not DNS for us (deliberate).
            if sport != "53" && dport != "53" {
                continue;
            }
            let id_s = first(&row, "dns.id");
            let Ok(id) = u16::from_str_radix(id_s.trim_start_matches("0x"), 16) else {
                continue;
            };
            if NO_QUESTION_CAPTURES.contains(&rel.as_str()) {
                continue;
            }
            if first(&row, "dns.qry.name").is_empty() {
                continue;
            }
            checked_rows += 1;
            let frame = first(&row, "frame.number");
            let qname = canon(&first(&row, "dns.qry.name"));
            let is_resp = first(&row, "dns.flags.response") == "1";
            let cands: Vec<&DnsObservation> = obs
                .iter()
                .filter(|o| o.id == Some(id) && canon(&o.qname) == qname)
                .collect();
            if cands.is_empty() {
                problems.push(format!(
                    "{rel} frame {frame}: no observation for id {id} {qname}"
                ));
                continue;
            }
            let qtype = first(&row, "dns.qry.type");
            if !cands.iter().any(|o| o.qtype.0.to_string() == qtype) {
                problems.push(format!("{rel} frame {frame}: qtype {qtype} differs"));
            }
            if !is_resp {
                continue;
            }
            let Some(o) = cands.iter().find(|o| o.rcode.is_some()) else {
                problems.push(format!("{rel} frame {frame}: response not reported"));
                continue;
            };
            // Deliberate: our rcode includes the EDNS extended bits (BADVERS = 16); Wireshark's
            // dns.flags.rcode is the header's 4 bits. Compare those.
            let rc = first(&row, "dns.flags.rcode");
            if let (Ok(want), Some(got)) = (rc.parse::<u16>(), o.rcode) {
                if want != got.0 & 0x0f {
                    problems.push(format!("{rel} frame {frame}: rcode {want} vs {got}"));
                }
            }
            // tshark's dns.a/aaaa/cname include authority/additional records; ours are the
            // answer section only, so ours must be a subset and the counts must match.
            let of = |t: &str| -> BTreeSet<String> {
                o.answers
                    .iter()
                    .filter(|a| a.rtype.to_string() == t)
                    .map(|a| canon(&a.data))
                    .collect()
            };
            for (t, field) in [("A", "dns.a"), ("AAAA", "dns.aaaa"), ("CNAME", "dns.cname")] {
                let want = set(&row, field);
                let got = of(t);
                if !got.is_subset(&want) {
                    problems.push(format!("{rel} frame {frame}: {t} {got:?} not in {want:?}"));
                }
            }
            let n: usize = first(&row, "dns.count.answers").parse().unwrap_or(0);
            if o.salvaged.is_none() && o.answers.len() != n.min(poolwatch::dns::MAX_ANSWERS) {
                problems.push(format!(
                    "{rel} frame {frame}: {} answers, tshark {n}",
                    o.answers.len()
                ));
            }
        }
    }
    println!("tshark: {checked_files} captures, {checked_rows} DNS rows checked");
    assert!(checked_rows > 1000);
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Zeek baselines we deliberately differ from.
const ZEEK_DIFFERENCES: &[(&str, &str)] = &[(
    "scripts.base.protocols.dns.dynamic-update",
    "DNS UPDATE: Zeek's `query` is the updated owner name; we report the zone section's name, \
     as Wireshark does (the message's question-section position), and no answers",
)];

#[test]
fn dns_agrees_with_zeek() {
    let Some(root) = shared() else { return };
    let tests = fs::read_to_string(root.join("peer-expected/zeek/TESTS.tsv")).unwrap();
    let mut traces = HashMap::new();
    for line in tests.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if let (Some(name), Some(tr)) = (f.first(), f.get(1)) {
            traces.insert(name.to_string(), tr.to_string());
        }
    }
    let (mut logs, mut rows) = (0, 0);
    let mut problems = Vec::new();
    for (test, tr) in &traces {
        let log = root.join("peer-expected/zeek").join(test).join("dns.log");
        // Tests over several traces write one log from all of them; only single-trace tests
        // map rows to one capture.
        if !log.exists() || tr.contains(' ') || ZEEK_DIFFERENCES.iter().any(|(t, _)| t == test) {
            continue;
        }
        let obs = dns_of(&root.join("pcaps/zeek").join(tr));
        logs += 1;
        let text = fs::read_to_string(&log).unwrap();
        let mut fields: Vec<String> = Vec::new();
        for line in text.lines() {
            if let Some(f) = line.strip_prefix("#fields\t") {
                fields = f.split('\t').map(String::from).collect();
                continue;
            }
            if line.starts_with('#') || fields.is_empty() {
                continue;
            }
            let v: Vec<&str> = line.split('\t').collect();
            let get = |n: &str| {
                fields
                    .iter()
                    .position(|f| f == n)
                    .and_then(|i| v.get(i))
                    .copied()
            };
            let (Some(orig), Some(oport), Some(resp_p), Some(id), Some(query)) = (
                get("id.orig_h"),
                get("id.orig_p"),
                get("id.resp_p"),
                get("trans_id"),
                get("query"),
            ) else {
                continue;
            };
            // Zeek's DNS analyzer also runs on 5353/5355 (mDNS, LLMNR); ours only on 53.
            if resp_p != "53" && oport != "53" {
                continue;
            }
            if query == "-" {
                continue; // no question: see NO_QUESTION_CAPTURES above
            }
            rows += 1;
            let client: IpAddr = orig.parse().unwrap();
            let id: u16 = id.parse().unwrap();
            // Zeek escapes non-printables as \xHH; reduce to '?' like `canon`.
            let zq = zeek_canon(query);
            let Some(o) = obs.iter().find(|o| {
                o.id == Some(id)
                    && canon(&o.qname) == zq
                    && (o.client == client || o.server == Some(client))
            }) else {
                problems.push(format!("{test}: no observation for {orig} id {id} {query}"));
                continue;
            };
            if let Some(q) = get("qtype").filter(|q| *q != "-") {
                if o.qtype.0.to_string() != q {
                    problems.push(format!("{test}: {query} qtype {q} vs {}", o.qtype));
                }
            }
            if let Some(rc) = get("rcode").filter(|r| *r != "-") {
                let ours = obs
                    .iter()
                    .filter(|x| x.id == Some(id) && canon(&x.qname) == zq)
                    .filter_map(|x| x.rcode)
                    .any(|r| r.0.to_string() == rc || (r.0 & 0x0f).to_string() == rc);
                if !ours {
                    problems.push(format!("{test}: {query} rcode {rc} not seen"));
                }
            }
            if let Some(ans) = get("answers").filter(|a| *a != "-") {
                let want: BTreeSet<IpAddr> =
                    ans.split(',').filter_map(|a| a.parse().ok()).collect();
                let got: BTreeSet<IpAddr> = obs
                    .iter()
                    .filter(|x| x.id == Some(id) && canon(&x.qname) == zq)
                    .flat_map(|x| x.answer_ips())
                    .collect();
                if !want.is_subset(&got) {
                    problems.push(format!("{test}: {query} answers {want:?} vs {got:?}"));
                }
            }
        }
    }
    println!("zeek: {logs} dns.log baselines, {rows} rows checked");
    assert!(rows > 20);
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

fn zeek_canon(q: &str) -> String {
    let mut out = String::new();
    let b = q.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') && i + 3 < b.len() {
            out.push('?');
            i += 4;
            continue;
        }
        out.push(b[i].to_ascii_lowercase() as char);
        i += 1;
    }
    canon(&out)
}

/// suricata-verify tests whose DNS we deliberately do not see.
const SURICATA_SKIP: &[(&str, &str)] = &[
    (
        "dns-over-http2",
        "DNS over HTTPS/HTTP2 is not decoded (it is HTTP, not port 53)",
    ),
    ("doh", "DNS over HTTPS is not decoded"),
];

#[test]
fn dns_agrees_with_suricata_verify() {
    let Some(root) = shared() else { return };
    let base = root.join("peer-expected/suricata-verify/tests");
    let mut stack = vec![base.clone()];
    let (mut tests, mut names) = (0, 0);
    let mut problems = Vec::new();
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        let entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        for e in &entries {
            if e.is_dir() {
                stack.push(e.clone());
            }
        }
        let Some(yaml) = entries.iter().find(|e| e.ends_with("test.yaml")) else {
            continue;
        };
        let dname = d.to_string_lossy().to_string();
        if SURICATA_SKIP.iter().any(|(k, _)| dname.contains(k)) {
            continue;
        }
        let text = fs::read_to_string(yaml).unwrap();
        let pcap = entries
            .iter()
            .find(|e| e.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
            .cloned()
            .or_else(|| {
                text.lines()
                    .find_map(|l| l.trim().strip_prefix("pcap:"))
                    .map(|p| d.join(p.trim()))
                    .filter(|p| p.exists())
            });
        let Some(pcap) = pcap else { continue };
        // Tests that move Suricata's DNS parser to other ports (`detection-ports.dp=5353`) get
        // the same configuration here.
        let mut cfg = CaptureConfig::default();
        for l in text.lines() {
            if let Some((_, p)) = l.split_once("detection-ports.dp=") {
                cfg.dns_ports.extend(
                    p.split(|c: char| !c.is_ascii_digit())
                        .next()
                        .and_then(|n| n.parse::<u16>().ok()),
                );
            }
        }
        let obs: Vec<DnsObservation> = capture::open_file(&pcap, &cfg)
            .unwrap()
            .filter_map(|o| match o {
                Observation::Dns(d) => Some(d),
                _ => None,
            })
            .collect();
        tests += 1;
        // Suricata logs authority-section records too (SOA/NS of the zone); we keep the answer
        // section only. Such owner names are ancestors of the query name, so a name counts as
        // observed when it is a query name, an answer name, or a parent domain of a query name.
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut rcodes: BTreeSet<String> = BTreeSet::new();
        let mut add = |name: String| {
            let mut rest = name.as_str();
            while let Some((_, parent)) = rest.split_once('.') {
                seen.insert(parent.to_string());
                rest = parent;
            }
            seen.insert(name);
        };
        for o in &obs {
            add(canon(&o.qname));
            for a in &o.answers {
                add(canon(&a.name));
                if a.rtype.to_string() == "CNAME" {
                    add(canon(&a.data));
                }
            }
            if let Some(r) = o.rcode {
                rcodes.insert(r.to_string());
            }
        }
        for line in text.lines() {
            let l = line.trim().trim_start_matches("- ");
            if let Some(v) = l.split_once("rrname:").map(|(_, v)| v) {
                let v = v.trim().trim_matches('"').trim_matches('\'');
                if v.is_empty() || v.contains('\\') {
                    continue;
                }
                names += 1;
                if !seen.contains(&canon(v)) {
                    problems.push(format!("{}: rrname {v} not observed", dname));
                }
            } else if let Some(v) = l
                .strip_prefix("dns.rcode:")
                .or_else(|| l.strip_prefix("rcode:"))
            {
                let v = v.trim().trim_matches('"');
                if !rcodes.contains(v) {
                    problems.push(format!("{}: rcode {v} not observed ({rcodes:?})", dname));
                }
            }
        }
    }
    println!("suricata-verify: {tests} tests, {names} rrnames checked");
    assert!(tests > 10);
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
