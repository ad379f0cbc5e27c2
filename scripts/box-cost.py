#!/usr/bin/env python3
"""What one box costs in CPU, the way a client sees it.

Starts one `coderun serve` per variant (pools off: `pool_size = 0`, no self-check during the
run, a private compile cache), sends N back-to-back requests per case from one client (a new
TCP connection each), and reads the CPU time of each server's whole process tree from
/proc/<pid>/stat: its own utime+stime plus cutime+cstime, which holds every helper, box init
and program it reaped (each waits for its children). Requests to the variants alternate in
ABBA blocks, and an idle baseline of each server is subtracted. Kernel threads (kworkers:
network-namespace and cgroup teardown run there, not in the box's processes) are summed
separately for the same blocks: they are shared by the whole machine, so they are an upper
bound. "Rest of the machine" is every CPU's busy time less the server tree and this client:
other processes and kernel threads, a measure of how quiet the machine was. Then the same
program runs N times bare (spawned by this script), for the floor.

Usage (as root, from the repository root, after `cargo build --release`):

    scripts/box-cost.py                                   # python, rust (cache hit), /bin/true
    scripts/box-cost.py --runs 200 --case python --case true
    scripts/box-cost.py --variant before=/tmp/coderun-old:languages \\
                        --variant after=target/release/coderun:languages

A variant is NAME=BINARY[:LANGUAGES_DIR]; the binary, the languages dir and the `runners` dir
beside it are copied to a temp dir first, so a rebuild or an edit during the run changes
nothing. `--pool-size N` measures warm boxes instead: then a request's CPU includes refilling
the pool with the box it took. `--perf FILE` records the server's whole tree with perf for
scripts/perf-box-roles.py (where a box's CPU goes, by process and system call). Prints a Markdown table to stdout.
"""

import argparse
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CLK = os.sysconf("SC_CLK_TCK")

CASES = {
    # name: (language, code, expected stdout)
    "python": ("python", "pass", ""),
    "python-hello": ("python", "print('Hello, World!')", "Hello, World!\n"),
    "rust": ("rust", "fn main() {}", ""),
    "rust-hello": ("rust", 'fn main() { println!("Hello, World!"); }', "Hello, World!\n"),
    "true": ("true", "", ""),
}

TRUE_TOML = """name = "true"
display_name = "true"
extensions = ["true"]
source_file = "main.txt"
version_command = ["/bin/echo", "true"]

[run]
command = ["/bin/true"]
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def tree_ticks(pid):
    """utime + stime + cutime + cstime of `pid`, plus utime + stime of its live descendants."""
    f = stat_fields(pid)
    total = sum(int(x) for x in f[11:15])
    for child in children(pid):
        try:
            total += descendants_ticks(child)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def descendants_ticks(pid):
    f = stat_fields(pid)
    total = int(f[11]) + int(f[12])
    for child in children(pid):
        try:
            total += descendants_ticks(child)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except FileNotFoundError:
        pass
    return out


def kthread_ticks():
    """utime + stime of every kernel thread (children of kthreadd, pid 2), by pid."""
    ticks = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            f = stat_fields(name)
        except (FileNotFoundError, ProcessLookupError):
            continue
        if f[1] == "2" or name == "2":
            ticks[name] = int(f[11]) + int(f[12])
    return ticks


def kthread_delta(before, after):
    """CPU ticks kernel threads used between two snapshots (a kworker that exited in between
    is lost; one that started counts whole)."""
    return sum(t - before.get(pid, 0) for pid, t in after.items() if t >= before.get(pid, 0))


def own_cpu():
    """CPU seconds of this client process (it runs on the same machine)."""
    t = os.times()
    return t.user + t.system


def machine_busy_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v[:8]) - idle, sum(v[:8])


class Server:
    def __init__(self, name, binary, langdir, work, pool_size=0, extra_config="", perf=None):
        self.name = name
        self.pool_size = pool_size
        self.port = free_port()
        d = os.path.join(work, name)
        os.makedirs(d)
        exe = os.path.join(d, "coderun")
        shutil.copy2(binary, exe)
        langs = os.path.join(d, "languages")
        shutil.copytree(langdir, langs)
        # The language files name the runners (pooled boxes) relative to their parent dir.
        runners = os.path.join(os.path.dirname(os.path.abspath(langdir)), "runners")
        if os.path.isdir(runners):
            shutil.copytree(runners, os.path.join(d, "runners"))
        with open(os.path.join(langs, "true.toml"), "w") as f:
            f.write(TRUE_TOML)
        cfg = os.path.join(d, "config.toml")
        with open(cfg, "w") as f:
            f.write(
                f'[server]\nlisten = "127.0.0.1:{self.port}"\n'
                f"[engine]\npool_size = {pool_size}\nself_check_interval_s = 86400\n"
                f'compile_cache_dir = "{d}/compile-cache"\n' + extra_config
            )
        self.log = open(os.path.join(d, "server.log"), "w")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CODERUN_")}
        wrap = ["perf", "record", "-F", "10000", "-e", "cpu-clock", "-g", "-o", perf, "--"] if perf else []
        self.perf = bool(perf)
        self.proc = subprocess.Popen(
            wrap + [exe, "--config", cfg, "serve", "--languages-dir", langs],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=d)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                status, _ = self.request("GET", "/health")
                if status == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None:
                sys.exit(f"server {name} exited; see {d}/server.log")
            time.sleep(0.1)
        else:
            sys.exit(f"server {name} not healthy after 60 s; see {d}/server.log")

    def request(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            headers = {"content-type": "application/json"} if body is not None else {}
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def execute(self, case):
        lang, code, expected = CASES[case]
        t = time.perf_counter()
        status, body = self.request("POST", "/execute", json.dumps({"code": code, "language": lang}))
        dt = time.perf_counter() - t
        if status != 200:
            sys.exit(f"{self.name} {case}: HTTP {status}: {body[:300]!r}")
        r = json.loads(body)
        if r.get("status") != "ok" or r.get("stdout") != expected:
            sys.exit(f"{self.name} {case}: unexpected answer {r}")
        return dt, r

    def quiet(self, timeout=30):
        """Waits until the server is idle: without pools, no process runs below it (every
        helper has torn its box down); with pools, every pool is full and the tree's CPU time
        stands still (the warm runtimes wait for a program)."""
        deadline = time.time() + timeout
        if not self.pool_size:
            while children(self.proc.pid) and time.time() < deadline:
                time.sleep(0.01)
            return
        while time.time() < deadline:
            _, body = self.request("GET", "/health")
            pools = json.loads(body).get("pools") or {}
            if all(v >= self.pool_size for v in pools.values()):
                before = tree_ticks(self.proc.pid)
                time.sleep(0.3)
                if tree_ticks(self.proc.pid) == before:
                    return
            else:
                time.sleep(0.05)

    def stop(self):
        # perf record stops (and stops the server) on SIGINT and then writes its file.
        self.proc.send_signal(signal.SIGINT if self.perf else signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def store_python(server_pid):
    """The server's Python entry of the runtime store (what its boxes see at
    /opt/coderun/python, the language file's include/exclude applied): the server holds the
    entry's `.complete` file open. None if it is not found."""
    fds = f"/proc/{server_pid}/fd"
    for fd in os.listdir(fds):
        try:
            target = os.readlink(os.path.join(fds, fd))
        except OSError:
            continue
        parent, name = os.path.split(target)
        if name == ".complete" and os.path.basename(parent).startswith("python-"):
            return parent
    return None


