"""Reads while writing, for scripts/bench: what a user waits for while ingest runs.

    python3 bench/reads.py PORT SECONDS NODES

Loops for SECONDS over: a node log list (/nodes/logs of a random seeded peer), a dashboard
fleet refresh (only what changed since the last one, and every 12th time the whole fleet, with
the fields the dashboard shows), and a node page (its five requests, as static/app.js sends
them). Prints one JSON object: p50/p99 in ms of each, and the rows the service stored per
second over the same window (from /metrics).
"""
import json
import random
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

FIELDS = "peer_id,name,chain,version,implementation,authority,ip_addr,best_height,finalized_height,peers,txcount,last_message_at,connected"
port, seconds, nodes = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
base = f"http://127.0.0.1:{port}"


def get(path):
    t0 = time.perf_counter()
    with urllib.request.urlopen(base + path, timeout=30) as r:
        body = r.read()
        as_of = r.headers.get("x-as-of")
    assert body[:1] in (b"[", b"{"), body[:100]
    return (time.perf_counter() - t0) * 1000, as_of


def stored():
    text = urllib.request.urlopen(base + "/metrics").read().decode()
    return next(float(l.split()[1]) for l in text.splitlines() if l.startswith("tetcore_rows_stored_total "))


def peer():
    return "BenchPeer%05d" % random.randint(1, nodes)


samples = {"/nodes/logs": [], "dashboard fleet refresh": [], "dashboard fleet whole": [], "node page request": [], "node page (5 requests)": []}
as_of = None
rows0, t0 = stored(), time.time()
end = t0 + seconds
i = 0
while time.time() < end:
    ms, _ = get(f"/nodes/logs?peer_id={peer()}")
    samples["/nodes/logs"].append(ms)
    if as_of is None or i % 12 == 0:
        ms, as_of = get(f"/nodes?fields={FIELDS}")
        samples["dashboard fleet whole"].append(ms)
    else:
        since = datetime.fromisoformat(as_of.replace("Z", "+00:00")) - timedelta(seconds=5)
        ms, as_of = get(f"/nodes?fields={FIELDS}&since={urllib.parse.quote(since.isoformat())}")
        samples["dashboard fleet refresh"].append(ms)
    q = peer()
    now = datetime.now(timezone.utc)
    start = urllib.parse.quote((now - timedelta(hours=1)).isoformat())
    page = 0.0
    for path in (f"/nodes?peer_id={q}", f"/nodes/sessions?peer_id={q}&limit=20", f"/nodes/log_stats?peer_id={q}",
                 f"/nodes/logs?peer_id={q}&limit=50", f"/nodes/series?peer_id={q}&start_time={start}&end_time={urllib.parse.quote(now.isoformat())}&points=240"):
        ms, _ = get(path)
        samples["node page request"].append(ms)
        page += ms
    samples["node page (5 requests)"].append(page)
    i += 1
rows1, t1 = stored(), time.time()
out = {}
for kind, ms in samples.items():
    if not ms:
        continue
    ms.sort()
    out[kind] = {"requests": len(ms), "p50_ms": round(ms[len(ms) // 2], 1), "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1)}
out["ingest_rows_per_s"] = round((rows1 - rows0) / (t1 - t0))
print(json.dumps(out))
