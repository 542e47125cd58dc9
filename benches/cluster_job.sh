#!/usr/bin/env bash
# The cluster against the single box, same machine, same run (docs/cluster.md, "Measured"):
#
# 1. Throughput: the same pcap through `serve --import` (single box) and through
#    sensor → nats-server (JetStream, file store) → one correlator; observations per second
#    from process start until the last observation is processed (single box: its pipeline's
#    `poolwatch_correlate_observations_total` stops growing; cluster: the correlator consumed
#    everything the sensor published). Median of N runs each, and the ratio.
# 2. Latency at a paced rate: a BIND query log (millisecond timestamps, written with the wall
#    clock) grows at RATE lines/s; every second one line is a pool lookup by a new client. The
#    latency of each is the time from its log timestamp to its detection being visible in
#    `GET /api/v1/detections` (polled every 50 ms) of the single box, resp. the cluster's API
#    node (sensor --follow → NATS → correlator → POOLWATCH_DETECTIONS → API node).
#
#   python3 ../shared/bench/gen/dnsgen.py --preset small --out /tmp/small
#   cargo build --release
#   benches/cluster_job.sh /tmp/small [N=3] [BIN=target/release/poolwatch]
#
# Env: RATE (lines/s, default 200), SECONDS_PACED (default 40), NATS (nats-server binary).
set -euo pipefail
D=${1:?usage: cluster_job.sh WORKLOAD_DIR [N] [BIN]}
N=${2:-3}
BIN=${3:-target/release/poolwatch}
export RATE=${RATE:-200} SECONDS_PACED=${SECONDS_PACED:-40} NATS=${NATS:-nats-server}
echo "# $D, N=$N, $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
exec python3 - "$D" "$N" "$BIN" <<'PY'
import json, os, re, socket, statistics, subprocess, sys, tempfile, threading, time, urllib.request

D, N, BIN = sys.argv[1], int(sys.argv[2]), os.path.abspath(sys.argv[3])
RATE, PACED, NATS = int(os.environ["RATE"]), int(os.environ["SECONDS_PACED"]), os.environ["NATS"]
PCAP, BL = os.path.join(D, "traffic.pcap"), os.path.join(D, "blocklist.txt")

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

class Proc:
    def __init__(self, args, name):
        env = {k: v for k, v in os.environ.items() if not k.startswith("POOLWATCH_")}
        env.update(POOLWATCH_LOG="warn", NO_COLOR="1")
        self.p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env=env, text=True)
        self.base, self.name = None, name
        t0 = time.time()
        for line in self.p.stderr:
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                self.base = m.group(1); break
            if time.time() - t0 > 60: break
        if not self.base:
            raise SystemExit(f"{name} did not start")
        threading.Thread(target=lambda: [None for _ in self.p.stderr], daemon=True).start()
    def metric(self, name):
        try:
            text = urllib.request.urlopen(self.base + "/metrics", timeout=10).read().decode()
        except Exception:
            return None
        return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                   if l.startswith(name + " ") or l.startswith(name + "{"))
    def get(self, path):
        return json.load(urllib.request.urlopen(self.base + path, timeout=10))
    def stop(self):
        self.p.terminate()
        try: self.p.wait(30)
        except subprocess.TimeoutExpired: self.p.kill(); self.p.wait()

class Nats:
    def __init__(self):
        self.dir = tempfile.mkdtemp(); self.port = free_port()
        self.p = subprocess.Popen([NATS, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.dir],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):
            try: socket.create_connection(("127.0.0.1", self.port), 0.2).close(); break
            except OSError: time.sleep(0.05)
        self.url = f"nats://127.0.0.1:{self.port}"
    def stop(self):
        self.p.kill(); self.p.wait()

def serve(tmp, name, extra):
    return Proc([BIN, "serve", "--listen", "127.0.0.1:0", "--db", os.path.join(tmp, name),
                 "--blocklist", BL] + extra, name)

def node(tmp, url, role, name, extra):
    return serve(tmp, name, ["--cluster", url, "--role", role, "--node", name] + extra)

def until_stable(f, quiet=3.0, limit=900):
    """Polls f() every 100 ms; returns (final value, time it was first reached)."""
    t0, last, since, first_at = time.time(), None, time.time(), time.time()
    while time.time() - t0 < limit:
        v = f()
        if v is not None and v != last:
            last, since, first_at = v, time.time(), time.time()
        elif last and time.time() - since >= quiet:
            return last, first_at
        time.sleep(0.1)
    raise SystemExit("never settled")

def until_reached(f, target, limit=900):
    """Polls f() every 100 ms until it reaches target; returns (value, time it got there)."""
    t0, v = time.time(), None
    while time.time() - t0 < limit:
        v = f()
        if v is not None and v >= target:
            return v, time.time()
        time.sleep(0.1)
    return v or 0, time.time()

