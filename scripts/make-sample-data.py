#!/usr/bin/env python3
"""Generate poolwatch's bundled demo data: a packet capture and the resolver log of the same traffic.

Outputs (committed under tests/data/sample/, regenerate with `python3 scripts/make-sample-data.py`):
  sample.pcap            classic pcap, link type Ethernet, IPv4, valid IP/UDP/TCP checksums, ~100 s
  sample-dnsmasq.log     the resolver's own view of the same client queries (dnsmasq log-queries=extra)
  expected.json          per host: the strongest stage poolwatch should report, or null

Stdlib only and deterministic: no randomness, no clock; running it twice gives identical bytes.
Addresses come from the documentation ranges (RFC 5737 / RFC 3849); pool names are real.
See tests/data/sample/README.md for what each host does and why.
"""

import json
import os
import struct
import sys

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "sample")

# 2026-11-26T20:00:00Z: the capture's first second.
T0 = 1795723200
RESOLVER = "192.0.2.53"
UPSTREAM = "198.51.100.53"
DNSMASQ_PID = 4242

MINER = "192.0.2.10"
LOOKUP_ONLY = "192.0.2.11"
DIRECT_STRATUM = "192.0.2.12"
BLOCKED = "192.0.2.13"
ATTEMPT = "192.0.2.14"
TLS_MINER = "192.0.2.15"
DIRECT_TLS = "192.0.2.16"
SINKHOLED = "192.0.2.17"
BENIGN_WEB = "192.0.2.20"
BENIGN_LOOKALIKE = "192.0.2.21"

SUPPORTXMR_IP = "203.0.113.10"
NANOPOOL_IP = "203.0.113.20"
MONEROOCEAN_IP = "203.0.113.30"
HASHVAULT_IP = "203.0.113.40"
CDN_IP = "198.51.100.80"
CDN_IP6 = "2001:db8::80"
LOOKALIKE_IP = "198.51.100.81"
EVIL_IP = "198.51.100.82"

XMRIG_AGENT = "XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0"
WALLET = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A"


# --------------------------------------------------------------------------------------------
# Packet building
# --------------------------------------------------------------------------------------------

def ip4(s):
    return bytes(int(x) for x in s.split("."))


def mac_for(ip):
    # Locally administered MAC derived from the address, so every host has a stable one.
    return bytes([0x02, 0x00]) + ip4(ip)


def checksum(data):
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


