#!/usr/bin/env bash
# End-to-end test of coderun's container image against a real Docker engine: builds the
# image, runs it with the settings documented in docs/deployment.md, checks it from the host
# through the published port (health, Python/TypeScript/Rust hello worlds, a hostile
# program, a drain on `docker stop`, no cgroups left behind), then does `up -d` with
# compose.yaml and checks the API on :8000.
#
# NOT part of scripts/test.sh or CI: neither has a container engine. Run it by hand, as root,
# on a machine where dockerd runs. It removes the containers, networks and volumes it
# creates; it keeps the images (KEEP=0 removes them too).
#
# Environment:
#   LOCAL_BASES=1  first build stand-ins for the official base images and build on them, for
#                  machines that cannot pull from Docker Hub: coderun-local/debian:bookworm-slim
#                  from `debootstrap --variant=minbase bookworm`, and
#                  coderun-local/rust:<version>-slim-bookworm from it plus gcc and this host's
#                  Rust toolchain (`rustc --print sysroot`, without its docs), and
#                  coderun-local/node:<major>-bookworm-slim from it plus this host's node and
#                  npm, each laid out like the official image. The host's extra CA certificates
#                  (/usr/local/share/ca-certificates) go into them too, for machines whose
#                  egress goes through a TLS proxy. Needs debootstrap, rustc, node and npm.
#   PREBUILT=1     use target/release/coderun from the build context instead of compiling in
#                  the image (see the Dockerfile).
#   CONTEXT=DIR    build context (default: this repository).
#   BUILD_NETWORK  network of the build containers, e.g. `host` on an engine started with
#                  --bridge=none (default: the engine's default).
#   PORT=8000      host port the API is published on (127.0.0.1 only for `docker run`;
#                  compose.yaml publishes 8000 on every address, as its quick start says).
#   SUITES=1       also run coderun's integration suites (api escape limits leaks pool, or
#                  the names given, e.g. SUITES="escape limits") inside containers of the
#                  image; needs cargo and tools/node_modules in CONTEXT.
#   COMPOSE=0      skip the compose part. `docker compose` (v2) is used if present, else
#                  `docker-compose` (v1).
#   KEEP=0         remove the images at the end.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CONTEXT=${CONTEXT:-$REPO}
PORT=${PORT:-8000}
IMAGE=coderun:docker-test
NAME=coderun-docker-test
NET=""
WORK=$(mktemp -d /tmp/coderun-docker-test.XXXXXX)
BUILD_NET=()
[ -n "${BUILD_NETWORK:-}" ] && BUILD_NET=(--network "$BUILD_NETWORK")
BUILD_ARGS=("${BUILD_NET[@]}")
[ "${PREBUILT:-0}" = 1 ] && BUILD_ARGS+=(--build-arg PREBUILT=1)
# The settings docs/deployment.md asks for (apparmor is a no-op on hosts without AppArmor).
RUN_SETTINGS=(--cap-add SYS_ADMIN --security-opt seccomp=unconfined
    --security-opt apparmor=unconfined --tmpfs /run)

# Without the buildx plugin a current docker client refuses to build unless told to use the
# classic builder; the Dockerfile needs nothing of BuildKit.
if ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi

passed=0
failed=0
ok() { echo "PASS: $*"; passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }
step() { echo; echo "== $*"; }

