#!/usr/bin/env python3
"""coderun next to the bare runtimes, interleaved in one run: latency, throughput, server memory.

Usage: scripts/bench.py [--runs N] [--quick] [--markdown] [--url URL] [--binary PATH]

Without --url it starts `coderun serve` itself (a private copy of the release build, so a
concurrent rebuild cannot swap the binary mid-run, and a private, empty compile cache) on a
free port, with the repository's languages/, plus a second server whose only language runs
/bin/true in a fresh box (the per-box floor).

1. Latency: hello world per language through POST /execute next to (a) the bare runtime with
   the same binary and flags coderun uses (read from languages/*.toml) and (b) the floor
   (`python3 -I -S -c`, `node -e`, plain `rustc` + run). Every round runs every case once, in
   a shuffled order, so coderun and its baselines see the same machine state. Compiled
   languages are sent with a new source each time (a comment with a nonce: a compile-cache
   miss) and, if the server has a compile cache, also with the same source (a hit).
2. Throughput (runs/s) at concurrency 1, 4 and 16 through the API (threads + urllib, new
   source per request) next to bare processes (same counts, subprocess in threads). Each level
   runs in ABBA blocks (coderun, bare, bare, coderun). Any non-200 (503 overloaded included)
   or wrong output is an error and is reported.
3. Server memory: VmRSS of `coderun serve` once /health answers, once its warm pools are
   full, and at the end (with VmHWM); also the RSS and PSS of the boxes below it.
4. The machine, the command line, the load average and the CPU time other processes used
   during the run (a busy machine makes every number here worse).

Stdlib only (tomllib from Python 3.11 reads the language files; older Pythons use a copy of
the shipped flags). Progress goes to stderr, the report to stdout.
"""
import argparse, concurrent.futures, json, os, platform, random, shlex, shutil, socket
import statistics, subprocess, sys, tempfile, threading, time, urllib.error, urllib.request

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

HELLO = {
    "python": 'print("Hello, World!")',
    "typescript": 'const who: string = "World";\nconsole.log(`Hello, ${who}!`);',
    "rust": 'fn main() { println!("Hello, World!"); }',
}
EXPECTED = "Hello, World!\n"
# Used only without tomllib; mirrors languages/*.toml.
FALLBACK_TOML = {
    "python": {"run": {"command": ["/opt/coderun/python/bin/python3", "-E", "-s", "-u", "-B", "{source}", "{args}"],
                       "env": {"LD_LIBRARY_PATH": "/opt/coderun/python/lib"}},
               "runtimes": {"python": {"mount_at": "/opt/coderun/python"}}},
    "typescript": {"run": {"command": ["/usr/bin/node", "--enable-source-maps", "main.js", "{args}"]},
                   "extra_files": {"package.json": '{"type": "commonjs"}'}},
    "rust": {"compile": {"command": ["/opt/coderun/rust/bin/rustc", "--edition", "2021", "--crate-name", "main",
                                     "-C", "opt-level=1", "-C", "debuginfo=0", "-C", "strip=debuginfo",
                                     "-o", "main", "{source}"],
                         "env": {"PATH": "/opt/coderun/rust/bin:/usr/bin:/bin"}},
             "run": {"command": ["/work/main", "{args}"]},
             "runtimes": {"rust": {"mount_at": "/opt/coderun/rust"}}},
}
TRUE_TOML = """# Benchmark only: a box that runs /bin/true, the per-box floor.
name = "true"
display_name = "true"
extensions = ["true"]
source_file = "main.txt"
version_command = ["/bin/echo", "true"]

[run]
command = ["/bin/true"]
"""
# Environment of the bare processes: like a box's (never the benchmark's own).
BARE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TMPDIR": "/tmp"}
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- machine and process state

def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "?")
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(l for l in f if l.startswith("MemTotal")).split()[1])
            mem = f"{kb / 1048576:.1f} GiB ({kb} kB)"
    except (OSError, StopIteration):
        pass
    return {
        "nproc": str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()),
        "cpu": model,
        "memory": mem,
        "kernel": platform.release(),
        "os": pretty_os(),
    }


def pretty_os():
    try:
        with open("/etc/os-release") as f:
            for l in f:
                if l.startswith("PRETTY_NAME="):
                    return l.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "?"


def status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for l in f:
                if l.startswith(field + ":"):
                    return int(l.split()[1])
    except OSError:
        pass
    return None


def tree_memory(pid):
    """Processes below pid (boxes, warm ones included): (count, RSS kB, PSS kB) summed."""
    table = all_proc_ticks()
    pids = descendants(pid, table) - {pid}
    rss = pss = 0
    for p in pids:
        rss += status_kb(p, "VmRSS") or 0
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                pss += next((int(l.split()[1]) for l in f if l.startswith("Pss:")), 0)
        except OSError:
            pass
    return len(pids), rss, pss


def health(url):
    try:
        with NO_PROXY.open(url + "/health", timeout=5) as r:
            return json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError):
        return {}


