#!/usr/bin/env bash
# The end-to-end demo: builds kseg in release mode, generates a synthetic customer population
# (works on any machine, no downloads) and clusters it, printing a short summary.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" >/dev/null
kseg=build/release/kseg
out=build/demo
mkdir -p "$out"
"$kseg" generate customers --n 200000 --seed 7 -o "$out/customers.h5"
"$kseg" cluster "$out/customers.h5" -k 6 --seed 7 -o "$out/result.h5"
"$kseg" inspect "$out/result.h5"