cleanup() {
    docker rm -f "$NAME" >/dev/null 2>&1 || true
    if [ -n "${COMPOSE_CMD:-}" ]; then
        "${COMPOSE_CMD[@]}" down -v >/dev/null 2>&1 || true
    fi
    [ -n "$NET" ] && docker network rm "$NET" >/dev/null 2>&1 || true
    if [ "${KEEP:-1}" = 0 ]; then
        docker rmi "$IMAGE" coderun:latest >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------
if [ "${LOCAL_BASES:-0}" = 1 ]; then
    step "local base images (debootstrap + this host's Rust toolchain and node)"
    rootfs=$WORK/rootfs
    if ! docker image inspect coderun-local/debian:bookworm-slim >/dev/null 2>&1; then
        debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian \
            > "$WORK/debootstrap.log" 2>&1 || { tail "$WORK/debootstrap.log"; exit 1; }
        cat > "$rootfs/etc/apt/sources.list" <<'EOF'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
        rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
            "$rootfs"/var/cache/apt/archives/*.deb
        if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
            mkdir -p "$rootfs/usr/local/share/ca-certificates"
            cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
        fi
        tar --numeric-owner -C "$rootfs" -c . | docker import \
            -c 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
            - coderun-local/debian:bookworm-slim
        rm -rf "$rootfs"
    fi
    sysroot=$(rustc --print sysroot)
    version=$(rustc --version | awk '{print $2}')
    RUST_IMAGE=coderun-local/rust:$version-slim-bookworm
    if ! docker image inspect "$RUST_IMAGE" >/dev/null 2>&1; then
        toolchain=/usr/local/rustup/toolchains/$version-x86_64-unknown-linux-gnu
        mkdir -p "$WORK/rust"
        cat > "$WORK/rust/Dockerfile" <<EOF
FROM coderun-local/debian:bookworm-slim
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev \\
 && rm -rf /var/lib/apt/lists/*
COPY toolchain $toolchain
RUN mkdir -p /usr/local/cargo/bin \\
 && for b in rustc cargo rustdoc; do ln -s $toolchain/bin/\$b /usr/local/cargo/bin/\$b; done
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EOF
        tar -c -C "$WORK/rust" Dockerfile -C "$sysroot" --exclude=./share \
            --transform 's,^\./,toolchain/,;s,^\.$,toolchain,' . |
            docker build "${BUILD_NET[@]}" -t "$RUST_IMAGE" - \
            > "$WORK/rust-image.log" 2>&1 || { tail "$WORK/rust-image.log"; exit 1; }
    fi
    node_version=$(node --version | sed 's/^v//')
    NODE_IMAGE=coderun-local/node:${node_version%%.*}-bookworm-slim
    if ! docker image inspect "$NODE_IMAGE" >/dev/null 2>&1; then
        mkdir -p "$WORK/node/bin"
        cp "$(command -v node)" "$WORK/node/bin/node"
        cp -r "$(npm root -g)/npm" "$WORK/node/npm"
        cat > "$WORK/node/Dockerfile" <<'EOF'
FROM coderun-local/debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY bin/node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
EOF
        docker build "${BUILD_NET[@]}" -t "$NODE_IMAGE" "$WORK/node" \
            > "$WORK/node-image.log" 2>&1 || { tail "$WORK/node-image.log"; exit 1; }
    fi
    BUILD_ARGS+=(--build-arg "BUILDER_IMAGE=$RUST_IMAGE" --build-arg "RUNTIME_IMAGE=$RUST_IMAGE"
        --build-arg "NODE_IMAGE=$NODE_IMAGE")
    # for compose.yaml
    export BUILDER_IMAGE=$RUST_IMAGE RUNTIME_IMAGE=$RUST_IMAGE NODE_IMAGE=$NODE_IMAGE
    ok "local base images: coderun-local/debian:bookworm-slim, $RUST_IMAGE, $NODE_IMAGE"
fi

# ---------------------------------------------------------------------------------------
step "build $IMAGE from $CONTEXT ${PREBUILT:+(PREBUILT=1)}"
t0=$(date +%s)
if docker build "${BUILD_ARGS[@]}" -t "$IMAGE" "$CONTEXT" > "$WORK/build.log" 2>&1; then
    ok "image built in $(($(date +%s) - t0)) s ($(docker image inspect -f '{{.Size}}' "$IMAGE" |
        awk '{printf "%.2f GB", $1 / 1e9}'))"
else
    tail -20 "$WORK/build.log"
    bad "image build"
    exit 1
fi

# ---------------------------------------------------------------------------------------
step "docker run with: ${RUN_SETTINGS[*]}"
RUN_NET=()
if ! docker network inspect bridge >/dev/null 2>&1; then
    # An engine started with --bridge=none has no default network; a user-defined bridge
    # network still publishes ports (through docker-proxy).
    NET=coderun-docker-test
    docker network create "$NET" >/dev/null
    RUN_NET=(--network "$NET")
fi
cid=$(docker run -d --name "$NAME" "${RUN_NET[@]}" "${RUN_SETTINGS[@]}" \
    -p "127.0.0.1:$PORT:8000" "$IMAGE")
echo "container $cid"

# The checks, from the host through the published port.
cat > "$WORK/check.py" <<'EOF'
import json, sys, threading, time, urllib.error, urllib.request

BASE = sys.argv[2]

def call(method, path, body=None, timeout=60):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")

def execute(language, code, **kw):
    return call("POST", "/execute", dict(language=language, code=code, **kw))

def wait_ready(limit):
    t0 = time.time()
    last = None
    while time.time() - t0 < limit:
        try:
            status, body = call("GET", "/health", timeout=5)
            last = (status, body.get("status"))
            if status == 200 and body.get("status") == "healthy":
                return time.time() - t0, body
        except OSError as e:
            last = repr(e)
        time.sleep(1)
    raise SystemExit(f"not ready after {limit} s: {last}")

def report(name, cond, detail=""):
    print(("PASS: " if cond else "FAIL: ") + name + (f" ({detail})" if detail else ""))

mode = sys.argv[1]
if mode == "ready":
    took, body = wait_ready(float(sys.argv[3]))
    langs = {l["name"]: l.get("version") for l in body["languages"]}
    report("GET /health is 200 and healthy", True,
           f"after {took:.1f} s; sandbox ok={body['sandbox']['ok']}; {langs}")
elif mode == "hello":
    for lang, code, extra in [
        ("python", 'print("hello from python")', {}),
        ("typescript", 'const who: string = "typescript"; console.log(`hello from ${who}`);', {}),
        ("typescript", 'const who: string = "typescript"; console.log(`hello from ${who}`);',
         {"typecheck": True}),
        ("rust", 'fn main() { println!("hello from rust"); }', {}),
    ]:
        status, r = execute(lang, code, **extra)
        want = f"hello from {lang}\n"
        label = lang + (" (typecheck)" if extra else "")
        report(f"POST /execute {label}", status == 200 and r["status"] == "ok"
               and r["stdout"] == want,
               f"HTTP {status}, status={r.get('status')}, stdout={r.get('stdout')!r}, "
               f"pooled={r.get('pooled')}, wall={r.get('wall_time')}")
    status, r = execute("typescript", 'const n: number = "not a number"; console.log(n);',
                        typecheck=True)
    report("typecheck rejects a type error", status == 200 and r["status"] == "compile_error",
           f"status={r.get('status')}")
elif mode == "hostile":
    code = r"""
import os, socket
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
def cmd(p):
    try:
        return open(f"/proc/{p}/cmdline", "rb").read().replace(b"\0", b" ").decode()
    except OSError:
        return "?"
print("pid", os.getpid())
print("procs", [cmd(p) for p in pids])
try:
    print("ifaces", [l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]])
except OSError as e:
    print("ifaces unreadable", e.errno)
try:
    s = socket.socket()
    s.settimeout(2)
    s.connect(("127.0.0.1", 8000))
    print("api reachable")
except OSError as e:
    print("api unreachable", e.errno)
try:
    open("/sys/fs/cgroup/x", "w")
    print("cgroupfs writable")
except OSError as e:
    print("cgroupfs not-writable", e.errno)
"""
    status, r = execute("python", code)
    out = r.get("stdout", "")
    print(out + r.get("stderr", ""), end="")
    lines = dict(l.split(" ", 1) for l in out.splitlines() if " " in l)
    procs = eval(lines.get("procs", "['?'] * 99"))
    # The box's own init (`coderun __box`) and the program; never the server, tini or the
    # container's other processes.
    report("box has its own pid namespace (sees only its own processes)",
           len(procs) <= 2 and not any(w in c for c in procs for w in ("serve", "tini", "entrypoint")),
           f"pid {lines.get('pid')}, visible: {procs}")
    report("box has no network (only lo; the API on the container's 127.0.0.1:8000 is "
           "unreachable)", lines.get("ifaces") == "['lo']" and
           lines.get("api", "").startswith("unreachable"),
           f"ifaces {lines.get('ifaces')}, api {lines.get('api')}")
    report("box cannot write the cgroup fs", "cgroupfs not-writable" in out, lines.get("cgroupfs"))
elif mode == "drain":
    # A run that takes 3 s is in flight when `docker stop` arrives: it must finish.
    result = {}
    def slow():
        result["r"] = execute("python", 'import time; time.sleep(3); print("finished")',
                              timeout=10)
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(1.0)
    print("in flight", flush=True)
    open(sys.argv[3], "w").write("go")
    t.join(30)
    status, r = result.get("r", (None, {}))
    report("a run in flight during docker stop completes", status == 200
           and r.get("stdout") == "finished\n", f"HTTP {status}, stdout={r.get('stdout')!r}")
EOF

check() { python3 "$WORK/check.py" "$1" "http://127.0.0.1:$PORT" "${@:2}" | tee -a "$WORK/checks.out"; }

if check ready 240; then :; else
    docker logs "$NAME" 2>&1 | tail -30
    bad "server did not become ready"
    exit 1
fi
# (Logs go to a file first: `docker logs | grep -q` fails under pipefail when grep exits early.)
docker logs "$NAME" > "$WORK/server.log" 2>&1
if grep -q "0.0.0.0:8000" "$WORK/server.log"; then
    ok "listens on 0.0.0.0:8000 inside the container (reached through the published port)"
else
    bad "no 0.0.0.0:8000 in the server log"
fi
check hello
check hostile
if docker exec "$NAME" python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/livez', timeout=5)"; then
    ok "the same 127.0.0.1:8000 answers inside the container itself (the box is cut off by its own network namespace)"
else
    bad "127.0.0.1:8000 does not answer inside the container"
fi

# cgroups: the instance cgroup exists below the container's own cgroup while it runs ...
inst=$(find /sys/fs/cgroup -maxdepth 6 -type d -path "*$cid*" -name 'coderun-*' 2>/dev/null | head -1 || true)
if [ -n "$inst" ]; then ok "instance cgroup below the container's cgroup: $inst"; else
    bad "no instance cgroup found below the container's cgroup"; fi

step "docker stop drains and exits 0"
go=$WORK/go
check drain "$go" &
checker=$!
for _ in $(seq 100); do [ -f "$go" ] && break; sleep 0.1; done
t0=$(date +%s.%N)
docker stop -t 45 "$NAME" >/dev/null
stop_s=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $t0 }")
wait "$checker" || true
code=$(docker inspect -f '{{.State.ExitCode}}' "$NAME")
if [ "$code" = 0 ]; then ok "exit code 0 after ${stop_s} s"; else bad "exit code $code"; fi
docker logs "$NAME" > "$WORK/server.log" 2>&1
if grep -qi "drain" "$WORK/server.log"; then
    ok "the log shows the drain: $(grep -i drain "$WORK/server.log" | head -1 | cut -c1-160)"
else
    bad "no drain in the log"
fi
left=$(find /sys/fs/cgroup -maxdepth 6 -path "*$cid*" 2>/dev/null || true)
if [ -z "$left" ]; then ok "no cgroup of the container is left on the host"; else
    bad "cgroups left: $left"; fi
docker rm "$NAME" >/dev/null

# ---------------------------------------------------------------------------------------
if [ "${COMPOSE:-1}" != 0 ]; then
    step "compose up -d (compose.yaml)"
    if docker compose version >/dev/null 2>&1; then
        COMPOSE_BIN=(docker compose)
    elif command -v docker-compose >/dev/null; then
        COMPOSE_BIN=(docker-compose)
    else
        COMPOSE_BIN=()
        bad "neither 'docker compose' nor 'docker-compose' is installed"
    fi
    if [ ${#COMPOSE_BIN[@]} -gt 0 ]; then
        echo "using: $("${COMPOSE_BIN[@]}" version | head -1)"
        files=(-f "$CONTEXT/compose.yaml")
        if [ -n "${BUILD_NETWORK:-}" ]; then
            # Only for building here (an engine without a default bridge network).
            printf 'services:\n  coderun:\n    build:\n      network: %s\n' "$BUILD_NETWORK" \
                > "$WORK/compose.build-network.yaml"
            files+=(-f "$WORK/compose.build-network.yaml")
        fi
        COMPOSE_CMD=("${COMPOSE_BIN[@]}" -p coderun-docker-test --project-directory "$CONTEXT"
            "${files[@]}")
        export PREBUILT=${PREBUILT:-}
        if "${COMPOSE_CMD[@]}" up -d --build > "$WORK/compose.log" 2>&1; then
            ok "compose up -d"
            PORT=8000
            check ready 240 || { "${COMPOSE_CMD[@]}" logs | tail -30; bad "compose: not ready"; }
            status=$(python3 - <<'EOF'
import json, urllib.request
req = urllib.request.Request("http://127.0.0.1:8000/execute", method="POST",
    data=json.dumps({"language": "python", "code": "print(6 * 7)"}).encode(),
    headers={"Content-Type": "application/json"})
print(json.loads(urllib.request.urlopen(req, timeout=60).read())["stdout"].strip())
EOF
            )
            if [ "$status" = 42 ]; then ok "compose: POST /execute on :8000 prints 42"; else
                bad "compose: POST /execute gave $status"; fi
            ccid=$("${COMPOSE_CMD[@]}" ps -q coderun)
            for _ in $(seq 120); do
                h=$(docker inspect -f '{{.State.Health.Status}}' "$ccid")
                [ "$h" = healthy ] && break
                sleep 1
            done
            if [ "$h" = healthy ]; then ok "compose: the container's healthcheck says healthy"; else
                bad "compose: healthcheck says $h"; fi
            "${COMPOSE_CMD[@]}" stop > /dev/null 2>&1
            code=$(docker inspect -f '{{.State.ExitCode}}' "$ccid")
            if [ "$code" = 0 ]; then ok "compose stop: exit code 0"; else
                bad "compose stop: exit code $code"; fi
            left=$(find /sys/fs/cgroup -maxdepth 6 -path "*$ccid*" 2>/dev/null || true)
            if [ -z "$left" ]; then ok "compose: no cgroup left on the host"; else
                bad "compose: cgroups left: $left"; fi
        else
            tail -20 "$WORK/compose.log"
            bad "compose up -d"
        fi
    fi
fi

# ---------------------------------------------------------------------------------------
if [ -n "${SUITES:-}" ] && [ "$SUITES" != 0 ]; then
    [ "$SUITES" = 1 ] && SUITES="api escape limits leaks pool"
    step "integration suites inside the container: $SUITES"
    # Built on the host from CONTEXT (which needs tools/node_modules: scripts/setup.sh). Each
    # suite runs in a container of the image with the settings above, the context mounted
    # read-only at the same path (the test binaries name it), no network, and a private
    # cgroup namespace (the tests' own cgroup helper maps /proc/self/cgroup straight onto
    # /sys/fs/cgroup, which holds only there).
    [ -d "$CONTEXT/tools/node_modules" ] || echo "note: no $CONTEXT/tools/node_modules: typecheck tests will fail"
    (cd "$CONTEXT" && cargo test --release --locked --no-run --message-format=json) \
        > "$WORK/tests.json" 2> "$WORK/tests-build.log" || { tail "$WORK/tests-build.log"; exit 1; }
    # Tests that cannot hold in any container, by their own guards: the host-files test
    # needs a pyenv Python on the host, and the server-pid test a server pid too large to
    # be confused with a box's (a container's pid namespace makes it ~25).
    void="host_files::host_files_and_install_paths_are_not_in_the_box processes::the_servers_pid_is_not_visible_in_the_box"
    for suite in $SUITES; do
        exe=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[2] \
            and "test" in m["target"]["kind"] and m.get("executable"):
        print(m["executable"])' "$WORK/tests.json" "$suite" | tail -1)
        [ -n "$exe" ] || { bad "suite $suite: no test binary"; continue; }
        docker run --rm --network none --cgroupns private "${RUN_SETTINGS[@]}" \
            -v "$CONTEXT:$CONTEXT:ro" "$IMAGE" "$exe" --test-threads=2 \
            > "$WORK/suite-$suite.log" 2>&1 || true
        result=$(grep '^test result' "$WORK/suite-$suite.log" | tail -1)
        failures=$(awk '/^failures:$/ { f = 1; next } f && /^    / { print $1 }' \
            "$WORK/suite-$suite.log" | sort -u)
        unexpected=""
        for t in $failures; do
            case " $void " in *" $t "*) ;; *) unexpected="$unexpected $t" ;; esac
        done
        if [ -n "$result" ] && [ -z "$unexpected" ]; then
            ok "suite $suite: $result${failures:+ (void in a container: $(echo $failures))}"
        else
            bad "suite $suite: ${result:-no result} unexpected:${unexpected:- none}"
            cp "$WORK/suite-$suite.log" "/tmp/coderun-docker-suite-$suite.log"
            echo "log: /tmp/coderun-docker-suite-$suite.log"
        fi
    done
fi

passed=$((passed + $(grep -c '^PASS' "$WORK/checks.out" || true)))
failed=$((failed + $(grep -c '^FAIL' "$WORK/checks.out" || true)))
echo
echo "docker-test: $passed passed, $failed failed"
[ "$failed" = 0 ]