def bare_commands(case, work, server_pid):
    py = os.path.join(sys.base_prefix, "bin", "python3")
    py = os.path.realpath(py)
    if case.startswith("python"):
        code = CASES[case][1]
        rows = [
            ("python3 -E -s -u -B -c (coderun's flags)", [py, "-E", "-s", "-u", "-B", "-c", code]),
            ("python3 -E -s -c", [py, "-E", "-s", "-c", code]),
            ("python3 -I -S -c", [py, "-I", "-S", "-c", code]),
        ]
        tree = store_python(server_pid)
        if tree:
            rows.append(("the box's tree (runtime store): python3 -E -s -u -B -c",
                         [os.path.join(tree, "bin", "python3"), "-E", "-s", "-u", "-B", "-c", code],
                         {"LD_LIBRARY_PATH": os.path.join(tree, "lib")}))
        return rows
    if case.startswith("rust"):
        src = os.path.join(work, f"{case}.rs")
        with open(src, "w") as f:
            f.write(CASES[case][1])
        out = os.path.join(work, f"{case}-bin")
        subprocess.run(["rustc", "--edition", "2021", "-C", "opt-level=1", "-C", "debuginfo=0",
                        "-C", "strip=debuginfo", "-o", out, src], check=True)
        return [("the binary (rust.toml flags)", [out])]
    if case == "true":
        return [("/bin/true", ["/bin/true"])]
    return []