def single_throughput():
    tmp = tempfile.mkdtemp(); t0 = time.time()
    s = serve(tmp, "single", ["--import", PCAP])
    n, at = until_stable(lambda: s.metric("poolwatch_correlate_observations_total"))
    s.stop(); return n, at - t0

def cluster_throughput(n_obs):
    tmp = tempfile.mkdtemp(); nats = Nats()
    c = node(tmp, nats.url, "correlator", "c1", [])
    while c.metric("poolwatch_cluster_partitions_owned") != 16: time.sleep(0.1)
    t0 = time.time()
    s = node(tmp, nats.url, "sensor", "s1", ["--import", PCAP])
    # Timed like the single box: when the correlator's count first reached its final value
    # (not when the quiet period that proves it final ended).
    published, _ = until_stable(lambda: s.metric("poolwatch_cluster_published_total"))
    # Not "until quiet": the correlator pauses consuming while an ack cycle flushes and
    # publishes (seconds on a loaded box), so wait until it has consumed what was published.
    consumed, at = until_reached(lambda: c.metric("poolwatch_cluster_consumed_total"), published)
    if consumed < published:
        raise SystemExit(f"the correlator consumed {consumed} of {published} within 900 s")
    took = at - t0
    s.stop(); c.stop(); nats.stop()
    return published, took

def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

def poll_seen(api, sent, seen, stop):
    while not stop.is_set():
        try:
            for d in api.get("/api/v1/detections?limit=1000")["items"]:
                c = d.get("client_ip")
                if c in sent and c not in seen: seen[c] = time.time()
        except Exception:
            pass
        time.sleep(0.05)

def paced_run(api, log_path):
    sent, seen, stop = {}, {}, threading.Event()
    th = threading.Thread(target=poll_seen, args=(api, sent, seen, stop), daemon=True); th.start()
    f = open(log_path, "a"); t0 = time.time(); i = 0
    while time.time() - t0 < PACED:
        now = time.time()
        stamp = time.strftime("%d-%b-%Y %H:%M:%S", time.gmtime(now)) + ".%03d" % int(now * 1000 % 1000)
        if i % RATE == 0:
            k = len(sent); client = f"10.77.{k // 250}.{k % 250 + 1}"; name = "pool.supportxmr.com"
            sent[client] = int(now * 1000) / 1000
        else:
            client = f"10.66.{(i // 250) % 250}.{i % 250 + 1}"; name = f"www.benign{i % 997}.example"
        f.write(f"{stamp} queries: info: client @0x7f0000000001 {client}#5353 ({name}): query: {name} IN A +E(0)K (10.0.0.53)\n")
        f.flush(); i += 1
        time.sleep(max(0, t0 + i / RATE - time.time()))
    f.close()
    deadline = time.time() + 60
    while len(seen) < len(sent) and time.time() < deadline: time.sleep(0.1)
    stop.set(); th.join()
    lat = [seen[c] - sent[c] for c in seen]
    return lat, len(sent)

def latency_single():
    tmp = tempfile.mkdtemp(); log = os.path.join(tmp, "query.log"); open(log, "w").close()
    s = serve(tmp, "single", ["--follow", log]); time.sleep(2)
    r = paced_run(s, log); s.stop(); return r

def latency_cluster():
    tmp = tempfile.mkdtemp(); log = os.path.join(tmp, "query.log"); open(log, "w").close()
    nats = Nats()
    c = node(tmp, nats.url, "correlator", "c1", [])
    a = node(tmp, nats.url, "api", "a1", [])
    while c.metric("poolwatch_cluster_partitions_owned") != 16: time.sleep(0.1)
    s = node(tmp, nats.url, "sensor", "s1", ["--follow", log]); time.sleep(2)
    r = paced_run(a, log)
    for p in (s, c, a): p.stop()
    nats.stop(); return r

single, cluster = [], []
for run in range(N):
    n, t = single_throughput(); single.append((n, t))
    print(f"run {run + 1}: single box {n:.0f} observations in {t:.2f} s", flush=True)
    pub, tc = cluster_throughput(n); cluster.append((n, tc))
    print(f"run {run + 1}: cluster {pub:.0f} messages (observations + context copies) in {tc:.2f} s", flush=True)
rs = statistics.median(n / t for n, t in single)
rc = statistics.median(n / t for n, t in cluster)
print(f"throughput: single box {rs:.0f} obs/s, cluster (1 sensor, 1 correlator) {rc:.0f} obs/s, "
      f"ratio cluster/single {rc / rs:.2f} (medians of {N})")
for label, f in (("single box", latency_single), ("cluster", latency_cluster)):
    lat, sent = f()
    if lat:
        print(f"latency {label}: {len(lat)}/{sent} detections at {RATE} lines/s, "
              f"p50 {pct(lat, 50):.2f} s, p99 {pct(lat, 99):.2f} s, max {max(lat):.2f} s")
    else:
        print(f"latency {label}: no detection of {sent} seen")
print(f"# done {time.strftime('%FT%TZ', time.gmtime())}, load {open('/proc/loadavg').read().split()[:3]}")
PY
