"""Readers for scripts/bench: dashboards and curl users polling /nodes while the fleet streams.

    python3 bench/readers.py PORT SECONDS [DASHBOARDS] [CURL_USERS] [INTERVAL_S]

A dashboard does what static/app.js does: the fleet whole (the fields it shows) once a minute,
and every INTERVAL_S only what changed since the last answer's x-as-of, less 5 s. A curl user
fetches the whole /nodes every INTERVAL_S. Prints one JSON object: per kind of request, how
many, bytes per answer, and latency p50/p99 in ms.
"""
import json
import sys
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta

FIELDS = "peer_id,name,chain,version,implementation,authority,ip_addr,best_height,finalized_height,peers,txcount,last_message_at,connected"
port, seconds = sys.argv[1], float(sys.argv[2])
dashboards = int(sys.argv[3]) if len(sys.argv) > 3 else 3
curl_users = int(sys.argv[4]) if len(sys.argv) > 4 else 2
interval = float(sys.argv[5]) if len(sys.argv) > 5 else 5.0
base = f"http://127.0.0.1:{port}"
end = time.time() + seconds
samples = {}
lock = threading.Lock()


def get(kind, path):
    t0 = time.perf_counter()
    with urllib.request.urlopen(base + path, timeout=30) as r:
        body = r.read()
        as_of = r.headers.get("x-as-of")
    ms = (time.perf_counter() - t0) * 1000
    with lock:
        samples.setdefault(kind, []).append((ms, len(body)))
    return as_of


def dashboard(offset):
    time.sleep(offset)
    as_of, whole_at = None, 0.0
    while time.time() < end:
        started = time.time()
        if as_of is None or started - whole_at > 60:
            as_of = get("dashboard whole", f"/nodes?fields={FIELDS}")
            whole_at = started
        else:
            since = datetime.fromisoformat(as_of.replace("Z", "+00:00")) - timedelta(seconds=5)
            q = urllib.parse.quote(since.isoformat())
            as_of = get("dashboard since", f"/nodes?fields={FIELDS}&since={q}")
        time.sleep(max(0.0, interval - (time.time() - started)))


def curl_user(offset):
    time.sleep(offset)
    while time.time() < end:
        started = time.time()
        get("curl /nodes", "/nodes")
        time.sleep(max(0.0, interval - (time.time() - started)))


threads = [threading.Thread(target=dashboard, args=(i * interval / max(1, dashboards),)) for i in range(dashboards)]
threads += [threading.Thread(target=curl_user, args=(i * interval / max(1, curl_users) + 0.3,)) for i in range(curl_users)]
for t in threads:
    t.start()
for t in threads:
    t.join()
out = {}
for kind, rows in samples.items():
    ms = sorted(r[0] for r in rows)
    out[kind] = {
        "requests": len(rows),
        "bytes_per_answer": round(sum(r[1] for r in rows) / len(rows)),
        "p50_ms": round(ms[len(ms) // 2], 1),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1),
    }
print(json.dumps(out))
