# coderun in a container: `docker compose up -d` (compose.yaml), or
#   docker build -t coderun .
#   docker run -d -p 8000:8000 --cap-add SYS_ADMIN --security-opt seccomp=unconfined \
#       --security-opt apparmor=unconfined --tmpfs /run -v coderun-data:/var/lib/coderun coderun
# The API is then on :8000 (the server listens on 0.0.0.0:8000 inside the container).
#
# Why those settings (docs/deployment.md has each one's measured failure without it): the
# sandbox creates namespaces, mounts a fresh root and procfs in every box and a cgroup per
# box. SYS_ADMIN lets the entrypoint (deploy/docker-entrypoint.sh) remount the container's own
# cgroups read-write and mount an unmasked procfs (so systempaths=unconfined is not needed);
# Docker's default seccomp profile refuses pivot_root; its AppArmor profile denies mount. The
# programs still run in coderun's own boxes (no capabilities, seccomp, no network, cgroup
# limits): the container is packaging, not the boundary.
#
# Tested with scripts/docker-test.sh (health, Python/TypeScript/Rust runs, a hostile program,
# drain on `docker stop`, no cgroups left, compose up, and coderun's api/escape/limits/leaks/
# pool suites inside the container): all passed, both for this full build and for
# PREBUILT=1, on Docker Engine 20.10 with the classic builder, a cgroup v1 host without
# AppArmor, and local stand-ins for the base images below (no Docker Hub there).
# NOT tested: the official base images themselves, BuildKit, `docker compose` v2, AppArmor
# hosts, --privileged, and cgroup v2 hosts, where coderun itself is expected to fail (it must
# enable controllers in the cgroup it runs in; see docs/deployment.md).

# Base images. The defaults are the official ones; a machine that cannot pull them passes
# local equivalents (scripts/docker-test.sh builds them from a debootstrap root filesystem).
ARG BUILDER_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=rust:1.95-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

# --- node: Node 20 (the version coderun's tests run on; Debian bookworm has 18) and the
# TypeScript checker (tsgo) with @types/node for `"typecheck": true`, as scripts/setup.sh.
FROM ${NODE_IMAGE} AS node
WORKDIR /tools
COPY tools/package.json tools/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

# --- build: the release binary ---------------------------------------------------------
FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY . .
# PREBUILT=1 skips the compile and takes target/release/coderun from the build context
# (`cargo build --release --locked` on a glibc-compatible host first).
ARG PREBUILT=
RUN if [ -n "$PREBUILT" ]; then \
      test -x target/release/coderun || { echo "PREBUILT=1 needs target/release/coderun in the build context" >&2; exit 1; }; \
    else \
      cargo build --release --locked; \
    fi \
 && install -D -m 0755 target/release/coderun /out/coderun

# --- runtime ---------------------------------------------------------------------------
# The Rust base provides rustc (found with `rustc --print sysroot`, languages/rust.toml);
# Debian adds Python 3.11, the C linker rustc needs and tini as PID 1. node goes where
# languages/typescript.toml runs it, /usr/bin/node.
FROM ${RUNTIME_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 gcc libc6-dev ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/coderun
COPY --from=node /usr/local/bin/node /usr/bin/node
COPY --from=node /tools/node_modules ./tools/node_modules
COPY languages ./languages
COPY runners ./runners
COPY policies ./policies
COPY deploy/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
COPY --from=build /out/coderun /usr/local/bin/coderun
EXPOSE 8000
ENV CODERUN_SERVER_LISTEN=0.0.0.0:8000
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/docker-entrypoint.sh"]
CMD ["coderun", "serve", "--languages-dir", "/opt/coderun/languages"]
