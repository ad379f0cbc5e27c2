#!/usr/bin/env bash
# Installs what a fresh Debian machine with Rust lacks for coderun's full feature set:
# the runtimes (python3, node, a C linker for rustc) and the TypeScript type checker
# (tools/node_modules, pinned by tools/package-lock.json). Safe to run again: it only
# installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if [ ! -x tools/node_modules/@typescript/native-preview-linux-x64/lib/tsgo ] \
    || [ ! -d tools/node_modules/@types/node ]; then
    echo "setup: installing the TypeScript checker into tools/node_modules"
    (cd tools && npm ci --no-audit --no-fund --loglevel=error)
fi
