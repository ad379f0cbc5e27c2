#!/usr/bin/env python3
"""Hello-world latency: coderun's POST /execute next to the bare runtime, interleaved in one run.

Usage: scripts/bench.py [--runs N] [--url URL] [--binary PATH]
Without --url it starts `coderun serve` itself (release build if present) on a free port.
Each round runs every case once, in turn, so coderun and its baselines see the same machine
state. Prints median and p95 in milliseconds and the ratio coderun / baseline.
"""
import argparse, json, os, shutil, socket, statistics, subprocess, sys, tempfile, time, urllib.request

HELLO = {
    "python": 'print("Hello, World!")',
    "typescript": 'const who: string = "World";\nconsole.log(`Hello, ${who}!`);',
    "rust": 'fn main() { println!("Hello, World!"); }',
}


def real_python():
    out = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"], capture_output=True, text=True)
    return os.path.realpath(out.stdout.strip())


def rustc_path():
    sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True).stdout.strip()
    return os.path.join(sysroot, "bin", "rustc")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body):
    req = urllib.request.Request(url + "/execute", data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        data = json.loads(r.read())
    if data.get("status") != "ok" or "Hello, World!" not in data.get("output", ""):
        raise SystemExit(f"bad response: {data}")


def run(argv, **kw):
    p = subprocess.run(argv, capture_output=True, **kw)
    if p.returncode != 0:
        raise SystemExit(f"{argv} failed: {p.stderr.decode()}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--url")
    ap.add_argument("--binary")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    server = None
    url = args.url
    if not url:
        binary = args.binary or next(
            (b for b in (os.path.join(root, "target/release/coderun"), os.path.join(root, "target/debug/coderun")) if os.path.exists(b)),
            None,
        )
        if not binary:
            raise SystemExit("build coderun first (cargo build --release)")
        port = free_port()
        server = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--languages-dir", os.path.join(root, "languages")],
                                  stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/health", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
    py = real_python()
    rustc = rustc_path()
    work = tempfile.mkdtemp()
    with open(os.path.join(work, "main.rs"), "w") as f:
        f.write(HELLO["rust"])
    js = 'const who = "World"; console.log(`Hello, ${who}!`);'

    def bare_rust():
        run([rustc, "--edition", "2021", "-C", "opt-level=1", "-C", "debuginfo=0", "-C", "strip=debuginfo", "-o", os.path.join(work, "main"), os.path.join(work, "main.rs")])
        run([os.path.join(work, "main")])

    cases = [
        ("python  coderun", lambda: post(url, {"code": HELLO["python"], "language": "python"})),
        ("python  bare python3 -E -s (same binary/flags)", lambda: run([py, "-E", "-s", "-c", HELLO["python"]])),
        ("python  floor python3 -I -S -c", lambda: run([py, "-I", "-S", "-c", HELLO["python"]])),
        ("ts      coderun", lambda: post(url, {"code": HELLO["typescript"], "language": "typescript"})),
        ("ts      bare node -e", lambda: run(["/usr/bin/node", "-e", js])),
        ("rust    coderun", lambda: post(url, {"code": HELLO["rust"], "language": "rust"})),
        ("rust    bare rustc + run (same flags)", bare_rust),
    ]
    times = {name: [] for name, _ in cases}
    for name, fn in cases:  # warm-up
        fn()
    for _ in range(args.runs):
        for name, fn in cases:
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) * 1000)
    if server:
        server.terminate()
        server.wait()
    shutil.rmtree(work, ignore_errors=True)

    def p95(v):
        return sorted(v)[max(0, int(round(0.95 * len(v))) - 1)]

    print(f"hello world, {args.runs} interleaved rounds, {os.cpu_count()} CPUs")
    print(f"{'case':48} {'p50 ms':>8} {'p95 ms':>8} {'ratio p50':>10}")
    base = {}
    for name, _ in cases:
        lang = name.split()[0]
        med = statistics.median(times[name])
        if "coderun" in name:
            base[lang] = med
            ratio = ""
        else:
            ratio = f"{base[lang] / med:.2f}x" if med else ""
        print(f"{name:48} {med:8.1f} {p95(times[name]):8.1f} {ratio:>10}")
    print("ratio = coderun p50 / baseline p50 (lower is better for coderun)")


if __name__ == "__main__":
    main()
