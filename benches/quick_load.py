#!/usr/bin/env python3
"""Quick load check of a running imgvault (stdlib only): ingest of ~250 KB images posted as base64 JSON
to /api/receive-image with C concurrent clients, then /api/user/images latency once admin owns N images.

    IMGVAULT_ADMIN_PASSWORD=pw imgvault serve --listen 127.0.0.1:18090 --data /tmp/q.redb &
    python3 benches/quick_load.py http://127.0.0.1:18090 pw [images=200] [concurrency=8] [list_at=10000]
"""
import base64, json, os, struct, sys, time, urllib.request, zlib
from concurrent.futures import ThreadPoolExecutor
from http.cookiejar import CookieJar

def png(w, h, seed):
    rnd = os.urandom(w * h * 3)
    raw = b"".join(b"\x00" + rnd[y * w * 3:(y + 1) * w * 3] for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))

def post(base, body):
    req = urllib.request.Request(base + "/api/receive-image", data=body, headers={"Content-Type": "application/json"})
    t = time.perf_counter()
    with urllib.request.urlopen(req) as r:
        assert json.load(r)["success"]
    return time.perf_counter() - t

def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(len(xs) * p))]

def main():
    base, pw = sys.argv[1], sys.argv[2]
    n, c, list_at = (int(a) for a in (sys.argv[3:] + ["200", "8", "10000"][len(sys.argv) - 3:])[:3])
    bodies = [json.dumps({"imageData": "data:image/png;base64," + base64.b64encode(png(290, 290, i)).decode()}).encode()
              for i in range(n)]
    size = sum(len(b) for b in bodies) / n * 3 / 4
    t = time.perf_counter()
    with ThreadPoolExecutor(c) as ex:
        lat = list(ex.map(lambda b: post(base, b), bodies))
    dt = time.perf_counter() - t
    print(f"ingest: {n} images of ~{size/1024:.0f} KiB, c={c}: {n/dt:.0f} img/s, p50 {pct(lat,.5)*1000:.1f} ms, p99 {pct(lat,.99)*1000:.1f} ms")
    small = [json.dumps({"imageData": base64.b64encode(png(4, 4, i)).decode()}).encode() for i in range(max(0, list_at - n))]
    t = time.perf_counter()
    with ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda b: post(base, b), small))
    print(f"filled to {list_at} images in {time.perf_counter()-t:.1f} s")
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    opener.open(urllib.request.Request(base + "/api/login", data=json.dumps({"username": "admin", "password": pw}).encode()))
    pages = (list_at + 19) // 20
    for page in (1, pages // 2, pages):
        lat = []
        for _ in range(200):
            t = time.perf_counter()
            with opener.open(f"{base}/api/user/images?page={page}&per_page=20") as r:
                body = json.load(r)
            lat.append(time.perf_counter() - t)
        assert body["total"] == list_at, body["total"]
        print(f"list page {page}/{pages} (20 per page, {list_at} images): p50 {pct(lat,.5)*1000:.2f} ms, p99 {pct(lat,.99)*1000:.2f} ms")

main()
