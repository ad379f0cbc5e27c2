# coderun in a container. UNTESTED: no Docker engine runs on the machines this was written on
# and base images cannot be pulled there; the file follows the same steps as scripts/setup.sh.
#
# The sandbox creates user/pid/mount/net namespaces, mounts a fresh procfs and tmpfs, and
# creates cgroups. Docker's defaults block all of that (its seccomp profile denies unshare
# and mount, AppArmor denies mount, /proc is partly masked, cgroups are read-only). Run it
# with `--privileged` (what compose.yaml does), or at least:
#   --security-opt seccomp=unconfined --security-opt apparmor=unconfined
#   --security-opt systempaths=unconfined --cap-add SYS_ADMIN --cgroupns=host
#   -v /sys/fs/cgroup:/sys/fs/cgroup:rw
# The programs still run in coderun's own boxes (no capabilities, seccomp, no network);
# the container is packaging, not the boundary.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM rust:1.95-slim-bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 nodejs npm gcc libc6-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/coderun
COPY --from=build /src/target/release/coderun /usr/local/bin/coderun
COPY languages ./languages
COPY runners ./runners
COPY policies ./policies
COPY tools/package.json tools/package-lock.json ./tools/
RUN cd tools && npm ci --no-audit --no-fund
EXPOSE 8000
ENV CODERUN_SERVER_LISTEN=0.0.0.0:8000
CMD ["coderun", "serve", "--languages-dir", "/opt/coderun/languages"]
