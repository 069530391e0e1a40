#!/usr/bin/env bash
# Installs the built kseg into a scratch prefix and builds a separate project against it with
# find_package(kseg), then runs that project: the install rules and package config must work.
set -euo pipefail
build_dir=$(dirname "$KSEG")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cmake --install "$build_dir" --prefix "$scratch/prefix" >/dev/null
test -x "$scratch/prefix/bin/kseg"
test -f "$scratch/prefix/include/kseg/kseg.h"
cmake -S "$KSEG_SOURCE_DIR/tests/consumer" -B "$scratch/build" \
      -DCMAKE_PREFIX_PATH="$scratch/prefix" >/dev/null
cmake --build "$scratch/build" >/dev/null
"$scratch/build/consumer"
echo "1 passed, 0 failed"
