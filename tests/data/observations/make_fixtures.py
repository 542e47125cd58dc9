#!/usr/bin/env python3
"""Writes mini.jsonl: a small hand-made scenario of DNS + flow observations (the
`inspect --output json` shape) covering every detection stage, for tests/scan_*.rs and
tests/correlate_*.rs. Deterministic; run from anywhere: python3 make_fixtures.py"""
import datetime, json, os

T0 = 1795724800.0  # 2026-11-26T20:26:40Z
SRC_PCAP = "pcap:mini.pcap"
SRC_LOG = "log:bind:query.log"
RESOLVER, AUTH = "192.0.2.53", "192.0.2.1"
out = []

def ts(dt):
    d = datetime.datetime.fromtimestamp(T0 + dt, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

def dns(dt, client, qname, qtype="A", rcode="NOERROR", answers=(), ttl=60, server=RESOLVER, source=SRC_PCAP, known=True):
    o = {"observation": "dns", "ts": ts(dt), "client": client, "server": server, "server_port": 53,
         "transport": "udp", "qname": qname, "qtype": qtype, "answers_known": known, "source": source}
    if rcode is not None:
        o["rcode"] = rcode
        o["rtt_us"] = 800
    o["answers"] = [{"name": n, "type": t, "ttl": ttl, "data": d} for (n, t, d) in answers]
    out.append(o)

def flow(dt, dur, src, sport, dst, dport, state="closed", payload=b"", app=None, report="final", bout=None, bin_=2000):
    o = {"observation": "flow", "ts": ts(dt), "last_ts": ts(dt + dur), "src": src, "src_port": sport,
         "dst": dst, "dst_port": dport, "proto": "tcp", "direction": "originator", "state": state,
         "report": report, "bytes_out": len(payload) if bout is None else bout,
         "bytes_in": bin_ if state in ("established", "closed") else 0,
         "packets_out": 4, "packets_in": 3 if state in ("established", "closed") else 0,
         "payload_out": payload.hex(), "app": app or {}, "source": SRC_PCAP}
    out.append(o)

XMR = b'{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"4AbC","pass":"x","agent":"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0","algo":["rx/0"]}}\n'
SUB = b'{"id":1,"method":"mining.subscribe","params":["cpuminer/2.5.1"]}\n'

# A 10.0.0.11: lookup -> Stratum (XMRig) on the answer; also seen in the resolver log (dedupe)
dns(1.0, "10.0.0.11", "pool.supportxmr.com", answers=[("pool.supportxmr.com", "A", "198.51.100.17")])
dns(1.3, "10.0.0.11", "pool.supportxmr.com", rcode="NOERROR", source=SRC_LOG, known=False, server=None)
# the resolver's own upstream query (infrastructure: never reported)
dns(1.0002, RESOLVER, "pool.supportxmr.com", server=AUTH, answers=[("pool.supportxmr.com", "A", "198.51.100.17")])
flow(1.05, 0.5, "10.0.0.11", 50111, "198.51.100.17", 3333, state="established", payload=XMR,
     app={"stratum_method": "login", "stratum_agent": "XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0"},
     report="interim")
flow(1.05, 30.0, "10.0.0.11", 50111, "198.51.100.17", 3333, payload=XMR,
     app={"stratum_method": "login", "stratum_agent": "XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0"},
     bout=4096, bin_=65536)
# B 10.0.0.12: lookup only
dns(2.0, "10.0.0.12", "xmr-eu1.nanopool.org", answers=[("xmr-eu1.nanopool.org", "A", "198.51.100.88")])
# C 10.0.0.13: NXDOMAIN, retried
dns(3.0, "10.0.0.13", "pool.minexmr.com", rcode="NXDOMAIN")
dns(8.0, "10.0.0.13", "pool.minexmr.com", rcode="NXDOMAIN")
# D 10.0.0.14: no DNS, session to the address A resolved -> direct_ip
flow(10.0, 5.0, "10.0.0.14", 50222, "198.51.100.17", 3333, payload=b"\x00\x01binary", bin_=900)
# E 10.0.0.15: benign + look-alike
dns(4.0, "10.0.0.15", "www.example.com", answers=[("www.example.com", "A", "203.0.113.5")])
dns(4.1, "10.0.0.15", "notsupportxmr.com", answers=[("notsupportxmr.com", "A", "198.51.100.18")])
dns(4.2, "10.0.0.15", "supportxmr.com.evil.example", rcode="NXDOMAIN")
flow(4.3, 1.0, "10.0.0.15", 50333, "203.0.113.5", 443, payload=b"\x16\x03\x01\x02\x00", app={"tls": True, "sni": "www.example.com"})
flow(4.4, 1.0, "10.0.0.15", 50334, "198.51.100.18", 443, payload=b"\x16\x03\x01\x02\x00", app={"tls": True, "sni": "notsupportxmr.com"})
# F 10.0.0.16: CNAME chain to a pool, then a SYN that is never answered -> connection_attempt
dns(5.0, "10.0.0.16", "cdn.sync-check.example", answers=[
    ("cdn.sync-check.example", "CNAME", "gulf.moneroocean.stream"),
    ("gulf.moneroocean.stream", "A", "198.51.100.37")])
flow(5.1, 3.0, "10.0.0.16", 50444, "198.51.100.37", 10128, state="attempted", bout=0)
# G 10.0.0.17: Stratum v1 to an address nobody resolved -> stratum:<ip>
flow(6.0, 10.0, "10.0.0.17", 50555, "203.0.113.99", 4444, payload=SUB, app={"stratum_method": "mining.subscribe"})
# H 10.0.0.18: sinkholed answer (0.0.0.0) -> blocked_lookup
dns(7.0, "10.0.0.18", "c3pool.com", answers=[("c3pool.com", "A", "0.0.0.0")])
# I 10.0.0.19: Selenium grid on 4444 (HTTP), benign
dns(7.5, "10.0.0.19", "selenium-hub.ci.example", answers=[("selenium-hub.ci.example", "A", "203.0.113.44")])
flow(7.6, 0.1, "10.0.0.19", 50666, "203.0.113.44", 4444, payload=b"GET /status HTTP/1.1\r\n\r\n")

here = os.path.dirname(os.path.abspath(__file__))
out.sort(key=lambda o: o.get("last_ts", o["ts"]))
with open(os.path.join(here, "mini.jsonl"), "w") as f:
    for o in out:
        f.write(json.dumps(o, separators=(",", ":")) + "\n")
