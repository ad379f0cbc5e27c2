#!/usr/bin/env python3
"""Where a box's CPU goes, by process role, from a `perf record` of a whole server.

Record a server and everything it starts, send it requests, stop it (SIGINT to perf):

    perf record -F 10000 -e cpu-clock -g -o box.data -- \\
        target/release/coderun --config CONFIG serve --languages-dir languages
    scripts/perf-box-roles.py box.data            # CPU ms per box, by role and syscall

The roles come from the fork tree perf recorded: the server (the process perf started), each
box helper (its child), the box's init (the helper's child) and the program (init's child,
from the fork to its exit, confinement steps a-h included). A sample counts under the first
system call on its kernel stack, or as a page fault, or as user space (by library). Per box
means divided by the number of helpers. Kernel threads (network namespace and cgroup teardown
run in kworkers) are not part of the tree: see `perf record -a` for those.
"""

import collections
import re
import subprocess
import sys

SYSCALL = re.compile(r"^(?:__x64_sys_|__do_sys_)(\w+)")
EXEC = re.compile(r"PERF_RECORD_COMM exec: (.*):(\d+)/\d+")
FORK = re.compile(r"PERF_RECORD_FORK\((\d+):(\d+)\):\((\d+):(\d+)\)")
HEADER = re.compile(r"^\s*(\S.*?)\s+(\d+)/(\d+)\s")
FRAME = re.compile(r"^\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)$")


def category(frames):
    syms = [s for s, _ in frames]
    if "asm_exc_page_fault" in syms:
        return "page faults"
    for s in reversed(syms):
        m = SYSCALL.match(s)
        if m:
            return "sys " + m.group(1)
    user = [d for _, d in frames if "kernel.kallsyms" not in d]
    if user:
        return "user " + user[0].rsplit("/", 1)[-1]
    return "kernel, other"


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else "perf.data"
    hz = float(sys.argv[2]) if len(sys.argv) > 2 else 10000.0
    run = subprocess.run(["perf", "script", "-i", data, "--show-task-events",
                          "-F", "comm,pid,tid,ip,sym,dso"], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"perf script -i {data} failed: {run.stderr.strip()[-500:]}")
    out = run.stdout
    parent, root, execs = {}, None, {}
    per_pid = collections.defaultdict(collections.Counter)
    pid, frames = None, []

    def flush():
        nonlocal pid, frames
        if pid is not None:
            per_pid[pid][category(frames)] += 1
        pid, frames = None, []

    for line in out.splitlines():
        if "PERF_RECORD_" in line:
            flush()
            m = EXEC.search(line)
            if m:
                execs[int(m.group(2))] = m.group(1)
            m = FORK.search(line)
            if m:
                child, _, par, _ = map(int, m.groups())
                if child != par:  # a process, not a thread
                    parent[child] = par
                    root = root or par
            continue
        if not line.strip():
            flush()
        elif not line.startswith(("\t", " ")):
            flush()
            m = HEADER.match(line)
            pid = int(m.group(2)) if m else None
        else:
            m = FRAME.match(line)
            if m:
                frames.append((m.group(1), m.group(2)))
    flush()

    def role(p):
        depth = 0
        while p != root and p in parent:
            p, depth = parent[p], depth + 1
        if p != root:
            return None
        return ["server", "helper", "init", "program"][min(depth, 3)]

    def box_role(p):
        r = role(p)
        # The server's other children (a runtime's `locate` command at start-up) are not boxes.
        q = p
        while r and q != root and role(q) != "helper":
            q = parent[q]
        if r and r != "server" and execs.get(q) != execs.get(root):
            return None
        return r

    roles = collections.defaultdict(collections.Counter)
    boxes = 0
    for p, cats in per_pid.items():
        r = box_role(p)
        if r:
            roles[r].update(cats)
    boxes = sum(1 for p in parent if box_role(p) == "helper")
    if not boxes:
        sys.exit("no box helpers in this recording")
    ms = 1000.0 / hz / boxes
    total = sum(sum(c.values()) for c in roles.values())
    print(f"{boxes} boxes; CPU per box under perf: {total * ms:.2f} ms")
    for r in ("server", "helper", "init", "program"):
        c = roles[r]
        print(f"\n{r}: {sum(c.values()) * ms:.2f} ms per box")
        for k, v in c.most_common(12):
            print(f"  {v * ms:6.3f} ms  {k}")


if __name__ == "__main__":
    main()