def cpu_stat():
    """(busy, total, steal) clock ticks of the whole machine."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    v += [0] * (8 - len(v))
    user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait, steal


def proc_ticks(pid):
    """utime + stime + cutime + cstime of a process (its reaped descendants included)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in rest[11:15])
    except (OSError, IndexError, ValueError):
        return 0


def all_proc_ticks():
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    s = f.read()
                comm = s[s.index("(") + 1:s.rindex(")")]
                rest = s.rsplit(")", 1)[1].split()
                out[int(d)] = (comm, int(rest[1]), int(rest[11]) + int(rest[12]))  # comm, ppid, utime+stime
            except (OSError, ValueError, IndexError):
                pass
    return out


def descendants(root, table):
    kids = {}
    for pid, (_, ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    seen, todo = set(), [root]
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo.extend(kids.get(p, []))
    return seen


def busy_sample(seconds=1.0):
    """CPU use of the machine over `seconds`, and the busiest processes that are not ours."""
    b0, t0, _ = cpu_stat()
    p0 = all_proc_ticks()
    time.sleep(seconds)
    b1, t1, _ = cpu_stat()
    p1 = all_proc_ticks()
    ours = descendants(os.getpid(), p1)
    tick = os.sysconf("SC_CLK_TCK")
    top = []
    for pid, (comm, _, ticks) in p1.items():
        if pid in ours or pid not in p0:
            continue
        d = ticks - p0[pid][2]
        if d > 0:
            top.append((d / tick / seconds, comm, pid))
    top.sort(reverse=True)
    frac = (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
    return frac, top[:5]


class CpuMeter:
    """CPU time the machine spent between two marks, split into ours and everyone else's."""

    def __init__(self, pids):
        self.pids = pids  # callable: our long-lived pids (servers)
        self.mark()

    def _ours(self):
        return proc_ticks(os.getpid()) + sum(proc_ticks(p) for p in self.pids())

    def mark(self):
        self.t = time.monotonic()
        self.busy, self.total, self.steal = cpu_stat()
        self.ours = self._ours()

    def since(self):
        busy, total, steal = cpu_stat()
        ours = self._ours()
        tick = os.sysconf("SC_CLK_TCK")
        ncpu = os.cpu_count() or 1
        dt = time.monotonic() - self.t
        other = max(0, (busy - self.busy) - (ours - self.ours) - (steal - self.steal))
        return {
            "seconds": dt,
            "ours_cpu_s": (ours - self.ours) / tick,
            "other_cpu_s": other / tick,
            "steal_cpu_s": (steal - self.steal) / tick,
            "other_frac": other / tick / (dt * ncpu) if dt > 0 else 0.0,
            "util": (busy - self.busy) / (total - self.total) if total > self.total else 0.0,
        }


def git_state(root):
    def g(*a):
        p = subprocess.run(["git", "-C", root, *a], capture_output=True, text=True)
        return p.stdout if p.returncode == 0 else ""
    head = g("rev-parse", "--short", "HEAD").strip() or "?"
    dirty = [l[3:] for l in g("status", "--porcelain", "--untracked-files=no").splitlines() if len(l) > 3]
    return head, dirty


# ---------------------------------------------------------------- runtimes and baselines

def locate(argv):
    out = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise BenchError(f"{argv} failed: {out.stderr.strip()}")
    return os.path.realpath(out.stdout.strip())


def load_languages(langdir):
    langs = {}
    for name in HELLO:
        path = os.path.join(langdir, f"{name}.toml")
        if tomllib:
            with open(path, "rb") as f:
                langs[name] = tomllib.load(f)
        else:
            langs[name] = FALLBACK_TOML[name]
    return langs


def host_argv(argv, mounts, source=None):
    """A language file's command with /opt/coderun/<runtime> mapped back to the host."""
    out = []
    for a in argv:
        if a == "{args}" or a == "{flags}":
            continue
        if a == "{source}" and source is not None:
            out.extend(source if isinstance(source, list) else [source])
            continue
        for target, host in mounts.items():
            if a == target or a.startswith(target + "/"):
                a = host + a[len(target):]
                break
        out.append(a)
    return out


def host_env(env, mounts):
    return {k: host_argv([v], mounts)[0] if ":" not in v else ":".join(host_argv(v.split(":"), mounts))
            for k, v in env.items()}


def run_ok(argv, cwd=None, env=None):
    """Runs a bare process; True when it exits 0 and prints hello (or nothing, for /bin/true)."""
    p = subprocess.run(argv, capture_output=True, cwd=cwd, env=env, stdin=subprocess.DEVNULL)
    return p.returncode == 0, p


class Bare:
    """The bare runtimes, with the binaries and flags of languages/*.toml."""

    def __init__(self, root, langdir, work, coderun_binary):
        langs = load_languages(langdir)
        self.work = work
        py_prefix = locate(["python3", "-c", "import sys; print(sys.base_prefix)"])
        sysroot = locate(["rustc", "--print", "sysroot"])
        mounts = {"/opt/coderun/python": py_prefix, "/opt/coderun/rust": sysroot}
        for lang in langs.values():  # any other runtime with a fixed path
            for rt in lang.get("runtimes", {}).values():
                if "path" in rt:
                    mounts[rt["mount_at"]] = os.path.join(root, rt["path"])
        # python: the real binary, the run flags, -c instead of a file
        py = langs["python"]["run"]
        self.py_argv = [os.path.realpath(a) if i == 0 else a
                        for i, a in enumerate(host_argv(py["command"], mounts, ["-c", HELLO["python"]]))]
        self.py_env = {**BARE_ENV, **host_env(py.get("env", {}), mounts)}
        self.py_floor = [self.py_argv[0], "-I", "-S", "-c", HELLO["python"]]
        # typescript: node on the file coderun's transpiler writes, in a dir with extra_files
        ts = langs["typescript"]
        self.ts_dir = os.path.join(work, "ts")
        os.makedirs(self.ts_dir)
        for name, content in ts.get("extra_files", {}).items():
            with open(os.path.join(self.ts_dir, name), "w") as f:
                f.write(content)
        js = self._transpile(coderun_binary)
        with open(os.path.join(self.ts_dir, "main.js"), "w") as f:
            f.write(js)
        self.ts_argv = host_argv(ts["run"]["command"], mounts)
        self.node = self.ts_argv[0]
        self.ts_floor = [self.node, "-e", 'const who = "World"; console.log(`Hello, ${who}!`);']
        # rust: rustc with the compile command's flags, then the binary; the floor is plain rustc
        rs = langs["rust"]
        self.rs_compile = host_argv(rs["compile"]["command"], mounts, "main.rs")
        self.rs_env = {**BARE_ENV, **host_env(rs["compile"].get("env", {}), mounts)}
        self.rs_output = rs["compile"]["output"]
        self.rustc = self.rs_compile[0]
        self.local = threading.local()
        self.counter = 0
        self.lock = threading.Lock()

    def _transpile(self, binary):
        """The exact JavaScript coderun gives node (its transpiler, run here on our own file)."""
        d = os.path.join(self.work, "transpile")
        os.makedirs(d)
        with open(os.path.join(d, "main.ts"), "w") as f:
            f.write(HELLO["typescript"])
        try:
            p = subprocess.run([binary, "transpile-ts", "--bundle", "out.json"], cwd=d, capture_output=True)
            with open(os.path.join(d, "out.json")) as f:
                return json.load(f)["main.js"]
        except (OSError, ValueError, KeyError):
            log("note: coderun transpile-ts failed; node runs hand-written JavaScript")
            return '"use strict";\nconst who = "World";\nconsole.log(`Hello, ${who}!`);\n'

    def _rust_dir(self):
        d = getattr(self.local, "dir", None)
        if d is None:
            with self.lock:
                self.counter += 1
                d = os.path.join(self.work, f"rust{self.counter}")
            os.makedirs(d)
            with open(os.path.join(d, "main.rs"), "w") as f:
                f.write(HELLO["rust"])
            self.local.dir = d
        return d

    @staticmethod
    def _hello(ok_p):
        ok, p = ok_p
        return ok and p.stdout.decode(errors="replace") == EXPECTED

    def python(self):
        return self._hello(run_ok(self.py_argv, env=self.py_env))

    def python_floor(self):
        return self._hello(run_ok(self.py_floor, env=BARE_ENV))

    def typescript(self):
        return self._hello(run_ok(self.ts_argv, cwd=self.ts_dir, env=BARE_ENV))

    def typescript_floor(self):
        return self._hello(run_ok(self.ts_floor, env=BARE_ENV))

    def rust(self):
        d = self._rust_dir()
        ok, _ = run_ok(self.rs_compile, cwd=d, env=self.rs_env)
        return ok and self._hello(run_ok([os.path.join(d, self.rs_output)], cwd=d, env=BARE_ENV))

    def rust_floor(self):
        d = self._rust_dir()
        ok, _ = run_ok([self.rustc, "main.rs", "-o", "plain"], cwd=d, env=BARE_ENV)
        return ok and self._hello(run_ok([os.path.join(d, "plain")], cwd=d, env=BARE_ENV))

    def true(self):
        ok, p = run_ok(["/bin/true"], env=BARE_ENV)
        return ok and p.stdout == b""


# ---------------------------------------------------------------- the API

class Server:
    def __init__(self, binary, langdir, logdir, tag, config=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(logdir, f"server-{tag}.log")
        self.argv = [binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--languages-dir", langdir]
        if config:
            self.argv[1:1] = ["--config", config]
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()  # never leave a server behind
            raise
        self.idle_rss = status_kb(self.pid, "VmRSS")
        self.idle_tree = tree_memory(self.pid)
        self.idle_pools = self.health.get("pools")

    def _wait_healthy(self):
        deadline = time.monotonic() + 180
        unhealthy_since = None
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"server exited ({self.proc.returncode}); see {self.log_path}:\n{self.tail()}")
            try:
                with NO_PROXY.open(self.url + "/health", timeout=2) as r:
                    self.health = json.loads(r.read())
                break
            except urllib.error.HTTPError as e:  # it answers, unhealthy: give its self-check a while
                unhealthy_since = unhealthy_since or time.monotonic()
                if time.monotonic() - unhealthy_since > 30:
                    raise BenchError(f"server unhealthy for 30 s: {e.read()[:500]!r}; see {self.log_path}")
                time.sleep(0.1)
            except (urllib.error.URLError, OSError, ValueError):
                if time.monotonic() > deadline:
                    raise BenchError(f"server not answering after 180 s; see {self.log_path}:\n{self.tail()}")
                time.sleep(0.05)

    def settle(self, limit=30):
        """Waits until the warm pools stop growing (unchanged for 2 s), at most limit seconds."""
        last, since, t0 = None, time.monotonic(), time.monotonic()
        while time.monotonic() - t0 < limit:
            pools = health(self.url).get("pools")
            if pools != last:
                last, since = pools, time.monotonic()
            elif time.monotonic() - since >= 2:
                break
            time.sleep(0.2)
        return last

    def tail(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body, timeout=120):
    """(http status, parsed body or None)."""
    req = urllib.request.Request(url + "/execute", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    try:
        with NO_PROXY.open(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            data = json.loads(e.read())
        except ValueError:
            data = None
        return e.code, data


class Api:
    def __init__(self, url, true_url):
        self.url = url
        self.true_url = true_url
        self.nonce = f"{os.getpid():x}{int(time.time() * 1000):x}"
        self.counter = 0
        self.lock = threading.Lock()
        self.samples = {}  # case -> list of server-side (compile_time, wall_time, compile_cached, pooled)

    def source(self, lang, fresh):
        """Hello world; with fresh, a comment makes it a new program (a compile-cache miss)."""
        if not fresh or lang == "python":
            return HELLO[lang]
        with self.lock:
            self.counter += 1
            n = self.counter
        return HELLO[lang] + f"\n// bench {self.nonce}-{n}\n"

    def call(self, lang, fresh=True, record=None, pooled=None):
        """'' when the run was right, else a short error class (for counting)."""
        url, expected = (self.true_url, "") if lang == "true" else (self.url, EXPECTED)
        code = "" if lang == "true" else self.source(lang, fresh)
        try:
            st, data = post(url, {"code": code, "language": lang})
        except (urllib.error.URLError, OSError) as e:
            return f"connection: {type(e).__name__}"
        if st != 200:
            return f"HTTP {st} {(data or {}).get('code', '')}".strip()
        if data.get("status") != "ok" or data.get("stdout") != expected:
            return f"wrong output (status {data.get('status')})"
        if record is not None:
            self.samples.setdefault(record, []).append(
                (data.get("compile_time"), data.get("wall_time"), data.get("compile_cached", "absent"),
                 data.get("pooled", "absent")))
        if pooled is not None and data.get("pooled") is True:
            with self.lock:
                pooled[0] += 1
        return ""

    def no_box(self):
        """POST /execute for a language that does not exist: HTTP + JSON + validation, no box."""
        st, _ = post(self.url, {"code": "", "language": "no-such-language"})
        return "" if st == 422 else f"HTTP {st}"


# ---------------------------------------------------------------- statistics and output

def p50(v):
    return statistics.median(v) if v else float("nan")


def p95(v):
    s = sorted(v)
    return s[max(0, -(-95 * len(s) // 100) - 1)] if s else float("nan")


class Report:
    def __init__(self, markdown):
        self.md = markdown
        self.out = []

    def heading(self, text):
        self.out.append(("\n### " if self.md else "\n== ") + text + ("" if self.md else " =="))
        self.out.append("")

    def para(self, text):
        self.out.append(text)
        self.out.append("")

    def items(self, pairs):
        for k, v in pairs:
            self.out.append(f"- **{k}**: {v}" if self.md else f"{k:14} {v}")
        self.out.append("")

    def table(self, headers, rows, align=None):
        align = align or ["l"] + ["r"] * (len(headers) - 1)
        rows = [[str(c) for c in r] for r in rows]
        if self.md:
            self.out.append("| " + " | ".join(headers) + " |")
            self.out.append("|" + "|".join("---:" if a == "r" else ":---" for a in align) + "|")
            for r in rows:
                self.out.append("| " + " | ".join(r) + " |")
        else:
            w = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
            fmt = lambda r: "  ".join(c.rjust(w[i]) if align[i] == "r" else c.ljust(w[i]) for i, c in enumerate(r))
            self.out.append(fmt(headers))
            self.out.append("  ".join("-" * x for x in w))
            for r in rows:
                self.out.append(fmt(r))
        self.out.append("")

    def print(self):
        print("\n".join(self.out).strip("\n"))


def ms(v):
    return "n/a" if v != v else (f"{v:.1f}" if v < 100 else f"{v:.0f}")


def ratio(a, b):
    return f"{a / b:.2f}x" if b and a == a and b == b else "n/a"


# ---------------------------------------------------------------- phases

def latency_phase(api, bare, rounds, cached, box_true):
    """Every round runs every case once, in a shuffled order."""
    cases = [
        # (language, label, kind, fn)   kind: coderun / bare / floor / hit / nobox
        ("python", "coderun POST /execute", "coderun", lambda: api.call("python", record="python")),
        ("python", "bare: python3 -E -s -u -B -c (real binary, coderun's flags)", "bare", bare.python),
        ("python", "floor: python3 -I -S -c", "floor", bare.python_floor),
        ("typescript", "coderun POST /execute, new source each time", "coderun",
         lambda: api.call("typescript", record="typescript")),
        ("typescript", "bare: node --enable-source-maps main.js (transpiled file)", "bare", bare.typescript),
        ("typescript", "floor: node -e", "floor", bare.typescript_floor),
        ("rust", "coderun POST /execute, new source each time", "coderun", lambda: api.call("rust", record="rust")),
        ("rust", "bare: rustc (rust.toml flags) + run", "bare", bare.rust),
        ("rust", "floor: rustc main.rs + run", "floor", bare.rust_floor),
        ("http", "POST /execute answered 422 (no box)", "nobox", api.no_box),
    ]
    if cached:
        cases.insert(4, ("typescript", "coderun POST /execute, same source (compile cache hit)", "hit",
                         lambda: api.call("typescript", fresh=False, record="typescript-hit")))
        cases.insert(8, ("rust", "coderun POST /execute, same source (compile cache hit)", "hit",
                         lambda: api.call("rust", fresh=False, record="rust-hit")))
    if box_true:
        cases += [
            ("box", "coderun box running /bin/true", "coderun", lambda: api.call("true", record="true")),
            ("box", "bare: /bin/true", "bare", bare.true),
        ]

    def check(label, r):
        if r is True or r == "":
            return
        raise BenchError(f"latency case {label!r} failed: {r if isinstance(r, str) else 'bad output or exit'}")

    for _, label, _, fn in cases:  # warm-up: page cache, runtime store, compile cache entries
        check(label, fn())
    api.samples.clear()
    times = [[] for _ in cases]
    rng = random.Random(1)
    order = list(range(len(cases)))
    for i in range(rounds):
        rng.shuffle(order)
        for j in order:
            _, label, _, fn = cases[j]
            t = time.perf_counter()
            r = fn()
            times[j].append((time.perf_counter() - t) * 1000)
            check(label, r)
        if (i + 1) % 5 == 0 or i + 1 == rounds:
            log(f"  latency round {i + 1}/{rounds}")
    return cases, times


def batch(fn, n, conc):
    """Runs fn n times on conc threads; (seconds, {error: count})."""
    errors = {}
    lock = threading.Lock()

    def one(_):
        try:
            r = fn()
        except Exception as e:  # a crash of the client is an error too, never a silent success
            r = f"exception: {type(e).__name__}"
        if r is not True and r != "":
            k = r if isinstance(r, str) else "wrong output or exit"
            with lock:
                errors[k] = errors.get(k, 0) + 1

    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=conc) as ex:
        list(ex.map(one, range(n)))
    return time.perf_counter() - t, errors


def throughput_phase(api, bare, counts, langs):
    res = []
    for lang in langs:
        pooled = [0]
        api_fn = lambda: api.call(lang, pooled=pooled)
        bare_fn = getattr(bare, lang)
        batch(api_fn, 2, 2)  # warm-up
        batch(bare_fn, 2, 2)
        for conc, n in counts:
            h1 = n // 2
            h2 = n - h1
            pooled[0] = 0
            time.sleep(1)  # let warm pools refill between levels, as between bursts of traffic
            acc = {"api": [0.0, {}, 0], "bare": [0.0, {}, 0]}
            for kind, k in (("api", h1), ("bare", h1), ("bare", h2), ("api", h2)):  # ABBA
                if k == 0:
                    continue
                secs, errs = batch(api_fn if kind == "api" else bare_fn, k, conc)
                acc[kind][0] += secs
                acc[kind][2] += k
                for e, c in errs.items():
                    acc[kind][1][e] = acc[kind][1].get(e, 0) + c
            acc["pooled"] = pooled[0]
            res.append((lang, conc, n, acc))
            log(f"  throughput {lang} c={conc}: coderun {acc['api'][2] / acc['api'][0]:.1f}/s, "
                f"bare {acc['bare'][2] / acc['bare'][0]:.1f}/s")
    return res


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, help="latency rounds (default 50; 5 with --quick)")
    ap.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    ap.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    ap.add_argument("--url", help="an already running server (no memory numbers, no /bin/true box)")
    ap.add_argument("--binary", help="coderun binary (default target/release/coderun)")
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()
    rounds = args.runs or (5 if args.quick else 50)
    counts = [(1, 4), (4, 8), (16, 16)] if args.quick else [(1, 40), (4, 80), (16, 80)]

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    langdir = os.path.join(root, "languages")
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable] + sys.argv))
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load_before = os.getloadavg()
    busy_before, top_before = busy_sample()
    head, dirty = git_state(root)
    work = tempfile.mkdtemp(prefix="coderun-bench-")
    servers = []
    try:
        binary = args.binary or next((b for b in (os.path.join(root, "target/release/coderun"),
                                                  os.path.join(root, "target/debug/coderun")) if os.path.exists(b)), None)
        if not binary:
            raise BenchError("build coderun first (cargo build --release)")
        binary = os.path.abspath(binary)
        bin_mtime = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.stat(binary).st_mtime))
        bin_stale = [p for p in ("crates", "languages") for d, _, fs in os.walk(os.path.join(root, p))
                     for f in fs if os.stat(os.path.join(d, f)).st_mtime > os.stat(binary).st_mtime]
        # A private copy: someone rebuilding target/ cannot change the binary under the run.
        bindir = os.path.join(work, "bin")
        os.makedirs(bindir)
        shutil.copy2(binary, os.path.join(bindir, "coderun"))
        run_binary = os.path.join(bindir, "coderun")
        bare = Bare(root, langdir, work, run_binary)

        server = true_server = None
        if args.url:
            url, true_url = args.url.rstrip("/"), None
        else:
            # A private, empty compile cache: the benchmark neither fills the machine's cache
            # (/var/lib/coderun/compile-cache) nor gets hits from earlier runs.
            config = os.path.join(work, "config.toml")
            with open(config, "w") as f:
                f.write(f'[engine]\ncompile_cache_dir = {json.dumps(os.path.join(work, "compile-cache"))}\n')
            log("starting coderun serve ...")
            server = Server(run_binary, langdir, work, "main", config)
            servers.append(server)
            settled_pools = server.settle()
            settled = (status_kb(server.pid, "VmRSS"), tree_memory(server.pid), settled_pools)
            # The /bin/true box: a server whose only language runs /bin/true (no warm pools, no
            # runtime mounts): the cost of a fresh box as such.
            tdir = os.path.join(work, "languages-true")
            os.makedirs(tdir)
            with open(os.path.join(tdir, "true.toml"), "w") as f:
                f.write(TRUE_TOML)
            try:
                true_server = Server(run_binary, tdir, work, "true", config)
                servers.append(true_server)
            except BenchError as e:
                log(f"note: no /bin/true box: {e}")
            url, true_url = server.url, true_server and true_server.url
        api = Api(url, true_url)
        meter = CpuMeter(lambda: [s.pid for s in servers])

        # Does this build have a compile cache? (the response says whether a compile was cached)
        st, probe = post(url, {"code": HELLO["rust"], "language": "rust"})
        if st != 200:
            raise BenchError(f"rust hello world: HTTP {st}: {probe}")
        cached = "compile_cached" in probe
        has_pool = "pooled" in probe
        versions = {}
        try:
            with NO_PROXY.open(url + "/languages", timeout=10) as r:
                ls = json.loads(r.read())
            for l in (ls.get("languages", ls) if isinstance(ls, dict) else ls):
                versions[l.get("name")] = l.get("version")
        except (urllib.error.URLError, OSError, ValueError, AttributeError):
            pass

        log(f"latency: {rounds} rounds ...")
        meter.mark()
        cases, times = latency_phase(api, bare, rounds, cached, bool(true_url))
        cpu_lat = meter.since()
        tp, cpu_tp = [], None
        if not args.skip_throughput:
            log("throughput ...")
            meter.mark()
            tp = throughput_phase(api, bare, counts, ["python", "typescript", "rust"] + (["true"] if true_url else []))
            cpu_tp = meter.since()
        mem = None
        if server:
            mem = {"idle": server.idle_rss, "after": status_kb(server.pid, "VmRSS"),
                   "hwm": status_kb(server.pid, "VmHWM"), "idle_tree": server.idle_tree,
                   "idle_pools": server.idle_pools, "settled": settled, "after_tree": tree_memory(server.pid),
                   "after_pools": health(url).get("pools")}
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    busy_after, top_after = busy_sample()

    # ------------------------------------------------------------ report
    R = Report(args.markdown)
    m = machine()
    R.heading("Machine and run")
    R.items([
        ("machine", f"{m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, kernel {m['kernel']}, {m['os']}"),
        ("command", f"`{command}` (in {os.getcwd()})" if args.markdown else f"{command}   (cwd {os.getcwd()})"),
        ("started", started),
        ("coderun", f"{binary} built {bin_mtime}, " + (f"from git {head}" if head != "?" else "not in a git checkout")
                    + (f" + uncommitted changes to {', '.join(dirty)}" if dirty else "")
                    + (f"; WARNING: {len(bin_stale)} source files are newer than the binary" if bin_stale else "")),
        ("server", "started by this script from a private copy of that binary: `coderun serve --config "
                   "<private compile cache dir> --languages-dir languages/` (default concurrency = nproc, "
                   "queue 64, pool_size default); a second one whose only language runs /bin/true"
                   if server else f"{url} (already running)"),
        ("runtimes", ", ".join(f"{k} {v}" for k, v in versions.items()) or "?"),
        ("compile cache", "yes (responses carry compile_cached); a private one, empty at start" if cached
                          else "no (this build has none)"),
        ("load average", f"before {' '.join(f'{x:.2f}' for x in load_before)}, "
                         f"after {' '.join(f'{x:.2f}' for x in load_after)} (1, 5, 15 min)"),
        ("CPU busy", f"{busy_before:.0%} in the second before the run, {busy_after:.0%} in the second after"
                     + (f"; busiest other processes before: "
                        + ", ".join(f"{c} ({f:.0%} CPU)" for f, c, _ in top_before[:3]) if top_before else "")),
        ("other load", "; ".join(f"{name}: other processes used {c['other_cpu_s']:.1f} CPU-s of "
                                 f"{c['seconds'] * (os.cpu_count() or 1):.0f} available "
                                 f"({c['other_frac']:.0%}), steal {c['steal_cpu_s']:.1f} s"
                                 for name, c in (("latency phase", cpu_lat), ("throughput phase", cpu_tp)) if c)),
    ])

    R.heading(f"Latency: hello world, {rounds} interleaved rounds (shuffled each round), ms")
    rows = []
    base = {}
    for i, (lang, label, kind, _) in enumerate(cases):
        if kind == "coderun":
            base[lang] = p50(times[i])
    for i, (lang, label, kind, _) in enumerate(cases):
        v = times[i]
        r = ratio(base[lang], p50(v)) if kind in ("bare", "floor") and lang in base else ""
        rows.append([lang, label, ms(p50(v)), ms(p95(v)), r])
    R.table(["language", "case", "p50", "p95", "coderun p50 / this p50"], rows, ["l", "l", "r", "r", "r"])
    R.para("Times are end to end as a client sees them: for coderun the HTTP request (new TCP "
           "connection, urllib), queueing, the box(es) and the response; for the bare rows a "
           "subprocess spawned by Python and waited for. Compiled languages' \"new source\" rows "
           "append a comment with a nonce, so every request compiles.")

    rows = []
    for key, label in (("python", "python"), ("typescript", "typescript, new source"),
                       ("typescript-hit", "typescript, same source"), ("rust", "rust, new source"),
                       ("rust-hit", "rust, same source"), ("true", "box /bin/true")):
        s = api.samples.get(key)
        if not s:
            continue
        e2e = times[next(i for i, c in enumerate(cases) if c[0] == ("box" if key == "true" else key.split("-")[0])
                         and c[2] == ("hit" if key.endswith("hit") else "coderun"))]
        comp = [c * 1000 for c, _, _, _ in s if c is not None]
        run = [w * 1000 for _, w, _, _ in s if w is not None]
        hits = [h for _, _, h, _ in s if h not in (None, "absent")]
        pooled = [p for _, _, _, p in s if p != "absent"]
        rest = [e - (c or 0) * 1000 - (w or 0) * 1000 for e, (c, w, _, _) in zip(e2e, s)]
        rows.append([label, ms(p50(e2e)), ms(p50(comp)) if comp else "-", ms(p50(run)),
                     ms(p50(rest)), f"{sum(1 for h in hits if h is True)}/{len(hits)}" if hits else "-",
                     f"{sum(1 for x in pooled if x is True)}/{len(pooled)}" if pooled else "n/a"])
    R.heading("Where coderun's time goes (p50 ms, as the server reports it)")
    R.table(["request", "end to end", "compile_time", "wall_time (run step)", "the rest", "compile cache hits",
             "ran in a warm box"], rows)
    R.para("compile_time and wall_time are the server's own numbers (box exec to exit); \"the rest\" "
           "is end to end minus both: HTTP, JSON, queueing, box set-up and tear-down (or taking a "
           "warm box), copying files in and out. The /bin/true row is the per-box floor: a fresh box "
           "that runs nothing. A warm (pooled) box's wall_time counts from the hand-off.")

    if tp:
        R.heading("Throughput: hello world runs/s (ABBA blocks: coderun, bare, bare, coderun)")
        rows = []
        for lang, conc, n, acc in tp:
            a, b = acc["api"], acc["bare"]
            ra, rb = a[2] / a[0], b[2] / b[0]
            err = lambda d: (", ".join(f"{v}x {k}" for k, v in sorted(d.items())) if d else "0")
            rows.append([lang if lang != "true" else "box /bin/true", conc, n, f"{ra:.1f}", err(a[1]),
                         f"{acc['pooled']}/{a[2]}" if has_pool else "n/a",
                         f"{rb:.1f}", err(b[1]), f"{ra / rb:.2f}x"])
        R.table(["language", "concurrency", "runs", "coderun runs/s", "coderun errors", "ran in a warm box",
                 "bare runs/s", "bare errors", "coderun / bare"], rows)
        R.para("coderun: POST /execute from that many client threads (new source per request for compiled "
               "languages); bare: the same binary and flags as the latency table's \"bare\" row, as "
               "subprocesses from that many threads. An error is any non-200 answer (503 overloaded "
               "included), wrong output or failed exit. The server runs nproc boxes at once and queues "
               "up to 64 more. Each level starts after a 1 s pause (warm pools refill); a request that "
               "finds its pool empty runs in a fresh box.")

    if mem:
        R.heading("Server memory (`coderun serve`, /proc/<pid>/status)")
        kib = lambda v: f"{v / 1024:.1f} MiB ({v} kB)" if v else "n/a"
        tree = lambda t: (f"{t[0]} processes, RSS {t[1] / 1024:.1f} MiB, PSS {t[2] / 1024:.1f} MiB" if t else "n/a")
        pools = lambda p: (", ".join(f"{k} {v}" for k, v in sorted(p.items())) or "none") if isinstance(p, dict) else "n/a"
        srss, stree, spools = mem["settled"]
        R.table(["when", "server VmRSS", "server VmHWM", "its boxes (warm ones included)", "warm boxes ready"], [
            ["right after /health answered", kib(mem["idle"]), "", tree(mem["idle_tree"]), pools(mem["idle_pools"])],
            ["idle, pools settled", kib(srss), "", tree(stree), pools(spools)],
            ["after the benchmark", kib(mem["after"]), kib(mem["hwm"]), tree(mem["after_tree"]), pools(mem["after_pools"])],
        ], ["l", "r", "r", "l", "l"])
        R.para("Server: the `coderun serve` process itself (/proc/<pid>/status). Its boxes: every process "
               "below it (box helpers, waiting warm runtimes), RSS and PSS (/proc/<pid>/smaps_rollup) summed; "
               "PSS shares pages fairly between processes, RSS counts shared pages once per process.")

    # issue 4 targets
    def row_p50(lang, kind):
        i = next((i for i, c in enumerate(cases) if c[0] == lang and c[2] == kind), None)
        return p50(times[i]) if i is not None else float("nan")

    tpmap = {(l, c): a["api"][2] / a["api"][0] / (a["bare"][2] / a["bare"][0]) for l, c, _, a in tp}
    trows = []
    py, pyf = row_p50("python", "coderun"), row_p50("python", "floor")
    trows.append(["Python hello e2e p50 <= 0.5x `python3 -I -S -c`", f"<= {ms(0.5 * pyf)} ms",
                  f"{ms(py)} ms = {ratio(py, pyf)}", "yes" if py <= 0.5 * pyf else "no"])
    ts, tsf = row_p50("typescript", "coderun"), row_p50("typescript", "floor")
    trows.append(["TypeScript hello e2e p50 <= 0.3x bare `node -e`", f"<= {ms(0.3 * tsf)} ms",
                  f"{ms(ts)} ms = {ratio(ts, tsf)}", "yes" if ts <= 0.3 * tsf else "no"])
    th = row_p50("typescript", "hit")
    if th == th:
        trows.append(["(same, compile cache hit)", f"<= {ms(0.3 * tsf)} ms", f"{ms(th)} ms = {ratio(th, tsf)}",
                      "yes" if th <= 0.3 * tsf else "no"])
    rs, rsb = row_p50("rust", "coderun"), row_p50("rust", "bare")
    trows.append(["Rust miss e2e p50 <= 1.1x bare rustc + run", f"<= {ms(1.1 * rsb)} ms",
                  f"{ms(rs)} ms = {ratio(rs, rsb)}", "yes" if rs <= 1.1 * rsb else "no"])
    rh = row_p50("rust", "hit")
    trows.append(["Rust cache hit e2e p50 <= 5 ms", "<= 5 ms",
                  f"{ms(rh)} ms" if rh == rh else "no compile cache in this build",
                  ("yes" if rh <= 5 else "no") if rh == rh else "no"])
    for lang in ("python", "typescript", "rust"):
        if (lang, 16) in tpmap:
            v = tpmap[(lang, 16)]
            trows.append([f"{lang} throughput at c=16 >= 0.9x bare", ">= 0.90x", f"{v:.2f}x",
                          "yes" if v >= 0.9 else "no"])
    if mem and mem["idle"]:
        trows.append(["idle RSS <= 20 MiB (server process, after /health)", "<= 20 MiB", f"{mem['idle'] / 1024:.1f} MiB",
                      "yes" if mem["idle"] <= 20 * 1024 else "no"])
        srss, stree, _ = mem["settled"]
        if srss and stree and stree[0]:
            tot = srss + stree[2]
            trows.append(["(same, server RSS + its idle boxes' PSS, pools settled)", "<= 20 MiB",
                          f"{tot / 1024:.1f} MiB", "yes" if tot <= 20 * 1024 else "no"])
    R.heading("Issue 4 targets (warm pool, compile cache) against this run")
    R.table(["target", "threshold", "measured", "met"], trows, ["l", "r", "r", "l"])
    R.print()


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        raise SystemExit(f"bench: {e}")
