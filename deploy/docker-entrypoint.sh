#!/bin/sh
# Entrypoint of coderun's container image (see the Dockerfile and docs/deployment.md). It
# undoes two Docker defaults that stop coderun's sandbox, using CAP_SYS_ADMIN (which the
# container needs anyway), then runs the command (by default `coderun serve`).
#
# 1. Cgroups. coderun creates one cgroup per box below the cgroup it runs in, and Docker
#    mounts a container's cgroups read-only unless it is --privileged. They are remounted
#    read-write: only the controllers coderun uses (v1: memory, pids, cpu, cpuacct; v2: the
#    unified hierarchy), never v1 `devices`, and each of these mounts shows only this
#    container's own subtree, not the host's.
# 2. procfs. Each box mounts a fresh /proc inside its own user namespace, and the kernel
#    allows that only if a fully visible procfs is already mounted in the mount namespace.
#    Docker masks parts of the container's /proc (kcore, keys, sysrq-trigger, ...), so
#    unless the container runs with `--security-opt systempaths=unconfined` an unmasked
#    procfs is mounted at /run/coderun-procfs/proc (its parent is mode 0700: root only).
#    That exposes to root in the container what systempaths=unconfined would, and leaves
#    /proc itself masked; the boxes never see either (each gets a fresh root with its own
#    /proc).
#
# SKIP_CONTAINER_SETUP=1 skips both (e.g. with --privileged, or with /sys/fs/cgroup
# bind-mounted read-write and systempaths=unconfined). Not CODERUN_*: coderun reads every
# CODERUN_* variable as a config key.
set -eu

warn() {
    echo "docker-entrypoint: $* (the container needs --cap-add SYS_ADMIN and unconfined" \
        "seccomp and AppArmor profiles; see docs/deployment.md)" >&2
}

if [ "${SKIP_CONTAINER_SETUP:-0}" != 1 ]; then
    # mountinfo: field 5 is the mount point, 6 the per-mount options; after the "-"
    # separator come the file system type, the source and the super block options.
    mounts=$(awk '{
        for (i = 7; i <= NF; i++) if ($i == "-") break
        print $5, $6, $(i + 1), $(i + 3)
    }' /proc/self/mountinfo)

    echo "$mounts" | while read -r point opts fstype super; do
        case "$fstype" in
            cgroup2) ;;
            cgroup)
                case ",$super," in
                    *,memory,* | *,pids,* | *,cpu,* | *,cpuacct,*) ;;
                    *) continue ;;
                esac
                ;;
            *) continue ;;
        esac
        case ",$opts," in
            *,ro,*)
                mount -o remount,bind,rw "$point" 2>/dev/null \
                    || warn "cannot remount $point read-write"
                ;;
        esac
    done

    # cgroup v2 (untested: the test machine is v1). coderun makes its instance cgroup at the
    # root of the hierarchy it sees, which in a container with its own cgroup namespace is
    # the container's cgroup; controllers can be enabled for its children only once it
    # holds no process, so this container's processes move into a leaf first (as Docker's
    # own docker-in-docker entrypoint does).
    if [ -f /sys/fs/cgroup/cgroup.controllers ] && [ -s /sys/fs/cgroup/cgroup.procs ]; then
        mkdir -p /sys/fs/cgroup/init
        xargs -rn1 </sys/fs/cgroup/cgroup.procs >/sys/fs/cgroup/init/cgroup.procs 2>/dev/null \
            || warn "cannot move the container's processes into /sys/fs/cgroup/init"
    fi

    # Anything mounted below /proc (Docker's masks) makes it "not fully visible".
    if echo "$mounts" | awk '$1 ~ /^\/proc\// { found = 1 } END { exit !found }'; then
        if ! echo "$mounts" | awk '$1 == "/run/coderun-procfs/proc" { found = 1 } END { exit !found }'; then
            mkdir -p /run/coderun-procfs/proc
            chmod 0700 /run/coderun-procfs
            mount -t proc -o nosuid,nodev,noexec proc /run/coderun-procfs/proc 2>/dev/null \
                || warn "cannot mount an unmasked procfs at /run/coderun-procfs/proc"
        fi
    fi
fi

exec "$@"
