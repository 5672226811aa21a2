#!/usr/bin/env bash
# Installs the Debian packages the project builds against, only when they are missing.
# Needs root (or sudo) the first time; does nothing once they are there.
set -euo pipefail
missing=()
for pkg in libopenblas-dev libsqlite3-dev pkg-config; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "swift 6.x is required on PATH" >&2; exit 1; }