class Capture:
    def __init__(self):
        self.records = []  # (ts_us, frame)
        self.ip_id = 1

    def frame(self, ts, src, dst, proto, l4):
        ip_id = self.ip_id
        self.ip_id = (self.ip_id + 1) & 0xFFFF
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ip_id, 0x4000, 64, proto, 0,
                          ip4(src), ip4(dst))
        hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
        eth = mac_for(dst) + mac_for(src) + b"\x08\x00"
        self.records.append((int(round(ts * 1_000_000)), eth + hdr + l4))

    def udp(self, ts, src, sport, dst, dport, payload):
        length = 8 + len(payload)
        pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 17, length)
        hdr = struct.pack("!HHHH", sport, dport, length, 0)
        csum = checksum(pseudo + hdr + payload) or 0xFFFF
        hdr = struct.pack("!HHHH", sport, dport, length, csum)
        self.frame(ts, src, dst, 17, hdr + payload)

    def tcp(self, ts, src, sport, dst, dport, seq, ack, flags, payload=b""):
        offset = 5 << 4
        hdr = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, offset,
                          flags, 64240, 0, 0)
        pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 6, len(hdr) + len(payload))
        csum = checksum(pseudo + hdr + payload)
        hdr = hdr[:16] + struct.pack("!H", csum) + hdr[18:]
        self.frame(ts, src, dst, 6, hdr + payload)

    def write(self, path):
        self.records.sort(key=lambda r: r[0])
        with open(path, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
            for ts_us, data in self.records:
                f.write(struct.pack("<IIII", ts_us // 1_000_000, ts_us % 1_000_000, len(data),
                                    len(data)))
                f.write(data)


FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


class TcpSession:
    """One TCP connection; tracks sequence numbers so the stream reassembles cleanly."""

    def __init__(self, cap, client, cport, server, sport, isn_c, isn_s):
        self.cap, self.c, self.cp, self.s, self.sp = cap, client, cport, server, sport
        self.cseq, self.sseq = isn_c, isn_s

    def handshake(self, ts):
        self.cap.tcp(ts, self.c, self.cp, self.s, self.sp, self.cseq, 0, SYN)
        self.cap.tcp(ts + 0.020, self.s, self.sp, self.c, self.cp, self.sseq, self.cseq + 1, SYN | ACK)
        self.cseq += 1
        self.sseq += 1
        self.cap.tcp(ts + 0.021, self.c, self.cp, self.s, self.sp, self.cseq, self.sseq, ACK)

    def send(self, ts, payload):
        self.cap.tcp(ts, self.c, self.cp, self.s, self.sp, self.cseq, self.sseq, PSH | ACK, payload)
        self.cseq += len(payload)
        self.cap.tcp(ts + 0.015, self.s, self.sp, self.c, self.cp, self.sseq, self.cseq, ACK)

    def recv(self, ts, payload):
        self.cap.tcp(ts, self.s, self.sp, self.c, self.cp, self.sseq, self.cseq, PSH | ACK, payload)
        self.sseq += len(payload)
        self.cap.tcp(ts + 0.001, self.c, self.cp, self.s, self.sp, self.cseq, self.sseq, ACK)

    def close(self, ts):
        self.cap.tcp(ts, self.c, self.cp, self.s, self.sp, self.cseq, self.sseq, FIN | ACK)
        self.cseq += 1
        self.cap.tcp(ts + 0.020, self.s, self.sp, self.c, self.cp, self.sseq, self.cseq, FIN | ACK)
        self.sseq += 1
        self.cap.tcp(ts + 0.021, self.c, self.cp, self.s, self.sp, self.cseq, self.sseq, ACK)


# --------------------------------------------------------------------------------------------
# DNS
# --------------------------------------------------------------------------------------------

TYPES = {"A": 1, "CNAME": 5, "AAAA": 28}


def encode_name(name):
    out = b""
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\x00"


def ip6(s):
    head, _, tail = s.partition("::")
    h = [int(x, 16) for x in head.split(":") if x]
    t = [int(x, 16) for x in tail.split(":") if x]
    return struct.pack("!8H", *(h + [0] * (8 - len(h) - len(t)) + t))


def dns_query(qid, name, qtype):
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + encode_name(name) + struct.pack(
        "!HH", TYPES[qtype], 1)


def dns_response(qid, name, qtype, answers, rcode=0):
    """answers: list of (owner, type, ttl, data)."""
    flags = 0x8180 | rcode
    msg = struct.pack("!HHHHHH", qid, flags, 1, len(answers), 0, 0)
    msg += encode_name(name) + struct.pack("!HH", TYPES[qtype], 1)
    for owner, rtype, ttl, data in answers:
        if rtype == "A":
            rdata = ip4(data)
        elif rtype == "AAAA":
            rdata = ip6(data)
        else:
            rdata = encode_name(data)
        msg += encode_name(owner) + struct.pack("!HHIH", TYPES[rtype], 1, ttl, len(rdata)) + rdata
    return msg


class Resolver:
    """The site resolver: answers clients on the wire and writes the dnsmasq log of it."""

    def __init__(self, cap):
        self.cap = cap
        self.serial = 0
        self.upstream_id = 0x4000
        self.log = []

    def log_line(self, ts, text):
        tm = ts - T0  # seconds into 2026-11-26 20:00:00 UTC
        h, rem = divmod(int(tm), 3600)
        m, s = divmod(rem, 60)
        self.log.append((ts, "Nov 26 %02d:%02d:%02d dnsmasq[%d]: %s" % (20 + h, m, s, DNSMASQ_PID,
                                                                         text)))

    def ask(self, ts, client, cport, qid, name, qtype, answers, rcode=0, forwarded=True):
        """A client query and the resolver's answer (forwarded upstream first unless cached)."""
        self.serial += 1
        tag = "%d %s/%d" % (self.serial, client, cport)
        self.cap.udp(ts, client, cport, RESOLVER, 53, dns_query(qid, name, qtype))
        self.log_line(ts, "%s query[%s] %s from %s" % (tag, qtype, name, client))
        rtt = 0.0005
        if forwarded:
            # The resolver's own upstream leg: it carries the client's name but is not a client.
            uid = self.upstream_id
            self.upstream_id += 1
            uport = 20000 + self.serial
            self.cap.udp(ts + 0.001, RESOLVER, uport, UPSTREAM, 53, dns_query(uid, name, qtype))
            self.cap.udp(ts + 0.030, UPSTREAM, 53, RESOLVER, uport,
                         dns_response(uid, name, qtype, answers, rcode))
            self.log_line(ts, "%s forwarded %s to %s" % (tag, name, UPSTREAM))
            rtt = 0.031
        self.cap.udp(ts + rtt, RESOLVER, 53, client, cport,
                     dns_response(qid, name, qtype, answers, rcode))
        verb = "reply" if forwarded else "cached"
        if rcode == 3:
            self.log_line(ts + rtt, "%s %s %s is NXDOMAIN" % (tag, verb, name))
        for owner, rtype, _ttl, data in answers:
            shown = "<CNAME>" if rtype == "CNAME" else data
            self.log_line(ts + rtt, "%s %s %s is %s" % (tag, verb, owner, shown))

    def write_log(self, path):
        self.log.sort(key=lambda r: r[0])
        with open(path, "w", encoding="ascii", newline="\n") as f:
            f.write("Nov 26 19:59:58 dnsmasq[%d]: started, version 2.90 cachesize 150\n" % DNSMASQ_PID)
            f.write("Nov 26 19:59:58 dnsmasq[%d]: using nameserver %s#53\n" % (DNSMASQ_PID, UPSTREAM))
            for _, line in self.log:
                f.write(line + "\n")


# --------------------------------------------------------------------------------------------
# Application payloads
# --------------------------------------------------------------------------------------------

def jline(obj):
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode("ascii")


def client_hello(sni, seed):
    """A TLS 1.2/1.3 ClientHello, with a server_name extension when `sni` is given."""
    random = bytes((seed * 7 + i * 13) & 0xFF for i in range(32))
    session = bytes((seed * 11 + i * 5) & 0xFF for i in range(32))
    ciphers = struct.pack("!5H", 0x1301, 0x1302, 0x1303, 0xC02F, 0xC030)
    ext = b""
    if sni is not None:
        host = sni.encode("ascii")
        entry = b"\x00" + struct.pack("!H", len(host)) + host
        sni_data = struct.pack("!H", len(entry)) + entry
        ext += struct.pack("!HH", 0x0000, len(sni_data)) + sni_data
    versions = b"\x04\x03\x04\x03\x03"  # TLS 1.3, TLS 1.2
    ext += struct.pack("!HH", 0x002B, len(versions)) + versions
    groups = struct.pack("!H", 2) + struct.pack("!H", 0x001D)
    ext += struct.pack("!HH", 0x000A, len(groups)) + groups
    body = b"\x03\x03" + random + bytes([len(session)]) + session
    body += struct.pack("!H", len(ciphers)) + ciphers + b"\x01\x00"
    body += struct.pack("!H", len(ext)) + ext
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def opaque(n, seed):
    # Stand-in for encrypted application data: TLS record framing around deterministic bytes.
    data = bytes((seed + i * 31) & 0xFF for i in range(n))
    return b"\x17\x03\x03" + struct.pack("!H", len(data)) + data


def server_hello_blob(seed):
    return b"\x16\x03\x03" + struct.pack("!H", 90) + bytes((seed + i * 3) & 0xFF for i in range(90))


# --------------------------------------------------------------------------------------------
# Scenario
# --------------------------------------------------------------------------------------------

def build():
    cap = Capture()
    res = Resolver(cap)
    t = T0 + 1.0

    # Benign web browsing first: a CNAME chain into a CDN, A and AAAA, then HTTPS with SNI.
    res.ask(t, BENIGN_WEB, 41001, 0x1001, "www.example.com", "A",
            [("www.example.com", "CNAME", 300, "www.example.com.cdn.example.net"),
             ("www.example.com.cdn.example.net", "CNAME", 60, "edge7.cdn.example.net"),
             ("edge7.cdn.example.net", "A", 60, CDN_IP)])
    res.ask(t + 0.05, BENIGN_WEB, 41002, 0x1002, "www.example.com", "AAAA",
            [("www.example.com", "CNAME", 300, "www.example.com.cdn.example.net"),
             ("www.example.com.cdn.example.net", "CNAME", 60, "edge7.cdn.example.net"),
             ("edge7.cdn.example.net", "AAAA", 60, CDN_IP6)], forwarded=False)
    web = TcpSession(cap, BENIGN_WEB, 50001, CDN_IP, 443, 1000, 900000)
    web.handshake(t + 0.2)
    web.send(t + 0.25, client_hello("www.example.com", 1))
    web.recv(t + 0.30, server_hello_blob(1))
    web.send(t + 0.35, opaque(300, 2))
    web.recv(t + 0.45, opaque(1200, 3))
    web.close(t + 3.0)

    # The miner: resolves the pool, connects on 3333, XMRig login with an agent, gets a job,
    # submits shares and keeps the session for the whole capture.
    t = T0 + 5.0
    res.ask(t, MINER, 42001, 0x2001, "pool.supportxmr.com", "A",
            [("pool.supportxmr.com", "A", 300, SUPPORTXMR_IP)])
    mine = TcpSession(cap, MINER, 51001, SUPPORTXMR_IP, 3333, 5000, 700000)
    mine.handshake(t + 0.1)
    mine.send(t + 0.15, jline({"id": 1, "jsonrpc": "2.0", "method": "login", "params": {
        "login": WALLET, "pass": "x", "agent": XMRIG_AGENT, "algo": ["rx/0", "cn/r"]}}))
    mine.recv(t + 0.25, jline({"id": 1, "jsonrpc": "2.0", "error": None, "result": {
        "id": "6d1f3c0a", "job": {"blob": "0e0e" + "ab" * 74, "job_id": "j-0001",
                                  "target": "b88d0600", "algo": "rx/0", "height": 3312345,
                                  "seed_hash": "cd" * 32}, "status": "OK"}}))
    for i in range(6):
        ts = t + 10.0 + i * 12.0
        mine.send(ts, jline({"id": 2 + i, "jsonrpc": "2.0", "method": "submit", "params": {
            "id": "6d1f3c0a", "job_id": "j-0001", "nonce": "%08x" % (0x1000 + i * 77),
            "result": ("%02x" % (i * 17)) * 32}}))
        mine.recv(ts + 0.08, jline({"id": 2 + i, "jsonrpc": "2.0", "error": None,
                                    "result": {"status": "OK"}}))
    mine.send(t + 85.0, jline({"id": 20, "jsonrpc": "2.0", "method": "keepalived",
                               "params": {"id": "6d1f3c0a"}}))
    mine.recv(t + 85.1, jline({"id": 20, "jsonrpc": "2.0", "error": None,
                               "result": {"status": "KEEPALIVED"}}))

    # Lookup only: resolves a nanopool name and never connects.
    t = T0 + 9.0
    res.ask(t, LOOKUP_ONLY, 43001, 0x3001, "xmr-eu1.nanopool.org", "A",
            [("xmr-eu1.nanopool.org", "A", 600, NANOPOOL_IP)])

    # Blocked lookup: the resolver answers NXDOMAIN for a listed pool.
    t = T0 + 12.0
    res.ask(t, BLOCKED, 44001, 0x4001, "pool.minexmr.com", "A", [], rcode=3)
    res.ask(t + 5.0, BLOCKED, 44002, 0x4002, "pool.minexmr.com", "A", [], rcode=3)

    # Sinkholed lookup: answered 0.0.0.0 (a DNS firewall's block answer).
    t = T0 + 14.0
    res.ask(t, SINKHOLED, 45001, 0x4501, "gulf.moneroocean.stream", "A",
            [("gulf.moneroocean.stream", "A", 60, "0.0.0.0")])

    # Connection attempt: resolves a pool, SYNs to port 10128, never gets an answer.
    t = T0 + 20.0
    res.ask(t, ATTEMPT, 46001, 0x4601, "gulf.moneroocean.stream", "A",
            [("gulf.moneroocean.stream", "A", 60, MONEROOCEAN_IP)], forwarded=True)
    for i, delay in enumerate((0.1, 1.1, 3.1, 7.1)):
        cap.tcp(t + delay, ATTEMPT, 52001, MONEROOCEAN_IP, 10128, 9000, 0, SYN)

    # Connection over TLS: resolves hashvault and connects to 443 with its SNI; payload encrypted.
    t = T0 + 25.0
    res.ask(t, TLS_MINER, 47001, 0x4701, "pool.hashvault.pro", "A",
            [("pool.hashvault.pro", "A", 300, HASHVAULT_IP)])
    tls = TcpSession(cap, TLS_MINER, 53001, HASHVAULT_IP, 443, 12000, 450000)
    tls.handshake(t + 0.1)
    tls.send(t + 0.15, client_hello("pool.hashvault.pro", 4))
    tls.recv(t + 0.25, server_hello_blob(5))
    for i in range(4):
        tls.send(t + 5 + i * 10, opaque(180, 10 + i))
        tls.recv(t + 5.1 + i * 10, opaque(420, 20 + i))
    tls.close(t + 50.0)

    # Direct IP with Stratum: the supportxmr address, no lookup of its own, `mining.subscribe`.
    t = T0 + 30.0
    direct = TcpSession(cap, DIRECT_STRATUM, 54001, SUPPORTXMR_IP, 3333, 22000, 330000)
    direct.handshake(t)
    direct.send(t + 0.05, jline({"id": 1, "method": "mining.subscribe",
                                 "params": ["cpuminer/2.5.1"]}))
    direct.recv(t + 0.15, jline({"id": 1, "result": [[["mining.notify", "ae6812eb4cd7735a"]],
                                                     "08000002", 4], "error": None}))
    direct.send(t + 0.20, jline({"id": 2, "method": "mining.authorize",
                                 "params": ["worker1", "x"]}))
    direct.recv(t + 0.30, jline({"id": 2, "result": True, "error": None}))
    direct.recv(t + 0.35, jline({"id": None, "method": "mining.notify", "params": [
        "bf", "4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000",
        "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20020862062f503253482f04b8864e5008",
        "072f736c7573682f000000000100f2052a010000001976a914d23fcdf86f7e756a64a7a9688ef9903327048ed988ac00000000",
        [], "00000002", "1c2ac4af", "504e86b9", False]}))
    direct.close(t + 40.0)

    # Direct IP without readable Stratum: TLS without SNI straight to the pool address.
    t = T0 + 35.0
    dtls = TcpSession(cap, DIRECT_TLS, 55001, SUPPORTXMR_IP, 3333, 32000, 660000)
    dtls.handshake(t)
    dtls.send(t + 0.05, client_hello(None, 6))
    dtls.recv(t + 0.15, server_hello_blob(7))
    dtls.send(t + 2.0, opaque(240, 30))
    dtls.recv(t + 2.1, opaque(600, 31))
    dtls.close(t + 30.0)

    # Look-alike names: must not match `supportxmr.com` (label boundaries).
    t = T0 + 40.0
    res.ask(t, BENIGN_LOOKALIKE, 46101, 0x5001, "notsupportxmr.com", "A",
            [("notsupportxmr.com", "A", 300, LOOKALIKE_IP)])
    res.ask(t + 1.0, BENIGN_LOOKALIKE, 46102, 0x5002, "supportxmr.com.evil.example", "A",
            [("supportxmr.com.evil.example", "A", 300, EVIL_IP)])
    look = TcpSession(cap, BENIGN_LOOKALIKE, 56001, LOOKALIKE_IP, 443, 42000, 770000)
    look.handshake(t + 0.2)
    look.send(t + 0.25, client_hello("notsupportxmr.com", 8))
    look.recv(t + 0.35, server_hello_blob(9))
    look.close(t + 4.0)

    # More ordinary browsing later in the capture (cached answer from the resolver).
    t = T0 + 60.0
    res.ask(t, BENIGN_WEB, 41003, 0x1003, "www.example.com", "A",
            [("www.example.com", "CNAME", 240, "www.example.com.cdn.example.net"),
             ("www.example.com.cdn.example.net", "CNAME", 0, "edge7.cdn.example.net"),
             ("edge7.cdn.example.net", "A", 0, CDN_IP)], forwarded=False)
    web2 = TcpSession(cap, BENIGN_WEB, 50002, CDN_IP, 443, 2000, 910000)
    web2.handshake(t + 0.1)
    web2.send(t + 0.15, client_hello("www.example.com", 11))
    web2.recv(t + 0.25, server_hello_blob(12))
    web2.close(t + 2.0)

    # The miner's lookup repeats when its cache expires: same answer, same binding.
    res.ask(T0 + 95.0, MINER, 42002, 0x2002, "pool.supportxmr.com", "A",
            [("pool.supportxmr.com", "A", 300, SUPPORTXMR_IP)])
    return cap, res


EXPECTED = {
    "description": "Expected verdicts for tests/data/sample (see README.md). stage = strongest "
                   "stage poolwatch should report for the host, null = nothing reported.",
    "capture": "sample.pcap",
    "log": "sample-dnsmasq.log",
    "infrastructure": [RESOLVER, UPSTREAM],
    "hosts": [
        {"ip": MINER, "role": "miner", "pool_domain": "supportxmr.com", "stage": "stratum",
         "pool_ips": [SUPPORTXMR_IP], "dst_ports": [3333], "agent": XMRIG_AGENT,
         "stage_from_log_only": "lookup"},
        {"ip": LOOKUP_ONLY, "role": "lookup_only", "pool_domain": "nanopool.org",
         "stage": "lookup", "stage_from_log_only": "lookup"},
        {"ip": DIRECT_STRATUM, "role": "direct_ip_stratum", "pool_domain": "supportxmr.com",
         "stage": "stratum", "pool_ips": [SUPPORTXMR_IP], "dst_ports": [3333],
         "stage_from_log_only": None,
         "note": "no lookup of its own; the address is bound by the miner's lookup; Stratum "
                 "mining.subscribe on the wire makes it stratum (stronger than direct_ip)"},
        {"ip": DIRECT_TLS, "role": "direct_ip", "pool_domain": "supportxmr.com",
         "stage": "direct_ip", "pool_ips": [SUPPORTXMR_IP], "dst_ports": [3333],
         "stage_from_log_only": None},
        {"ip": BLOCKED, "role": "blocked_lookup", "pool_domain": "minexmr.com",
         "stage": "blocked_lookup", "stage_from_log_only": "blocked_lookup"},
        {"ip": SINKHOLED, "role": "blocked_lookup", "pool_domain": "moneroocean.stream",
         "stage": "blocked_lookup", "stage_from_log_only": "blocked_lookup"},
        {"ip": ATTEMPT, "role": "connection_attempt", "pool_domain": "moneroocean.stream",
         "stage": "connection_attempt", "pool_ips": [MONEROOCEAN_IP], "dst_ports": [10128],
         "stage_from_log_only": "lookup"},
        {"ip": TLS_MINER, "role": "connection", "pool_domain": "hashvault.pro",
         "stage": "connection", "pool_ips": [HASHVAULT_IP], "dst_ports": [443],
         "stage_from_log_only": "lookup"},
        {"ip": BENIGN_WEB, "role": "benign", "stage": None, "stage_from_log_only": None},
        {"ip": BENIGN_LOOKALIKE, "role": "benign_lookalike", "stage": None,
         "stage_from_log_only": None},
        {"ip": RESOLVER, "role": "resolver", "stage": None, "stage_from_log_only": None},
        {"ip": UPSTREAM, "role": "upstream_resolver", "stage": None, "stage_from_log_only": None},
    ],
}


def main():
    out = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else os.path.abspath(OUT_DIR)
    os.makedirs(out, exist_ok=True)
    cap, res = build()
    cap.write(os.path.join(out, "sample.pcap"))
    res.write_log(os.path.join(out, "sample-dnsmasq.log"))
    with open(os.path.join(out, "expected.json"), "w", encoding="ascii", newline="\n") as f:
        json.dump(EXPECTED, f, indent=2)
        f.write("\n")
    print("wrote %d packets, %d log lines to %s" % (len(cap.records), len(res.log) + 2, out))


if __name__ == "__main__":
    main()
