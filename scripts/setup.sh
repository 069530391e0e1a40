#!/usr/bin/env bash
# Installs everything kseg needs on a fresh Debian 12 machine: build tools and libraries from
# Debian (apt-get, as root or through sudo), and the Python test/benchmark tooling from PyPI into
# a virtual environment at .venv (Debian's system Python refuses global pip installs).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config libopenblas-dev libhdf5-dev hdf5-tools
          libcriterion-dev libcsv-dev libyaml-dev libjansson-dev zlib1g-dev libdeflate-dev
          python3 python3-venv python3-pip python3-matplotlib chromium
          clang libomp-dev libclang-rt-dev llvm valgrind util-linux
          libopenmpi-dev openmpi-bin libhdf5-openmpi-dev)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$package")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "setup: run as root or install sudo" >&2; exit 1; }
        as_root=(sudo)
    fi
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# pip checks every requirement and installs only what is missing or too old (quick when the
# environment is already complete).
.venv/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements.txt
echo "setup: done"