def bare_cpu(argv, runs, env=None):
    env = dict(os.environ, **(env or {}))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    walls = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True, env=env)
        walls.append(time.perf_counter() - t)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu / runs * 1000, statistics.median(walls) * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200, help="requests per case and variant")
    ap.add_argument("--case", action="append", choices=sorted(CASES))
    ap.add_argument("--variant", action="append", help="NAME=BINARY[:LANGUAGES_DIR]")
    ap.add_argument("--idle-s", type=float, default=3.0, help="idle baseline per server")
    ap.add_argument("--no-bare", action="store_true")
    ap.add_argument("--variant-config", action="append", default=[],
                    help="NAME=FILE: TOML appended to that variant's config (not [server] or "
                         "[engine]), e.g. a [sandbox] section")
    ap.add_argument("--perf", metavar="FILE",
                    help="run the (first) server under `perf record -g -o FILE` for "
                         "scripts/perf-box-roles.py; its CPU column is then meaningless "
                         "(perf, not the server, is the root of the tree)")
    ap.add_argument("--variant-pool-size", action="append", default=[],
                    help="NAME=N: that variant's pool_size (default: --pool-size)")
    ap.add_argument("--pool-size", type=int, default=0,
                    help="warm boxes per pool (default 0: every request gets a fresh box); "
                         "with pools, a request's CPU includes the refill of its warm box")
    a = ap.parse_args()
    cases = a.case or ["python", "rust", "true"]
    variants = []
    for v in a.variant or ["coderun=target/release/coderun:languages"]:
        name, rest = v.split("=", 1)
        binary, _, langdir = rest.partition(":")
        variants.append((name, binary, langdir or "languages"))

    work = tempfile.mkdtemp(prefix="box-cost-")
    servers = []
    try:
        for name, binary, langdir in variants:
            extra = ""
            for vc in a.variant_config:
                vname, _, path = vc.partition("=")
                if vname == name:
                    with open(path) as f:
                        extra += f.read()
            pool = a.pool_size
            for vp in a.variant_pool_size:
                vname, _, n = vp.partition("=")
                if vname == name:
                    pool = int(n)
            perf = a.perf if not servers else None
            servers.append(Server(name, binary, langdir, work, pool, extra, perf))
        # Warm-up: the runtime store, the compile cache (a Rust hit needs the binary cached).
        for s in servers:
            for case in cases:
                for _ in range(3):
                    s.execute(case)
            s.quiet()
        # Idle baseline: each server's tree CPU over idle_s with nothing to do.
        idle = {}
        for s in servers:
            t0, c0 = time.time(), tree_ticks(s.proc.pid)
            time.sleep(a.idle_s)
            idle[s.name] = (tree_ticks(s.proc.pid) - c0) / CLK / (time.time() - t0)
        rows = []
        for case in cases:
            acc = {s.name: {"cpu": 0.0, "kthr": 0.0, "busy": 0.0, "span": 0.0, "walls": [],
                            "srv_wall": [], "srv_cpu": [], "pooled": 0} for s in servers}
            # ABBA...: each server gets two blocks of runs/2 per pass of the order.
            order = servers + servers[::-1]
            block = max(1, a.runs // 2)
            for s in order:
                s.quiet()
                k0, (b0, _), m0 = kthread_ticks(), machine_busy_ticks(), own_cpu()
                c0, t0 = tree_ticks(s.proc.pid), time.time()
                for _ in range(block):
                    dt, r = s.execute(case)
                    acc[s.name]["walls"].append(dt)
                    acc[s.name]["srv_wall"].append(r.get("wall_time") or 0)
                    acc[s.name]["srv_cpu"].append(r.get("cpu_time") or 0)
                    acc[s.name]["pooled"] += bool(r.get("pooled"))
                s.quiet()
                c1, t1 = tree_ticks(s.proc.pid), time.time()
                k1, (b1, _), m1 = kthread_ticks(), machine_busy_ticks(), own_cpu()
                x = acc[s.name]
                x["cpu"] += (c1 - c0) / CLK - idle[s.name] * (t1 - t0)
                x["kthr"] += kthread_delta(k0, k1) / CLK
                x["busy"] += (b1 - b0) / CLK - (m1 - m0)
                x["span"] += t1 - t0
            for s in servers:
                x = acc[s.name]
                n = len(x["walls"])
                what = f"coderun: {s.name}"
                if s.pool_size:
                    what += f" (pool_size {s.pool_size}, {x['pooled']}/{n} warm)"
                rows.append((case, what, n,
                             x["cpu"] / n * 1000, x["kthr"] / n * 1000,
                             statistics.median(x["walls"]) * 1000,
                             statistics.median(x["srv_cpu"]) * 1000,
                             (x["busy"] - x["cpu"]) / n * 1000))
            if not a.no_bare:
                for label, argv, *env in bare_commands(case, work, servers[-1].proc.pid):
                    cpu, wall = bare_cpu(argv, a.runs, *env)
                    rows.append((case, f"bare: {label}", a.runs, cpu, None, wall, None, None))
        print(f"runs per row: {a.runs}; idle CPU of each server (subtracted): "
              + ", ".join(f"{k} {v * 1000:.2f} ms/s" for k, v in idle.items()))
        print()
        print("| case | what | runs | CPU ms per run (process tree) | kernel threads ms per run "
              "(whole machine) | wall p50 ms | server's cpu_time p50 ms | rest of the machine ms per run |")
        print("|:---|:---|---:|---:|---:|---:|---:|---:|")
        for case, what, n, cpu, kthr, wall, scpu, rest in rows:
            fmt = lambda v: "" if v is None else f"{v:.2f}"
            print(f"| {case} | {what} | {n} | {cpu:.2f} | {fmt(kthr)} | {wall:.2f} | {fmt(scpu)} | {fmt(rest)} |")
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
