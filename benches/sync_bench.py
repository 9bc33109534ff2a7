#!/usr/bin/env python3
"""Cloud-sync throughput between two imgvault processes on loopback (stdlib only).

Starts a hub and a local server (`--cloud-url` pointing at the hub) on fresh temporary data files,
registers and logs in one user on the local server (which mirrors the account on the hub), uploads
N byte-distinct images of about SIZE KB, then times one full sync from `POST /api/cloud/sync` to
its task's `completed`. Then uploads one more image and syncs again, reporting what crossed.

    cargo build --release
    python3 benches/sync_bench.py target/release/imgvault [images=1000] [size_kb=250]
"""
import json, os, struct, subprocess, sys, tempfile, time, urllib.request, zlib
from concurrent.futures import ThreadPoolExecutor
from http.cookiejar import CookieJar


def png(size_kb):
    """Random RGB pixels do not compress, so the file is about the requested size."""
    side = int((size_kb * 1024 / 3) ** 0.5)
    rnd = os.urandom(side * side * 3)
    raw = b"".join(b"\x00" + rnd[y * side * 3:(y + 1) * side * 3] for y in range(side))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


def start(binary, data, *args):
    proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--data", data, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "IMGVAULT_ADMIN_PASSWORD": "bench-admin"})
    for line in proc.stdout:
        if "listening on http://" in line:
            return proc, line.split("listening on ")[1].strip()
    raise SystemExit("server exited before listening")


def vm_hwm_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Client:
    def __init__(self, base):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with self.opener.open(req, timeout=600) as r:
            return json.load(r)


def sync(client):
    started = time.perf_counter()
    answer = client.call("POST", "/api/cloud/sync", {})
    assert answer.get("success"), answer
    task = answer["taskId"]
    deadline = started + 1800
    while True:
        status = client.call("GET", f"/api/task/{task}")["status"]
        if status["status"] != "processing":
            break
        assert time.perf_counter() < deadline, "sync did not finish in 30 minutes"
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    assert status["status"] == "completed", status
    return elapsed, status["progress"]


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/imgvault"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    size_kb = int(sys.argv[3]) if len(sys.argv) > 3 else 250
    with tempfile.TemporaryDirectory() as tmp:
        hub, hub_url = start(binary, os.path.join(tmp, "hub.redb"))
        local, local_url = start(binary, os.path.join(tmp, "local.redb"), "--cloud-url", hub_url + "/api")
        try:
            c = Client(local_url)
            c.call("POST", "/api/register", {"username": "bench", "email": "bench@x.org", "password": "password123"})
            assert c.call("POST", "/api/login", {"username": "bench", "password": "password123"})["success"]
            images = [png(size_kb) for _ in range(n)]
            payload = sum(len(i) for i in images)

            def upload(img):
                body = {"imageData": "data:image/png;base64," + __import__("base64").b64encode(img).decode(),
                        "category": "clothes"}
                assert c.call("POST", "/api/receive-image", body)["success"]

            t = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(upload, images))
            print(f"uploaded {n} images ({payload / 1e6:.1f} MB) in {time.perf_counter() - t:.1f} s")

            elapsed, p = sync(c)
            print(f"sync of {n} images: {elapsed:.2f} s, {n / elapsed:.0f} images/s, "
                  f"{payload / elapsed / 1e6:.1f} MB/s of images, {p['bytes_sent'] / elapsed / 1e6:.1f} MB/s on the wire, "
                  f"{p['batches']} batches, {p['files_sent']} files, {p['bytes_sent'] / 1e6:.1f} MB sent")

            one = png(size_kb)
            upload(one)
            elapsed2, p2 = sync(c)
            print(f"second sync after one new image ({len(one) / 1e3:.0f} KB): {elapsed2 * 1000:.0f} ms, "
                  f"{p2['files_sent']} file, {p2['bytes_sent']} bytes sent, {p2['synced_images']} image synced")
            print(f"peak RSS: local {vm_hwm_mib(local.pid):.0f} MiB, hub {vm_hwm_mib(hub.pid):.0f} MiB")
        finally:
            for proc in (local, hub):
                proc.terminate()
                proc.wait(timeout=30)


if __name__ == "__main__":
    main()
