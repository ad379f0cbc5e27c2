#!/usr/bin/env bash
# The whole test suite: unit tests, then the integration suites (tests/), which start the
# real server and run real programs in the real sandbox. Needs root (boxes map to
# unprivileged host uids and get their own cgroups).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "test: run as root (the sandbox needs it)" >&2
    exit 1
fi
scripts/setup.sh
cargo test --workspace --locked
