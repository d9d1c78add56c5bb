#!/usr/bin/env python3
"""A small demo fleet for the network analytics: nodes of one chain that import blocks with
delays of their own, finalize two blocks behind, stall finality for a while, roll out a new
version and report their hardware, over real WebSockets (no library: the frames are written
here, masked, as a node's client writes them).

    python3 bench/demo.py ws://127.0.0.1:8080/ [seconds] [nodes]

Used for the README's screenshot of a chain's page; handy for trying the dashboard.
"""
import base64, json, os, random, socket, struct, sys, time
from datetime import datetime, timezone
from urllib.parse import urlparse

GENESIS = "0x91b171bb158e2d3848fa23a9f1c25182fb8e20313b2c1eb49219da7a70ce90c3"
BLOCK_S = 2.0


class Node:
    def __init__(self, url, i, version):
        u = urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {u.path or '/'} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1024)
        assert head.startswith(b"HTTP/1.1 101"), head
        self.i = i
        self.version = version

    def send(self, payload):
        ts = datetime.now(timezone.utc).isoformat()
        data = json.dumps({"id": 1, "payload": payload, "ts": ts}).encode()
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x82]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
        self.sock.sendall(head + mask + bytes(b ^ mask[j % 4] for j, b in enumerate(data)))

    def hello(self):
        self.send({
            "msg": "system.connected", "name": f"demo-{self.i:02}", "chain": "Demo Relay",
            "genesis_hash": GENESIS, "implementation": "Parity Polkadot", "version": self.version,
            "authority": self.i % 3 != 2, "config": "", "startup_time": str(int(time.time() * 1000)),
            "network_id": f"12D3KooWDemo{self.i:040}",
            "sysinfo": {"cpu": random.choice(["AMD EPYC 7B13", "Intel Xeon Gold 6338"]),
                        "memory": random.choice([32, 64, 128]) * 2**30,
                        "core_count": random.choice([4, 8, 16]), "linux_kernel": "6.1.0-18-amd64",
                        "linux_distro": "Debian GNU/Linux 12 (bookworm)", "is_virtual_machine": self.i % 4 == 0},
        })
        self.send({"msg": "sysinfo.hwbench", "cpu_hashrate_score": random.randint(650, 1600),
                   "parallel_cpu_hashrate_score": random.randint(800, 1500), "parallel_cpu_cores": 8,
                   "memory_memcpy_score": random.randint(9000, 25000),
                   "disk_sequential_write_score": random.randint(700, 2500),
                   "disk_random_write_score": random.randint(300, 900)})


def main():
    url = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 180
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 12
    nodes = [Node(url, i, "1.14.0-7e4f1a2c1b") for i in range(count)]
    for n in nodes:
        n.hello()
        n.send({"msg": "afg.authority_set", "authority_id": "Alice", "authority_set_id": "41",
                "authorities": json.dumps([f"validator-{k}" for k in range(5)])})
    # Each node's own typical delay behind the first, in seconds.
    lag = {n.i: random.uniform(0.02, 0.4) for n in nodes}
    start, height, finalized = time.time(), 1, 0
    stall = (seconds * 0.4, seconds * 0.4 + 75)
    upgraded = set()
    while time.time() - start < seconds:
        t = time.time() - start
        # Halfway through, two thirds of the fleet upgrade: a new connection each.
        if t > seconds * 0.5 and not upgraded:
            for k, n in enumerate(nodes):
                if k % 3 != 0:
                    n.sock.close()
                    nodes[k] = Node(url, n.i, "1.15.0-0c9b8a3f2d")
                    nodes[k].hello()
                    upgraded.add(n.i)
        best = f"0x{height:064x}"
        for n in sorted(nodes, key=lambda n: lag[n.i] * random.uniform(0.5, 1.8)):
            n.send({"msg": "block.import", "height": height, "best": best, "origin": "NetworkInitialSync"})
            time.sleep(min(0.05, lag[n.i] / count))
        stalled = stall[0] <= t < stall[1]
        if not stalled and height > 2:
            finalized = height - 2
            for n in nodes:
                n.send({"msg": "notify.finalized", "height": str(finalized), "best": f"0x{finalized:064x}"})
        for n in nodes:
            n.send({"msg": "system.interval", "height": height, "best": best, "finalized_height": finalized,
                    "finalized_hash": f"0x{finalized:064x}", "txcount": random.randint(0, 40),
                    "used_state_cache_size": 1 << 20})
            n.send({"msg": "system.interval", "peers": random.randint(20, 40),
                    "bandwidth_download": 20480, "bandwidth_upload": 10240})
        if stalled:
            for voter in ("validator-0", "validator-1", "validator-3"):
                nodes[0].send({"msg": "afg.received_prevote", "voter": voter,
                               "target_number": str(finalized + 1), "target_hash": f"0x{finalized + 1:064x}"})
        height += 1
        time.sleep(max(0.0, start + height * BLOCK_S - time.time()))
    print(json.dumps({"blocks": height - 1, "nodes": count, "stall_s": [stall[0], stall[1]]}))


if __name__ == "__main__":
    main()
