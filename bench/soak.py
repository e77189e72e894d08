#!/usr/bin/env python3
"""soak.py — soak `gtr serve` with legitimate load and, in the middle third, an attack (called by
bench/bench_soak.sh; loopback only, bounded in time). Prints one JSON object.

Phases of SECONDS/3 each: calm (legitimate clients only), attack (the same clients while other
loopback addresses hold slow connections that trickle a byte now and then, send malformed
requests, and post bodies at --max-body), recovery (legitimate clients only). Legitimate clients
keep one keep-alive connection each and post /v1/embeddings with 8 SciFact queries; a prober
times GET /health every 0.25 s on a new connection. The server's RSS is sampled every 0.5 s.

  soak.py GTR MODEL TEXTS SECONDS CLIENTS [gtr serve options...]
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


def pct(v, p):
    if not v:
        return 0.0
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100.0 * len(v)))]


def main():
    gtr, model, texts_path, seconds, clients = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
    extra = sys.argv[6:]
    texts = [json.loads(line) for line in open(texts_path, encoding="utf-8")]
    tmp = tempfile.mkdtemp(prefix="gtr-soak-")
    pf = os.path.join(tmp, "port")
    p = subprocess.Popen([gtr, "serve", "-m", model, "--port", "0", "--port-file", pf, "-q"] + extra,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (os.path.exists(pf) and os.path.getsize(pf)):
        if p.poll() is not None:
            raise SystemExit("gtr serve did not start")
        time.sleep(0.05)
    port = int(open(pf).read())
    phase_len = seconds / 3
    t_start = time.time()

    def phase():
        return min(2, int((time.time() - t_start) / phase_len))

    stop = threading.Event()
    lock = threading.Lock()
    stats = [{"requests": 0, "failed": 0, "lat": [], "health": [], "health_failed": 0, "statuses": {}} for _ in range(3)]

    def record(ph, ok, lat, status):
        with lock:
            s = stats[ph]
            s["requests"] += 1
            s["failed"] += 0 if ok else 1
            if ok:
                s["lat"].append(lat)
            s["statuses"][str(status)] = s["statuses"].get(str(status), 0) + 1

    def legit(i):
        conn = None
        k = i * 8
        while not stop.is_set():
            body = json.dumps({"input": [texts[(k + j) % len(texts)] for j in range(8)], "encoding_format": "base64"})
            k += 8
            ph = phase()
            t0 = time.time()
            status = 0
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                status = r.status
                ok = status == 200 and len(json.loads(data)["data"]) == 8
            except (OSError, http.client.HTTPException, ValueError):
                ok = False
                if conn:
                    conn.close()
                conn = None
            record(ph, ok, time.time() - t0, status)
        if conn:
            conn.close()

    def prober():
        while not stop.is_set():
            ph = phase()
            t0 = time.time()
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                c.request("GET", "/health")
                r = c.getresponse()
                r.read()
                ok = r.status == 200
                c.close()
            except (OSError, http.client.HTTPException):
                ok = False
            with lock:
                stats[ph]["health"].append(time.time() - t0)
                stats[ph]["health_failed"] += 0 if ok else 1
            stop.wait(0.25)

    attack = {"slow": 0, "malformed": 0, "oversized": 0, "answers": {}}

    def slowloris(src):
        conns = []
        while not stop.is_set():
            if phase() != 1:
                for c in conns:
                    c.close()
                conns = []
                stop.wait(0.2)
                continue
            while len(conns) < 40:
                try:
                    s = socket.socket()
                    s.bind((src, 0))
                    s.settimeout(2)
                    s.connect(("127.0.0.1", port))
                    s.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\n")
                    conns.append(s)
                    with lock:
                        attack["slow"] += 1
                except OSError:
                    break
            for c in list(conns):
                try:
                    c.sendall(b"X")
                except OSError:
                    conns.remove(c)
                    c.close()
            stop.wait(1.0)
        for c in conns:
            c.close()

    junk = [b"GET / HTTP/9.9\r\n\r\n", b"POST /v1/embeddings HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
            b"POST /v1/embeddings HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"\x00\x01\x02garbage\r\n\r\n",
            b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n"]

    def spammer(src, big):
        n = 0
        while not stop.is_set():
            if phase() != 1:
                stop.wait(0.2)
                continue
            try:
                s = socket.socket()
                s.bind((src, 0))
                s.settimeout(5)
                s.connect(("127.0.0.1", port))
                if big:
                    body = b'{"input": "' + b"word " * (big // 5) + b'"}'
                    s.sendall(b"POST /v1/embeddings HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                              % len(body) + body)
                else:
                    s.sendall(junk[n % len(junk)])
                n += 1
                data = s.recv(200)
                code = data.split(b" ")[1].decode() if data.startswith(b"HTTP/1.1 ") else "none"
                s.close()
                with lock:
                    attack["oversized" if big else "malformed"] += 1
                    attack["answers"][code] = attack["answers"].get(code, 0) + 1
            except OSError:
                with lock:
                    attack["answers"]["error"] = attack["answers"].get("error", 0) + 1
            stop.wait(0.05)

    rss = []

    def sampler():
        while not stop.is_set():
            try:
                for ln in open("/proc/%d/status" % p.pid):
                    if ln.startswith("VmRSS:"):
                        rss.append((round(time.time() - t_start, 1), int(ln.split()[1]) // 1024))
            except OSError:
                pass
            stop.wait(0.5)

    threads = [threading.Thread(target=legit, args=(i,)) for i in range(clients)]
    threads += [threading.Thread(target=prober), threading.Thread(target=sampler)]
    threads += [threading.Thread(target=slowloris, args=("127.0.0.%d" % (20 + i),)) for i in range(5)]
    threads += [threading.Thread(target=spammer, args=("127.0.0.30", 0)),
                threading.Thread(target=spammer, args=("127.0.0.31", 4 << 20))]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    rc = p.wait(60)
    exit_s = time.time() - t0
    names = ["calm", "attack", "recovery"]
    out = {"seconds": seconds, "clients": clients, "exit": rc, "exit_s": round(exit_s, 2), "attack": attack,
           "rss_mib": rss, "phases": {}}
    for i, s in enumerate(stats):
        span = phase_len
        out["phases"][names[i]] = {
            "requests": s["requests"], "failed": s["failed"], "statuses": s["statuses"],
            "requests_per_s": round(s["requests"] / span, 1),
            "p50_ms": round(1e3 * pct(s["lat"], 50), 1), "p99_ms": round(1e3 * pct(s["lat"], 99), 1),
            "health_probes": len(s["health"]), "health_failed": s["health_failed"],
            "health_p50_ms": round(1e3 * pct(s["health"], 50), 1), "health_max_ms": round(1e3 * max(s["health"] or [0]), 1),
            "rss_min_mib": min([r for t, r in rss if i * span <= t < (i + 1) * span] or [0]),
            "rss_max_mib": max([r for t, r in rss if i * span <= t < (i + 1) * span] or [0]),
        }
    print(json.dumps(out))
    subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
