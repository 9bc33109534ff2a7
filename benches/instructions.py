#!/usr/bin/env python3
"""CPU instructions per request of one or more imgvault binaries, counted by valgrind's callgrind.

This VM's wall-clock figures move by 10-30% from one run to the next, so a hot-path change of a
few per cent cannot be seen in them. Instruction counts can: they are the same from run to run
for the same binary and inputs, whatever else the machine does. They count user space only (not
the kernel's share of a request) and say nothing about waiting, so they complement
`../shared/peers/compare.sh`, they do not replace it.

    python3 benches/instructions.py OLD_BINARY NEW_BINARY [--requests 2000] [--uploads 100]

Each binary runs under callgrind with instrumentation off, on a fresh data file; it gets 300
anonymous PNG uploads, then, per phase, a warm-up, and the counted requests on one keep-alive
connection (uploads: 8 at once, each waited for until its thumbnail is made). Prints instructions
per request per phase and binary, and the change from the first binary. Needs valgrind.
"""
import argparse, base64, json, os, random, shutil, socket, struct, subprocess, sys, tempfile, time, zlib
import http.client, urllib.request
from concurrent.futures import ThreadPoolExecutor

PASSWORD = "instructions-bench-pw"


def png(w, h, seed):
    """A noise PNG, the same for the same seed (so every binary gets the same uploads)."""
    rnd = random.Random(seed).randbytes(w * h * 3)
    raw = b"".join(b"\x00" + rnd[y * w * 3:(y + 1) * w * 3] for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


def upload_body(i):
    data = base64.b64encode(png(160, 120, i)).decode()
    return json.dumps({"imageData": "data:image/png;base64," + data, "category": "clothes",
                       "pageInfo": {"url": f"https://example.com/p/{i}", "title": f"page {i}"}}).encode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, tmp):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.out = os.path.join(tmp, "callgrind.out")
        env = dict(os.environ, IMGVAULT_ADMIN_PASSWORD=PASSWORD,
                   IMGVAULT_ANONYMOUS_IMAGES_PER_MINUTE="100000000",
                   IMGVAULT_ANONYMOUS_MB_PER_MINUTE="100000000")
        self.log = open(os.path.join(tmp, "server.log"), "wb")
        self.proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={self.out}",
             binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data", os.path.join(tmp, "v.redb")],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(self.base + "/api/status", timeout=5).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"{binary} did not start; see {self.log.name}")
                time.sleep(0.2)

    def control(self, *args):
        subprocess.run(["callgrind_control", *args, str(self.proc.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def count(self, run):
        """Instructions executed by the server while `run()` runs."""
        self.control("-i", "on")
        self.control("-z")
        before = set(os.listdir(os.path.dirname(self.out)))
        run()
        self.control("-d")
        self.control("-i", "off")
        dumps = [f for f in os.listdir(os.path.dirname(self.out)) if f not in before and f.startswith("callgrind.out")]
        total = 0
        for name in dumps:
            with open(os.path.join(os.path.dirname(self.out), name)) as f:
                for line in f:
                    if line.startswith("summary:"):
                        total += int(line.split()[1])
        return total

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


def post(base, body, headers=None):
    req = urllib.request.Request(base + "/api/receive-image", data=body,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req) as r:
        return json.load(r)["taskId"]


def wait_task(base, task):
    while True:
        with urllib.request.urlopen(base + "/api/task/" + task) as r:
            if json.load(r)["status"]["status"] != "processing":
                return
        time.sleep(0.02)


def login(base):
    req = urllib.request.Request(base + "/api/login", data=json.dumps(
        {"username": "admin", "password": PASSWORD}).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return r.headers["Set-Cookie"].split(";")[0]


def gets(base, paths, n, cookie):
    host, port = base.split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port))
    headers = {"Cookie": cookie} if cookie else {}
    for i in range(n):
        conn.request("GET", paths[i % len(paths)], headers=headers)
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise SystemExit(f"GET {paths[i % len(paths)]}: {r.status}")
    conn.close()


def uploads(base, bodies):
    with ThreadPoolExecutor(8) as ex:
        for task in list(ex.map(lambda b: post(base, b), bodies)):
            wait_task(base, task)


def measure(binary, requests, n_uploads):
    tmp = tempfile.mkdtemp(prefix="imgvault-instructions.")
    server = Server(binary, tmp)
    try:
        base = server.base
        uploads(base, [upload_body(i) for i in range(300)])
        cookie = login(base)
        pages = [f"/api/user/images?page={p}&per_page=20" for p in range(1, 16)]
        files = []
        for page in pages:
            with urllib.request.urlopen(urllib.request.Request(base + page, headers={"Cookie": cookie})) as r:
                files += [im["preview_url"] for im in json.load(r)["images"]]
        phases = {
            "status": lambda n: gets(base, ["/api/status"], n, None),
            "list (page of 20)": lambda n: gets(base, pages, n, cookie),
            "fetch (original)": lambda n: gets(base, files, n, cookie),
        }
        result = {}
        for name, run in phases.items():
            run(200)
            result[name] = server.count(lambda: run(requests)) / requests
        bodies = [upload_body(1000 + i) for i in range(n_uploads)]
        result["upload + thumbnail"] = server.count(lambda: uploads(base, bodies)) / n_uploads
        return result
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--requests", type=int, default=2000, help="counted requests per read phase")
    ap.add_argument("--uploads", type=int, default=100, help="counted uploads")
    a = ap.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is needed (apt-get install valgrind)")
    results = []
    for binary in a.binaries:
        print(f"# {binary}", file=sys.stderr, flush=True)
        results.append(measure(binary, a.requests, a.uploads))
    head = "| phase | " + " | ".join(os.path.relpath(b) for b in a.binaries) + " |"
    print(head)
    print("|---|" + "---:|" * len(a.binaries))
    for phase in results[0]:
        cells = []
        for r in results:
            cell = f"{r[phase]:,.0f}"
            if r is not results[0]:
                cell += f" ({(r[phase] / results[0][phase] - 1) * 100:+.1f}%)"
            cells.append(cell)
        print(f"| {phase} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
